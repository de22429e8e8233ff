package agent

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/floorhub/floorhub/internal/yamlconf"
)

// The README promises that the example config names every key with its
// default: a key added to Config without a line there fails here. A key
// counts when the example sets it at its place, or names it in a comment
// (`# group_id: plant1`) where a value would be refused or mean nothing.
func TestExampleConfigNamesEveryKey(t *testing.T) {
	raw, err := os.ReadFile("../systemd/floorhub.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	root, err := yamlconf.Parse(raw)
	if err != nil || len(root.Content) == 0 {
		t.Fatalf("parse: %v", err)
	}
	var missing []string
	exampleKeys(reflect.TypeFor[Config](), "", []*yamlconf.Node{root.Content[0]}, string(raw), &missing)
	if len(missing) > 0 {
		t.Errorf("systemd/floorhub.example.yaml does not name: %s", strings.Join(missing, ", "))
	}
}

// exampleKeys checks that every key of typ is in one of nodes (the
// mappings at path) or named in a comment of text, and recurses into
// sections and lists of entries.
func exampleKeys(typ reflect.Type, path string, nodes []*yamlconf.Node, text string, missing *[]string) {
	for i := range typ.NumField() {
		f := typ.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || key == "-" {
			continue
		}
		if key == "" {
			key = strings.ToLower(f.Name) // what yamlconf decodes an untagged field from
		}
		var values []*yamlconf.Node
		for _, n := range nodes {
			for j := 0; n.Kind == yamlconf.MappingNode && j+1 < len(n.Content); j += 2 {
				if n.Content[j].Value == key {
					values = append(values, n.Content[j+1])
				}
			}
		}
		if len(values) == 0 && !regexp.MustCompile(`#.*\b`+regexp.QuoteMeta(key)+`:`).MatchString(text) {
			*missing = append(*missing, path+key)
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft == reflect.TypeFor[yamlconf.Node](): // a driver's settings: docs/sensors.md
		case ft.Kind() == reflect.Struct:
			exampleKeys(ft, path+key+".", values, text, missing)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			var entries []*yamlconf.Node
			for _, v := range values {
				if v.Kind == yamlconf.SequenceNode {
					entries = append(entries, v.Content...)
				}
			}
			exampleKeys(ft.Elem(), path+key+"[].", entries, text, missing)
		}
	}
}
