package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// This file finds where in the YAML text an error is: every config error
// names a line and a field, also those that yaml.v3 reports with a line
// only (a value of the wrong type) or with neither (a control character).

// decode decodes one YAML document strictly into c and returns its node
// tree; errors are *ConfigErrors with a line and a field.
func decode(name string, raw []byte, c *Config) (*yaml.Node, error) {
	if line, what := badChar(raw); line > 0 {
		return nil, &ConfigError{File: name, Line: line, Field: textPath(raw, line), Err: errors.New(what)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, syntaxError(name, raw, err)
	}
	// A later document would be ignored: refuse it. An empty one (a
	// trailing "---") holds nothing to ignore.
	for {
		var extra yaml.Node
		err := dec.Decode(&extra)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, syntaxError(name, raw, err)
		}
		if len(extra.Content) == 0 || extra.Content[0].Tag == "!!null" {
			continue
		}
		k := extra.Content[0]
		line, field := k.Line, "---"
		if k.Kind == yaml.MappingNode && len(k.Content) > 0 {
			field = k.Content[0].Value
		}
		return nil, &ConfigError{File: name, Line: line, Field: field,
			Err: errors.New("a second YAML document (after ---): the agent reads one document per file, so this one would be ignored")}
	}
	if err := nullEntry(name, &root); err != nil {
		return nil, err
	}
	sd := yaml.NewDecoder(bytes.NewReader(raw))
	sd.KnownFields(true)
	if err := sd.Decode(c); err != nil && !errors.Is(err, io.EOF) { // empty file: all defaults
		return nil, decodeError(name, &root, err)
	}
	return &root, nil
}

var (
	lineRE    = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	unknownRE = regexp.MustCompile(`field (\S+) not found`)
	valueRE   = regexp.MustCompile("cannot unmarshal !!\\w+ `([^`]*)`")
)

// decodeError locates an error of the strict decode in the node tree.
func decodeError(file string, root *yaml.Node, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		err = errors.New(te.Errors[0])
	}
	m := lineRE.FindStringSubmatch(err.Error())
	if m == nil {
		return &ConfigError{File: file, Field: "(document)", Err: err}
	}
	line, _ := strconv.Atoi(m[1])
	msg := m[2]
	hint := ""
	if f := unknownRE.FindStringSubmatch(msg); f != nil {
		hint = f[1]
		msg = "unknown key (misspelt, or not valid here)"
	} else if v := valueRE.FindStringSubmatch(msg); v != nil {
		hint = v[1]
		msg = strings.Replace(msg, "cannot unmarshal", "cannot read", 1)
	}
	field := pathAt(root, line, hint)
	return &ConfigError{File: file, Line: line, Field: field, Err: errors.New(msg)}
}

// syntaxError locates a YAML syntax error, by its line and the text.
func syntaxError(file string, raw []byte, err error) error {
	m := lineRE.FindStringSubmatch(err.Error())
	if m == nil {
		return &ConfigError{File: file, Field: "(document)", Err: err}
	}
	line, _ := strconv.Atoi(m[1])
	if l := firstFailingLine(raw, m[2]); l > 0 {
		line = l
	}
	return &ConfigError{File: file, Line: line, Field: textPath(raw, line), Err: errors.New(m[2])}
}

// firstFailingLine returns the first line whose prefix of the text fails
// to parse with the message msg, 0 if none. yaml.v3 reports a parser
// error at the line before the construct it was parsing (a 0-based line
// as if 1-based), and scanner errors at their own line; the prefixes find
// the line that breaks the document either way.
func firstFailingLine(raw []byte, msg string) int {
	lines := bytes.SplitAfter(raw, []byte("\n"))
	var prefix []byte
	for i, l := range lines {
		prefix = append(prefix, l...)
		var n yaml.Node
		err := yaml.Unmarshal(prefix, &n)
		if err != nil && strings.HasSuffix(err.Error(), msg) {
			return i + 1
		}
	}
	return 0
}

// badChar finds the first character YAML refuses (a control character or
// bytes that are not UTF-8), which yaml.v3 reports without a line.
func badChar(raw []byte) (line int, what string) {
	line = 1
	for i := 0; i < len(raw); {
		r, n := utf8.DecodeRune(raw[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			return line, fmt.Sprintf("byte 0x%02X is not UTF-8 text", raw[i])
		case r == '\n':
			line++
		case r == '\t', r == '\r', r == 0x85, r == 0xFEFF:
		case r < 0x20, r == 0x7F, r >= 0x80 && r <= 0x9F, r == 0xFFFE, r == 0xFFFF:
			return line, fmt.Sprintf("control character %U is not allowed (YAML takes printable text; quote it as \"\\x%02X\" if you mean it)", r, r)
		}
		i += n
	}
	return 0, ""
}

// nullEntry refuses an empty entry in a list (`devices: [null]`, a lone
// "-"): it would become a zero device or rule, or silently nothing.
func nullEntry(file string, root *yaml.Node) error {
	var walk func(n *yaml.Node, path string) error
	walk = func(n *yaml.Node, path string) error {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, k := range n.Content {
				if err := walk(k, path); err != nil {
					return err
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if err := walk(n.Content[i+1], join(path, n.Content[i].Value)); err != nil {
					return err
				}
			}
		case yaml.SequenceNode:
			for i, e := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if e.Kind == yaml.ScalarNode && e.Tag == "!!null" {
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

// pathAt returns the field at line: the deepest key on that line, or the
// key whose value is there; with several (a flow mapping), the one whose
// key or value is hint.
func pathAt(root *yaml.Node, line int, hint string) string {
	best, bestDepth, bestHint := "", -1, false
	consider := func(path string, depth int, matches bool) {
		if depth > bestDepth || (depth == bestDepth && matches && !bestHint) {
			best, bestDepth, bestHint = path, depth, matches
		}
	}
	var walk func(n *yaml.Node, path string, depth int)
	walk = func(n *yaml.Node, path string, depth int) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, k := range n.Content {
				walk(k, path, depth)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := join(path, k.Value)
				if k.Line == line || (v.Kind == yaml.ScalarNode && v.Line == line) {
					consider(p, depth+1, hint != "" && (k.Value == hint || v.Value == hint))
				}
				walk(v, p, depth+1)
			}
		case yaml.SequenceNode:
			for i, e := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if e.Kind == yaml.ScalarNode && e.Line == line {
					consider(p, depth+1, hint != "" && e.Value == hint)
				}
				walk(e, p, depth+1)
			}
		}
	}
	walk(root, "", 0)
	if best == "" {
		return "(document)"
	}
	return best
}

var keyRE = regexp.MustCompile(`^( *)((?:- +)*)([^\s:#'"\[{-][^:#]*?|"[^"]*"|'[^']*'):(?:\s|$)`)

// textPath guesses the field at line from the text alone, by indentation,
// for errors found before there is a node tree. List positions are not
// counted: "devices.driver" rather than "devices[2].driver".
func textPath(raw []byte, line int) string {
	type key struct {
		indent int
		name   string
	}
	var stack []key
	for i, l := range strings.Split(string(raw), "\n") {
		if i+1 > line {
			break
		}
		m := keyRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		indent := len(m[1]) + len(m[2])
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		stack = append(stack, key{indent, strings.Trim(m[3], `"'`)})
	}
	if len(stack) == 0 {
		return "(document)"
	}
	names := make([]string, len(stack))
	for i, k := range stack {
		names[i] = k.name
	}
	return strings.Join(names, ".")
}
