package yamlconf

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

type inner struct {
	Name string `yaml:"name"`
	N    int    `yaml:"n"`
}

type word string

// upper is a type that decodes itself.
type upper string

func (u *upper) UnmarshalYAML(n *Node) error {
	if n.Kind != ScalarNode || n.Value == "" {
		return errors.New("want a word")
	}
	*u = upper(strings.ToUpper(n.Value))
	return nil
}

type all struct {
	S       string             `yaml:"s"`
	W       word               `yaml:"w"`
	B       bool               `yaml:"b"`
	I       int                `yaml:"i"`
	I8      int8               `yaml:"i8"`
	I64     int64              `yaml:"i64"`
	U16     uint16             `yaml:"u16"`
	U64     uint64             `yaml:"u64"`
	F       float64            `yaml:"f"`
	F32     float32            `yaml:"f32"`
	D       time.Duration      `yaml:"d"`
	P       *float64           `yaml:"p"`
	PD      *time.Duration     `yaml:"pd"`
	L       []int              `yaml:"l"`
	M       map[string]string  `yaml:"m"`
	In      inner              `yaml:"in"`
	Ins     []inner            `yaml:"ins"`
	PIn     *inner             `yaml:"pin"`
	A       any                `yaml:"a"`
	U       upper              `yaml:"u"`
	PU      *upper             `yaml:"pu"`
	N       Node               `yaml:"node"`
	MI      map[string]inner   `yaml:"mi"`
	Untaged string             // key "untaged"
	Skip    string             `yaml:"-"`
	MA      map[string]any     `yaml:"ma"`
	unexp   string             //nolint:unused // never decoded
	LL      [][]string         `yaml:"ll"`
	Opt     map[string]*inner  `yaml:"opt"`
	Bytes   []byte             `yaml:"bytes"`
	Nested  map[string][]int   `yaml:"nested"`
	Flags   map[string]bool    `yaml:"flags"`
	Float   map[string]float64 `yaml:"floats"`
}

func decodeString(src string, v any) error {
	n, err := Parse([]byte(src))
	if err != nil {
		return err
	}
	return Decode(n, v)
}

func TestDecode(t *testing.T) {
	src := `
s: 7
w: word
b: true
i: -0x10
i8: -128
i64: 1_000_000
u16: 65535
u64: 18446744073709551615
f: 1e3
f32: .5
d: 1m30s
p: 2
pd: 10ms
l: [1, 2, 0o17, 0b11]
m: {a: x, b: "y"}
in: {name: n, n: 3}
ins:
  - name: a
  - name: b
    n: 2
pin:
  name: p
a: {x: [1, 2.5, true, null, "s", 2025-01-01]}
u: shout
pu: ptr
node: {kept: [as, is]}
mi: {k: {n: 1}}
untaged: yes
ll: [[a], [b, c]]
opt: {none: , some: {n: 1}}
nested: {x: [1]}
flags: {on: on, off: NO}
floats: {inf: .inf, ninf: -.Inf, int: 3}
`
	var v all
	if err := decodeString(src, &v); err != nil {
		t.Fatal(err)
	}
	two := 2.0
	ten := 10 * time.Millisecond
	up := upper("PTR")
	want := all{
		S: "7", W: "word", B: true, I: -16, I8: -128, I64: 1000000, U16: 65535, U64: math.MaxUint64,
		F: 1000, F32: 0.5, D: 90 * time.Second, P: &two, PD: &ten, L: []int{1, 2, 15, 3},
		M: map[string]string{"a": "x", "b": "y"}, In: inner{"n", 3}, Ins: []inner{{Name: "a"}, {"b", 2}},
		PIn: &inner{Name: "p"},
		A:   map[string]any{"x": []any{1, 2.5, true, nil, "s", "2025-01-01"}},
		U:   "SHOUT", PU: &up, MI: map[string]inner{"k": {N: 1}}, Untaged: "yes",
		LL: [][]string{{"a"}, {"b", "c"}}, Opt: map[string]*inner{"none": nil, "some": {N: 1}},
		Nested: map[string][]int{"x": {1}}, Flags: map[string]bool{"on": true, "off": false},
		Float: map[string]float64{"inf": math.Inf(1), "ninf": math.Inf(-1), "int": 3},
	}
	if v.N.Kind != MappingNode || v.N.Line != 27 || len(v.N.Content) != 2 {
		t.Errorf("node %+v", v.N)
	}
	v.N = Node{}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("got  %+v\nwant %+v", v, want)
	}
}

func TestDecodeNullAndEmpty(t *testing.T) {
	v := all{S: "keep", P: new(float64), L: []int{1}}
	if err := decodeString("s:\np: ~\nl: null\nin:\nu:\n", &v); err != nil {
		t.Fatal(err)
	}
	if v.S != "keep" || v.P != nil || v.L != nil || v.U != "" {
		t.Errorf("%+v", v)
	}
	for _, src := range []string{"", "# only a comment\n", "---\n"} {
		var w all
		if err := decodeString(src, &w); err != nil || !reflect.DeepEqual(w, all{}) {
			t.Errorf("%q: %v %+v", src, err, w)
		}
	}
}

// Each decoding error names the line and the key.
func TestDecodeRefuses(t *testing.T) {
	for _, c := range []struct {
		src  string
		line int
		path string
		msg  string
	}{
		{"s: 1\nnope: 2\n", 2, "nope", "unknown key"},
		{"in:\n  name: x\n  nme: y\n", 3, "in.nme", "unknown key"},
		{"ins:\n  - name: a\n  - {name: b, x: 1}\n", 3, "ins[1].x", "unknown key"},
		{"skip: x\n", 1, "skip", "unknown key"},
		{"unexp: x\n", 1, "unexp", "unknown key"},
		{"i: lots\n", 1, "i", `"lots": not an integer`},
		{"i: 1.5\n", 1, "i", "not an integer"},
		{"i: '5'\n", 1, "i", "quoted text"},
		{"i: 017\n", 1, "i", "leading zero is ambiguous"},
		{"i: 99999999999999999999\n", 1, "i", "out of range"},
		{"i8: 128\n", 1, "i8", "does not fit in int8"},
		{"u16: 65536\n", 1, "u16", "does not fit in uint16"},
		{"u16: -1\n", 1, "u16", "must not be negative"},
		{"f: x\n", 1, "f", "not a number"},
		{"f32: 1e39\n", 1, "f32", "does not fit in float32"},
		{"b: maybe\n", 1, "b", "want true or false"},
		{"b: 'true'\n", 1, "b", "want true or false"},
		{"d: soon\n", 1, "d", "not a duration"},
		{"d: 5\n", 1, "d", "a number without a unit"},
		{"l: 1\n", 1, "l", "want a list"},
		{"l: [1, x]\n", 1, "l[1]", "not an integer"},
		{"in: [1]\n", 1, "in", "want a mapping"},
		{"in: x\n", 1, "in", "want a mapping"},
		{"s: [1]\n", 1, "s", "want a single value"},
		{"m: {a: [1]}\n", 1, "m.a", "want a single value"},
		{"u: [x]\n", 1, "u", "want a word"},
		{"- 1\n", 1, "", "want a mapping"},
	} {
		t.Run(c.src, func(t *testing.T) {
			var v all
			err := decodeString(c.src, &v)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("want an *Error, got %v", err)
			}
			if e.Line != c.line || e.Path != c.path || !strings.Contains(e.Msg, c.msg) {
				t.Errorf("got %v; want line %d path %q, %q", err, c.line, c.path, c.msg)
			}
		})
	}
}

func TestDecodeDurationZero(t *testing.T) {
	var v all
	if err := decodeString("d: 0\npd: '0'\n", &v); err != nil || v.D != 0 || v.PD == nil || *v.PD != 0 {
		t.Fatalf("%v %+v", err, v)
	}
}

func TestDecodeNeedsPointer(t *testing.T) {
	n, _ := Parse([]byte("a: 1"))
	var v all
	if err := Decode(n, v); err == nil {
		t.Error("a non-pointer was accepted")
	}
	if err := Decode(n, (*all)(nil)); err == nil {
		t.Error("a nil pointer was accepted")
	}
}

func TestAnyValue(t *testing.T) {
	n, err := Parse([]byte("[1, -2, 0x1F, 1.5, .nan, true, False, yes, ~, '1', 10000000000000000000, x]"))
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%#v", anyValue(n))
	want := `[]interface {}{1, -2, 31, 1.5, NaN, true, false, "yes", interface {}(nil), "1", 0x8ac7230489e80000, "x"}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
