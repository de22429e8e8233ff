package yamlconf

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// dump writes a node tree compactly: {k: v}, [a, b], scalars quoted, null
// as ~; with lines, each node is followed by @line:column.
func dump(n *Node, lines bool) string {
	var b strings.Builder
	var walk func(n *Node)
	walk = func(n *Node) {
		switch n.Kind {
		case DocumentNode:
			for _, c := range n.Content {
				walk(c)
			}
		case MappingNode:
			b.WriteString("{")
			for i := 0; i+1 < len(n.Content); i += 2 {
				if i > 0 {
					b.WriteString(", ")
				}
				walk(n.Content[i])
				b.WriteString(": ")
				walk(n.Content[i+1])
			}
			b.WriteString("}")
		case SequenceNode:
			b.WriteString("[")
			for i, c := range n.Content {
				if i > 0 {
					b.WriteString(", ")
				}
				walk(c)
			}
			b.WriteString("]")
		case ScalarNode:
			if n.IsNull() {
				b.WriteString("~")
			} else {
				fmt.Fprintf(&b, "%q", n.Value)
			}
		}
		if lines && n.Kind != DocumentNode {
			fmt.Fprintf(&b, "@%d:%d", n.Line, n.Column)
		}
	}
	walk(n)
	return b.String()
}

func TestParse(t *testing.T) {
	for _, c := range []struct{ name, src, want string }{
		{"empty", "", ""},
		{"comments only", "# a\n\n  # b\n", ""},
		{"scalar", "hello\n", `"hello"`},
		{"mapping", "a: 1\nb: two words\n", `{"a": "1", "b": "two words"}`},
		{"nested", "a:\n  b:\n    c: x\n  d: y\n", `{"a": {"b": {"c": "x"}, "d": "y"}}`},
		{"empty values", "a:\nb: ~\nc: null\nd: # comment\n", `{"a": ~, "b": ~, "c": ~, "d": ~}`},
		{"sequence", "- a\n- b\n", `["a", "b"]`},
		{"sequence under key", "k:\n  - a\n  - b\n", `{"k": ["a", "b"]}`},
		{"sequence not indented", "k:\n- a\n- b\nz: 1\n", `{"k": ["a", "b"], "z": "1"}`},
		{"compact mapping in a list", "d:\n  - id: 1\n    driver: x\n  - id: 2\n", `{"d": [{"id": "1", "driver": "x"}, {"id": "2"}]}`},
		{"compact nested list", "- - a\n  - b\n- c\n", `[["a", "b"], "c"]`},
		{"list item on next line", "-\n  a: 1\n- \n", `[{"a": "1"}, ~]`},
		{"comments", "a: 1 # one\n# between\nb: x#y # two\n", `{"a": "1", "b": "x#y"}`},
		{"urls and colons", "u: tcp://h:1883\nt: 12:30\n", `{"u": "tcp://h:1883", "t": "12:30"}`},
		{"single quoted", "a: 'it''s # not a comment'\n", `{"a": "it's # not a comment"}`},
		{"double quoted escapes", `a: "tab\there\n\"q\" \\ \x41\u00e9\U0001F600"` + "\n", `{"a": "tab\there\n\"q\" \\ Aé😀"}`},
		{"quoted keys", "\"a b\": 1\n'c': 2\n", `{"a b": "1", "c": "2"}`},
		{"quoted folding", "a: \"one\n  two\n\n  three\"\n", `{"a": "one two\nthree"}`},
		{"escaped line break", "a: \"one\\\n  two\"\n", `{"a": "onetwo"}`},
		{"plain multi-line", "a: one\n  two\n\n  three\nb: 1\n", `{"a": "one two\nthree", "b": "1"}`},
		{"literal", "k: |\n  line 1\n    more\n  line 3\n\nz: 1\n", `{"k": "line 1\n  more\nline 3\n", "z": "1"}`},
		{"literal strip", "k: |-\n  a\n  b\n\n", `{"k": "a\nb"}`},
		{"literal keep", "k: |+\n  a\n\n\nz: 1\n", `{"k": "a\n\n\n", "z": "1"}`},
		{"literal indicator", "k: |2\n    indented\n  x\n", `{"k": "  indented\nx\n"}`},
		{"literal empty", "k: |\nz: 1\n", `{"k": "", "z": "1"}`},
		{"folded", "k: >\n  one\n  two\n\n  three\n    more\n  four\n", `{"k": "one two\nthree\n  more\nfour\n"}`},
		{"folded strip", "k: >-\n  a\n  b\n", `{"k": "a b"}`},
		{"pem", "key: |\n  -----BEGIN KEY-----\n  MIIB\n  -----END KEY-----\n", `{"key": "-----BEGIN KEY-----\nMIIB\n-----END KEY-----\n"}`},
		{"block scalar in a list", "- |\n  a\n- b\n", `["a\n", "b"]`},
		{"flow sequence", "a: [1, 'two', \"three\", [x], {y: 1}]\n", `{"a": ["1", "two", "three", ["x"], {"y": "1"}]}`},
		{"flow mapping", "a: {b: 1, c: [2], d: , e}\n", `{"a": {"b": "1", "c": ["2"], "d": ~, "e": ~}}`},
		{"flow across lines", "a: [1,\n  2, # c\n  3,\n]\n", `{"a": ["1", "2", "3"]}`},
		{"flow empty", "a: []\nb: {}\n", `{"a": [], "b": {}}`},
		{"flow json", `{"a": 1, "b": [true, null]}`, `{"a": "1", "b": ["true", ~]}`},
		{"document marker", "---\na: 1\n", `{"a": "1"}`},
		{"document end", "a: 1\n...\n", `{"a": "1"}`},
		{"trailing empty document", "a: 1\n---\n# nothing\n---\n", `{"a": "1"}`},
		{"marker only", "---\n", "~"},
		{"marker with a scalar", "--- text\n", `"text"`},
		{"crlf", "a: 1\r\nb: 2\r\n", `{"a": "1", "b": "2"}`},
		{"bom", "\xEF\xBB\xBFa: 1\n", `{"a": "1"}`},
		{"tabs after the indentation", "a:\t1\nb: [1,\t2]\n", `{"a": "1", "b": ["1", "2"]}`},
		{"dash value", "a: -1\nb: -x\nc: '-'\n", `{"a": "-1", "b": "-x", "c": "-"}`},
		{"no final newline", "a: 1", `{"a": "1"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			n, err := Parse([]byte(c.src))
			if err != nil {
				t.Fatalf("%q: %v", c.src, err)
			}
			if got := dump(n, false); got != c.want {
				t.Errorf("%q:\n got %s\nwant %s", c.src, got, c.want)
			}
		})
	}
}

func TestParsePositions(t *testing.T) {
	src := "a: 1\nlist:\n  - x\n  - k: v\n    z: [p, {q: r}]\n"
	n, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"a"@1:1: "1"@1:4, "list"@2:1: ["x"@3:5, {"k"@4:5: "v"@4:8, "z"@5:5: ["p"@5:9, {"q"@5:13: "r"@5:16}@5:12]@5:8}@4:5]@3:3}@1:1`
	if got := dump(n, true); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// Each refusal names its line and says what is wrong.
func TestParseRefuses(t *testing.T) {
	for _, c := range []struct {
		name, src string
		line      int
		path      string
		msg       string
	}{
		{"tab indentation", "a:\n\tb: 1\n", 2, "a", "tab in the indentation"},
		{"tab indentation in a list", "l:\n  - a\n \t- b\n", 3, "", "tab in the indentation"},
		{"anchor", "a: &x 1\n", 1, "a", "anchors (&) are not supported"},
		{"alias", "a: 1\nb: *x\n", 2, "b", "aliases (*) are not supported"},
		{"tag", "a: !!str 1\n", 1, "a", "tags (!) are not supported"},
		{"anchor in flow", "a: [&x 1]\n", 1, "a[0]", "anchors (&)"},
		{"merge key", "a: 1\n<<: {b: 2}\n", 2, "<<", "merge keys (<<) are not supported"},
		{"merge key in flow", "a: {<<: {b: 2}}\n", 1, "a.<<", "merge keys"},
		{"complex key", "? a\n: 1\n", 1, "", "complex keys"},
		{"directive", "%YAML 1.2\n---\na: 1\n", 1, "", "directives"},
		{"duplicate key", "a: 1\nb: 2\na: 3\n", 3, "a", "given twice (first at line 1)"},
		{"duplicate nested key", "d:\n  - id: 1\n    id: 2\n", 3, "d[0].id", "given twice"},
		{"duplicate flow key", "a: {x: 1, x: 2}\n", 1, "a.x", "given twice"},
		{"second document", "a: 1\n---\nb: 2\n", 3, "b", "second YAML document"},
		{"second document after end", "a: 1\n...\nb: 2\n", 3, "b", "second YAML document"},
		{"second document on the marker line", "a: 1\n--- b\n", 2, "", "second YAML document"},
		{"indented too far", "a: 1\n  b: 2\n", 2, "a", "a key: value inside a value"},
		{"indented too far after a mapping", "a:\n  b: 1\n    c: 2\n", 3, "a.b", "a key: value inside a value"},
		{"indented too far after a block", "a:\n  b:\n    c: 1\n   d: 2\n", 4, "a", "bad indentation"},
		{"key too far in a list", "l:\n  - a\n   b: 1\n", 3, "l[0]", "a key: value inside a value"},
		{"outdented list", "a:\n    - x\n  - y\n", 3, "", "bad indentation"},
		{"not a key", "a: 1\nplain\n", 2, "", "expected a key"},
		{"list among keys", "a: 1\n- b\n", 2, "", "a list item among the keys"},
		{"mapping on the key's line", "a: b: c\n", 1, "a", "a mapping cannot start on the line of its key"},
		{"list on the key's line", "a: - b\n", 1, "a", "a list cannot start on the line of its key"},
		{"unterminated double quote", "a: \"open\nb: 1\n", 1, "a", "unterminated quoted value"},
		{"unterminated single quote", "a:\n  b: 'open\n", 2, "a.b", "unterminated quoted value: the ' at line 2 column 6"},
		{"unterminated flow", "listen: [\n", 1, "listen", "unterminated flow collection"},
		{"unterminated nested flow", "hub:\n  max_batch: [1\n", 2, "hub.max_batch", "never closed by ]"},
		{"text after a quote", "a: \"x\" y\n", 1, "a", "unexpected text \"y\""},
		{"text after a flow", "a: [1] 2\n", 1, "a", "unexpected text"},
		{"bad escape", `a: "\q"` + "\n", 1, "a", `unknown escape \q`},
		{"short escape", `a: "\x4"` + "\n", 1, "a", `\x needs 2 hexadecimal digits`},
		{"empty flow entry", "a: [1,,2]\n", 1, "a[1]", "an empty entry"},
		{"pair in a flow list", "a: [b: 1]\n", 1, "a", "inside [ ] is not supported"},
		{"flow key", "a: {[x]: 1}\n", 1, "a", "as a key is not supported"},
		{"control character", "a: 1\nb: \"x\x01y\"\n", 2, "b", "control character U+0001"},
		{"not utf-8", "a: caf\xe9\n", 1, "a", "byte 0xE9 is not UTF-8"},
		{"line separator", "a: 1\nb: x\u2028y\n", 2, "b", "line separator U+2028"},
		{"deep", strings.Repeat("[", 200), 1, "", "nested more than 100 levels"},
		{"block scalar header", "a: |x\n  y\n", 1, "a", "its text starts on the next line"},
		{"reserved", "a: @x\n", 1, "a", "cannot start a plain value"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.src))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%q: want an *Error, got %v", c.src, err)
			}
			if e.Line != c.line || (c.path != "" && e.Path != c.path) || !strings.Contains(e.Msg, c.msg) {
				t.Errorf("%q: got line %d path %q: %s\nwant line %d path %q, %q", c.src, e.Line, e.Path, e.Msg, c.line, c.path, c.msg)
			}
		})
	}
}
