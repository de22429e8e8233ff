package yamlconf

import (
	"bytes"
	"fmt"
	"go/ast"
	goparser "go/parser"
	"go/token"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// The general YAML library is a test-only dependency: the differential
// tests hold this package to it on every document it accepts.

// repoRoot is the module's directory.
func repoRoot(t testing.TB) string {
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the package")
		}
		dir = parent
	}
}

type sample struct {
	where string
	text  []byte
}

// repoDocuments collects every YAML document of the repository: the
// YAML files, the ```yaml blocks of the Markdown files, and every Go
// string literal that the general library reads as a mapping or a list
// (the test configs).
func repoDocuments(t testing.TB) []sample {
	root := repoRoot(t)
	var out []sample
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if name == ".git" || name == "node_modules" || name == "dist" || name == "testdata" && strings.Contains(path, "fuzz") {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		switch {
		case strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml"):
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			out = append(out, sample{rel, b})
		case strings.HasSuffix(name, ".md"):
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for i, block := range fenced(b) {
				if !block.yaml && (!collection(block.text) || bytes.Contains(block.text, []byte("\n{"))) {
					continue // a shell session, an output or JSON lines, not YAML
				}
				out = append(out, sample{fmt.Sprintf("%s block %d", rel, i+1), block.text})
			}
		case strings.HasSuffix(name, ".go") && configDir(rel):
			f, err := goparser.ParseFile(fset, path, nil, goparser.SkipObjectResolution)
			if err != nil {
				return nil
			}
			parts := map[ast.Node]bool{} // operands of a concatenation are fragments
			ast.Inspect(f, func(n ast.Node) bool {
				if b, ok := n.(*ast.BinaryExpr); ok && b.Op == token.ADD {
					parts[b.X], parts[b.Y] = true, true
				}
				return true
			})
			ast.Inspect(f, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING || parts[n] {
					return true
				}
				s, err := strconv.Unquote(lit.Value)
				if err != nil || !strings.Contains(s, ":") || !(strings.Contains(s, "\n") || strings.HasPrefix(s, "{")) {
					return true
				}
				if !collection([]byte(s)) {
					return true
				}
				out = append(out, sample{fmt.Sprintf("%s:%d", rel, fset.Position(lit.Pos()).Line), []byte(s)})
				return true
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// configDir tells whether a Go file is where config text is: the
// agent, its command, the drivers, the uplinks and packaging, not this
// package's own tests of what it refuses.
func configDir(rel string) bool {
	for _, d := range []string{"agent/", "cmd/", "sensors/", "uplink/", "packaging/"} {
		if strings.HasPrefix(rel, d) {
			return true
		}
	}
	return false
}

// refusal tells whether err is one of the refusals the package
// documents: documents the general library reads but a config may not be.
func refusal(err error) bool {
	for _, s := range []string{"not supported in floorhub configs", "is given twice", "a second YAML document"} {
		if strings.Contains(err.Error(), s) {
			return true
		}
	}
	return false
}

// collection tells whether the general library reads text as a mapping or
// a list.
func collection(text []byte) bool {
	var n yaml.Node
	return yaml.Unmarshal(text, &n) == nil && len(n.Content) > 0 &&
		(n.Content[0].Kind == yaml.MappingNode || n.Content[0].Kind == yaml.SequenceNode)
}

type block struct {
	yaml bool // marked ```yaml; else unmarked or ```json
	text []byte
}

// fenced returns the ```yaml, ```json and unmarked blocks of a Markdown
// text.
func fenced(md []byte) []block {
	var out []block
	lines := bytes.SplitAfter(md, []byte("\n"))
	for i := 0; i < len(lines); i++ {
		lang, ok := bytes.CutPrefix(bytes.TrimSpace(lines[i]), []byte("```"))
		if !ok {
			continue
		}
		var text []byte
		for i++; i < len(lines) && !bytes.HasPrefix(bytes.TrimSpace(lines[i]), []byte("```")); i++ {
			text = append(text, lines[i]...)
		}
		switch string(lang) {
		case "yaml", "yml":
			out = append(out, block{true, text})
		case "", "json":
			out = append(out, block{false, text})
		}
	}
	return out
}

// compareTrees reports the first difference between the general
// library's tree and ours: kind, text, null-ness, line and column.
func compareTrees(a *yaml.Node, b *Node, path string) error {
	if a.Kind == 0 { // an empty input
		if len(b.Content) > 0 && !b.Content[0].IsNull() {
			return fmt.Errorf("empty document, ours %s", dump(b, false))
		}
		return nil
	}
	if a.Kind == yaml.DocumentNode {
		if len(a.Content) == 0 || (len(b.Content) > 0 && b.Content[0].IsNull() && a.Content[0].Tag == "!!null") {
			if len(b.Content) == 0 || b.Content[0].IsNull() {
				return nil
			}
		}
		if len(a.Content) != len(b.Content) {
			return fmt.Errorf("document: %d nodes, ours %d", len(a.Content), len(b.Content))
		}
		return compareTrees(a.Content[0], b.Content[0], path)
	}
	kinds := map[yaml.Kind]Kind{yaml.MappingNode: MappingNode, yaml.SequenceNode: SequenceNode, yaml.ScalarNode: ScalarNode}
	if kinds[a.Kind] != b.Kind {
		return fmt.Errorf("%s: kind %v, ours %v", path, a.Kind, b.Kind)
	}
	null := a.Kind == yaml.ScalarNode && a.Tag == "!!null"
	if null != b.IsNull() {
		return fmt.Errorf("%s: null %v (%q), ours %v (%q)", path, null, a.Value, b.IsNull(), b.Value)
	}
	if a.Kind == yaml.ScalarNode && !null && a.Value != b.Value {
		return fmt.Errorf("%s: value %q, ours %q", path, a.Value, b.Value)
	}
	if !(null && b.Value == "") && (a.Line != b.Line || a.Column != b.Column) {
		return fmt.Errorf("%s: at %d:%d, ours %d:%d", path, a.Line, a.Column, b.Line, b.Column)
	}
	if len(a.Content) != len(b.Content) {
		return fmt.Errorf("%s: %d children, ours %d", path, len(a.Content), len(b.Content))
	}
	for i := range a.Content {
		p := fmt.Sprintf("%s/%d", path, i)
		if a.Kind == yaml.MappingNode && i%2 == 1 {
			p = path + "." + a.Content[i-1].Value
		}
		if err := compareTrees(a.Content[i], b.Content[i], p); err != nil {
			return err
		}
	}
	return nil
}

// sameAny compares the general library's decoding into any with ours.
// It reads dates as timestamps and 017 as octal, where this package keeps
// the text: there any string of ours passes.
func sameAny(a, b any) bool {
	if s, ok := b.(string); ok {
		t := strings.ReplaceAll(strings.TrimLeft(s, "+-"), "_", "")
		if len(t) > 1 && t[0] == '0' && t[1] >= '0' && t[1] <= '9' {
			switch a.(type) {
			case int, int64, uint64, float64:
				return true // 017: octal there, refused here
			}
		}
	}
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok || len(av) != len(bv) {
			return false
		}
		for k, v := range av {
			if !sameAny(v, bv[k]) {
				return false
			}
		}
		return true
	case map[any]any:
		// Keys that read as numbers or booleans there (1, 01 and 1.0 may
		// collide) stay text here: the trees were compared already.
		_, ok := b.(map[string]any)
		return ok
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			return false
		}
		for i := range av {
			if !sameAny(av[i], bv[i]) {
				return false
			}
		}
		return true
	case time.Time:
		_, ok := b.(string)
		return ok
	case float64:
		bv, ok := b.(float64)
		return ok && (av == bv || math.IsNaN(av) && math.IsNaN(bv))
	}
	return reflect.DeepEqual(a, b)
}

func differ(src []byte) error {
	var a yaml.Node
	errA := yaml.Unmarshal(src, &a)
	b, errB := Parse(src)
	if errA != nil || errB != nil {
		return nil // only documents both read are compared
	}
	if err := compareTrees(&a, b, ""); err != nil {
		return err
	}
	var va any
	if err := yaml.Unmarshal(src, &va); err != nil {
		return nil
	}
	vb := anyValue(b)
	if !sameAny(va, vb) {
		return fmt.Errorf("as any: %#v, ours %#v", va, vb)
	}
	return nil
}

// TestRepositoryDocuments: every YAML document in the repository reads
// the same with this package as with the general library.
func TestRepositoryDocuments(t *testing.T) {
	docs := repoDocuments(t)
	if len(docs) < 100 {
		t.Fatalf("only %d documents found", len(docs))
	}
	refused := 0
	for _, d := range docs {
		if _, err := Parse(d.text); err != nil {
			if refusal(err) {
				refused++
				continue
			}
			t.Errorf("%s: %v\n%s", d.where, err, d.text)
			continue
		}
		if err := differ(d.text); err != nil {
			t.Errorf("%s: %v\n%s", d.where, err, d.text)
		}
	}
	t.Logf("%d documents; %d refused as documented (duplicate keys, second documents)", len(docs), refused)
}

// FuzzParse: Parse never panics, and a document both read gives the
// same tree.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"a: 1\n", "a:\n  - b\n  - c: d\n    e: [1, {f: g}]\n", "k: |\n  x\n  y\n", "k: >-\n  a\n\n  b\n",
		"'a''b': \"c\\td\"\n", "- - x\n- y\n", "a: {b: [c, d], e: }\n", "---\na: b\n...\n",
		"a: one\n  two\n", "x: ~\ny: null\nz:\n", "a: &x 1\n", "a:\n\tb: 1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		n, err := Parse(src)
		if err == nil {
			var v any
			_ = Decode(n, &v)
		}
		if err := differ(src); err != nil {
			t.Fatalf("%q: %v", src, err)
		}
	})
}
