package agent

import (
	"errors"
	"fmt"

	"github.com/floorhub/floorhub/internal/yamlconf"
)

// decode parses one YAML document and decodes it strictly into c; it
// returns the node tree, which locates the errors validation finds.
// Errors are *ConfigErrors with a line and a field.
func decode(name string, raw []byte, c *Config) (*yamlconf.Node, error) {
	root, err := yamlconf.Parse(raw)
	if err != nil {
		return nil, yamlError(name, err)
	}
	if err := nullEntry(name, root); err != nil {
		return nil, err
	}
	if err := yamlconf.Decode(root, c); err != nil {
		return nil, yamlError(name, err)
	}
	return root, nil
}

// yamlError turns a *yamlconf.Error into a *ConfigError.
func yamlError(file string, err error) error {
	var e *yamlconf.Error
	if !errors.As(err, &e) {
		return &ConfigError{File: file, Field: "(document)", Err: err}
	}
	field := e.Path
	if field == "" {
		field = "(document)"
	}
	return &ConfigError{File: file, Line: e.Line, Field: field, Err: errors.New(e.Msg)}
}

// nullEntry refuses an empty entry in a list (`devices: [null]`, a lone
// "-"): it would become a zero device or rule, or silently nothing.
func nullEntry(file string, root *yamlconf.Node) error {
	var walk func(n *yamlconf.Node, path string) error
	walk = func(n *yamlconf.Node, path string) error {
		switch n.Kind {
		case yamlconf.DocumentNode:
			for _, k := range n.Content {
				if err := walk(k, path); err != nil {
					return err
				}
			}
		case yamlconf.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if err := walk(n.Content[i+1], join(path, n.Content[i].Value)); err != nil {
					return err
				}
			}
		case yamlconf.SequenceNode:
			for i, e := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if e.IsNull() {
					return &ConfigError{File: file, Line: e.Line, Field: p, Err: errors.New("an empty entry (null): remove it or fill it in")}
				}
				if err := walk(e, p); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(root, "")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
