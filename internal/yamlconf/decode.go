package yamlconf

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Unmarshaler is a type that decodes itself from a node. Decode does not
// call it for a null value (the field keeps its zero value). An error it
// returns gets the node's line and key.
type Unmarshaler interface {
	UnmarshalYAML(n *Node) error
}

var (
	nodeType     = reflect.TypeOf(Node{})
	durationType = reflect.TypeOf(time.Duration(0))
	unmarshaler  = reflect.TypeOf((*Unmarshaler)(nil)).Elem()
)

// Decode decodes n (a document or any node) into v, a non-nil pointer,
// strictly: a key that matches no struct field is an error. Struct fields
// take their key from the `yaml:"name"` tag (a tag of "-" skips the
// field; with no tag the key is the field's name in lower case). A Node
// field takes the node as it is. Every error is an *Error with the line
// and the key's path.
func Decode(n *Node, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("yamlconf: Decode needs a non-nil pointer, not %T", v)
	}
	if n.Kind == DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	d := &decoder{}
	return d.value(n, rv.Elem())
}

type decoder struct {
	path []string
}

func (d *decoder) errf(n *Node, format string, args ...any) error {
	var b strings.Builder
	for _, s := range d.path {
		if b.Len() > 0 && !strings.HasPrefix(s, "[") {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return &Error{Line: n.Line, Column: n.Column, Path: b.String(), Msg: fmt.Sprintf(format, args...)}
}

// what describes a node in an error.
func what(n *Node) string {
	switch n.Kind {
	case MappingNode:
		return "a mapping (key: value)"
	case SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

func (d *decoder) value(n *Node, out reflect.Value) error {
	if out.Type() == nodeType {
		out.Set(reflect.ValueOf(n).Elem())
		return nil
	}
	if n.IsNull() {
		switch out.Kind() {
		case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
			out.Set(reflect.Zero(out.Type()))
		}
		return nil
	}
	if out.CanAddr() && out.Addr().Type().Implements(unmarshaler) {
		err := out.Addr().Interface().(Unmarshaler).UnmarshalYAML(n)
		if err != nil {
			if _, ok := err.(*Error); ok {
				return err
			}
			return d.errf(n, "%v", err)
		}
		return nil
	}
	switch out.Kind() {
	case reflect.Pointer:
		if out.IsNil() {
			out.Set(reflect.New(out.Type().Elem()))
		}
		return d.value(n, out.Elem())
	case reflect.Interface:
		if out.NumMethod() != 0 {
			return d.errf(n, "cannot decode into %s", out.Type())
		}
		v := anyValue(n)
		if v == nil {
			out.Set(reflect.Zero(out.Type()))
		} else {
			out.Set(reflect.ValueOf(v))
		}
		return nil
	case reflect.Struct:
		return d.structure(n, out)
	case reflect.Map:
		return d.mapping(n, out)
	case reflect.Slice:
		if n.Kind != SequenceNode {
			return d.errf(n, "want a list, not %s", what(n))
		}
		s := reflect.MakeSlice(out.Type(), len(n.Content), len(n.Content))
		for i, e := range n.Content {
			d.path = append(d.path, "["+strconv.Itoa(i)+"]")
			err := d.value(e, s.Index(i))
			d.path = d.path[:len(d.path)-1]
			if err != nil {
				return err
			}
		}
		out.Set(s)
		return nil
	}
	if n.Kind != ScalarNode {
		return d.errf(n, "want a single value, not %s", what(n))
	}
	return d.scalar(n, out)
}

func (d *decoder) structure(n *Node, out reflect.Value) error {
	if n.Kind != MappingNode {
		return d.errf(n, "want a mapping (key: value lines), not %s", what(n))
	}
	fields := map[string]int{}
	t := out.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = strings.ToLower(f.Name)
		}
		fields[name] = i
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		d.path = append(d.path, k.Value)
		fi, ok := fields[k.Value]
		var err error
		if !ok {
			err = d.errf(k, "unknown key (misspelt, or not valid here)")
		} else {
			err = d.value(v, out.Field(fi))
		}
		d.path = d.path[:len(d.path)-1]
		if err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) mapping(n *Node, out reflect.Value) error {
	if n.Kind != MappingNode {
		return d.errf(n, "want a mapping (key: value lines), not %s", what(n))
	}
	t := out.Type()
	if t.Key().Kind() != reflect.String {
		return d.errf(n, "cannot decode into %s: keys must be strings", t)
	}
	if out.IsNil() {
		out.Set(reflect.MakeMapWithSize(t, len(n.Content)/2))
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		d.path = append(d.path, k.Value)
		e := reflect.New(t.Elem()).Elem()
		err := d.value(v, e)
		d.path = d.path[:len(d.path)-1]
		if err != nil {
			return err
		}
		out.SetMapIndex(reflect.ValueOf(k.Value).Convert(t.Key()), e)
	}
	return nil
}

func (d *decoder) scalar(n *Node, out reflect.Value) error {
	s := n.Value
	plain := n.Style == Plain
	switch out.Kind() {
	case reflect.String:
		out.SetString(s)
		return nil
	case reflect.Bool:
		if b, ok := parseBool(s); ok && plain {
			out.SetBool(b)
			return nil
		}
		switch s {
		case "y", "Y", "yes", "Yes", "YES", "on", "On", "ON":
			if plain {
				out.SetBool(true)
				return nil
			}
		case "n", "N", "no", "No", "NO", "off", "Off", "OFF":
			if plain {
				out.SetBool(false)
				return nil
			}
		}
		return d.errf(n, "%s: want true or false", what(n))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if out.Type() == durationType {
			return d.duration(n, out)
		}
		if !plain {
			return d.errf(n, "%s is quoted text: write a number without quotes", what(n))
		}
		v, err := parseInt(s)
		if err != nil {
			return d.errf(n, "%s: %v", what(n), err)
		}
		if out.OverflowInt(v) {
			return d.errf(n, "%s does not fit in %s", what(n), out.Type())
		}
		out.SetInt(v)
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if !plain {
			return d.errf(n, "%s is quoted text: write a number without quotes", what(n))
		}
		v, err := parseUint(s)
		if err != nil {
			return d.errf(n, "%s: %v", what(n), err)
		}
		if out.OverflowUint(v) {
			return d.errf(n, "%s does not fit in %s", what(n), out.Type())
		}
		out.SetUint(v)
		return nil
	case reflect.Float32, reflect.Float64:
		if !plain {
			return d.errf(n, "%s is quoted text: write a number without quotes", what(n))
		}
		v, ok := parseFloat(s)
		if !ok {
			if i, err := parseInt(s); err == nil {
				v, ok = float64(i), true
			}
		}
		if !ok {
			return d.errf(n, "%s is not a number", what(n))
		}
		if out.OverflowFloat(v) {
			return d.errf(n, "%s does not fit in %s", what(n), out.Type())
		}
		out.SetFloat(v)
		return nil
	}
	return d.errf(n, "cannot decode into %s", out.Type())
}

// duration decodes a time.Duration: text with a unit; a bare 0 is zero.
func (d *decoder) duration(n *Node, out reflect.Value) error {
	if n.Style == Plain && n.Value == "0" {
		out.SetInt(0)
		return nil
	}
	if _, err := parseInt(n.Value); err == nil && n.Style == Plain {
		return d.errf(n, "%s is a number without a unit: write a duration such as 10s, 500ms or 1m30s", what(n))
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return d.errf(n, "%s is not a duration (e.g. 10s, 500ms, 1m30s)", what(n))
	}
	out.SetInt(int64(v))
	return nil
}

func parseBool(s string) (v, ok bool) {
	switch s {
	case "true", "True", "TRUE":
		return true, true
	case "false", "False", "FALSE":
		return false, true
	}
	return false, false
}

// intText checks an integer's text, without its sign, and returns it
// without _ separators, with its base.
func intText(s string) (digits string, base int, err error) {
	s = strings.ReplaceAll(s, "_", "")
	base = 10
	if len(s) > 2 && s[0] == '0' {
		switch s[1] {
		case 'x', 'X':
			base = 16
		case 'o', 'O':
			base = 8
		case 'b', 'B':
			base = 2
		}
		if base != 10 {
			s = s[2:]
		}
	}
	if base == 10 && len(s) > 1 && s[0] == '0' {
		return "", 0, fmt.Errorf("a leading zero is ambiguous: write %s, or 0o%s for octal", strings.TrimLeft(s, "0"), strings.TrimLeft(s, "0"))
	}
	if s == "" {
		return "", 0, fmt.Errorf("not an integer")
	}
	return s, base, nil
}

// numeric tells whether s may be a number: it starts with a digit or a
// sign (or, for a float, a dot); "_1" is text.
func numeric(s string, dot bool) bool {
	return s != "" && (s[0] >= '0' && s[0] <= '9' || s[0] == '-' || s[0] == '+' || dot && s[0] == '.')
}

func parseInt(s string) (int64, error) {
	if !numeric(s, false) {
		return 0, fmt.Errorf("not an integer")
	}
	neg := false
	t := s
	if t != "" && (t[0] == '-' || t[0] == '+') {
		neg, t = t[0] == '-', t[1:]
	}
	digits, base, err := intText(t)
	if err != nil {
		return 0, err
	}
	u, err := strconv.ParseUint(digits, base, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return 0, fmt.Errorf("out of range")
		}
		return 0, fmt.Errorf("not an integer")
	}
	if neg {
		if u > 1<<63 {
			return 0, fmt.Errorf("out of range")
		}
		return -int64(u), nil
	}
	if u > math.MaxInt64 {
		return 0, fmt.Errorf("out of range")
	}
	return int64(u), nil
}

func parseUint(s string) (uint64, error) {
	if !numeric(s, false) {
		return 0, fmt.Errorf("not an integer")
	}
	t := strings.TrimPrefix(s, "+")
	if strings.HasPrefix(t, "-") {
		if v, err := parseInt(s); err == nil && v == 0 {
			return 0, nil
		}
		return 0, fmt.Errorf("must not be negative")
	}
	digits, base, err := intText(t)
	if err != nil {
		return 0, err
	}
	u, err := strconv.ParseUint(digits, base, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return 0, fmt.Errorf("out of range")
		}
		return 0, fmt.Errorf("not an integer")
	}
	return u, nil
}

// parseFloat reads a YAML 1.2 float: [-+]digits[.digits][e[-+]digits],
// .5, .inf and .nan in their spellings.
func parseFloat(s string) (float64, bool) {
	sign, rest := "", s
	if rest != "" && (rest[0] == '-' || rest[0] == '+') {
		sign, rest = rest[:1], rest[1:]
	}
	switch rest {
	case ".inf", ".Inf", ".INF":
		if sign == "-" {
			return math.Inf(-1), true
		}
		return math.Inf(1), true
	case ".nan", ".NaN", ".NAN":
		if sign != "" {
			return 0, false
		}
		return math.NaN(), true
	}
	if !numeric(s, true) {
		return 0, false
	}
	if s[0] != '.' {
		s = strings.ReplaceAll(s, "_", "") // separators, as in integers
	}
	t := s
	if t != "" && (t[0] == '-' || t[0] == '+') {
		t = t[1:]
	}
	mant, exp, hasExp := strings.Cut(strings.ToLower(t), "e")
	intPart, frac, hasDot := strings.Cut(mant, ".")
	if !digitsOnly(intPart) || !digitsOnly(frac) || (intPart == "" && frac == "") || (!hasDot && !hasExp) {
		return 0, false
	}
	if hasExp {
		e := strings.TrimLeft(exp, "+-")
		if len(exp)-len(e) > 1 || e == "" || !digitsOnly(e) {
			return 0, false
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil // out of range (1e700) is no number
}

func digitsOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// anyValue resolves a node as YAML 1.2's core schema: mappings are
// map[string]any, lists []any, plain scalars null (nil), bool, int or
// float64 by their text, anything else a string.
func anyValue(n *Node) any {
	switch n.Kind {
	case DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return anyValue(n.Content[0])
	case MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = anyValue(n.Content[i+1])
		}
		return m
	case SequenceNode:
		l := make([]any, len(n.Content))
		for i, e := range n.Content {
			l[i] = anyValue(e)
		}
		return l
	}
	if n.Style != Plain {
		return n.Value
	}
	if n.IsNull() {
		return nil
	}
	if b, ok := parseBool(n.Value); ok {
		return b
	}
	i, err := parseInt(n.Value)
	if err == nil {
		if int64(int(i)) == i {
			return int(i)
		}
		return i
	}
	if err.Error() == "out of range" {
		if u, err := parseUint(n.Value); err == nil {
			return u
		}
		if f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64); err == nil {
			return f // past 64 bits: as other YAML libraries, a float
		}
	}
	if f, ok := parseFloat(n.Value); ok {
		return f
	}
	return n.Value
}
