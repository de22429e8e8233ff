package yamlconf

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Kind is what a node is.
type Kind uint8

// The kinds of node. A Node's Kind is 0 when it was never set (a struct
// field whose key is absent).
const (
	DocumentNode Kind = iota + 1
	SequenceNode
	MappingNode
	ScalarNode
)

// Style is how a node was written.
type Style uint8

// The styles: scalars are plain, quoted or block scalars; collections are
// block (Plain) or Flow.
const (
	Plain Style = iota
	SingleQuoted
	DoubleQuoted
	Literal // |
	Folded  // >
	Flow    // [ ] or { }
)

// Node is one node of a document.
type Node struct {
	Kind  Kind
	Style Style
	// Value is a scalar's text after quoting, escapes and folding.
	Value string
	// Content: a document's one node, a sequence's items, a mapping's keys
	// and values alternately.
	Content []*Node
	// Line and Column, from 1, locate the node's first character.
	Line, Column int
}

// IsNull tells whether n is an empty value, ~ or null.
func (n *Node) IsNull() bool {
	if n.Kind != ScalarNode || n.Style != Plain {
		return false
	}
	switch n.Value {
	case "", "~", "null", "Null", "NULL":
		return true
	}
	return false
}

// Error is a syntax or decoding error at a line.
type Error struct {
	// Line and Column locate the error (Column is 0 when unknown).
	Line, Column int
	// Path names the key, e.g. devices[0].settings.seed; "" when none.
	Path string
	// Msg says what is wrong.
	Msg string
}

func (e *Error) Error() string {
	s := "line " + strconv.Itoa(e.Line)
	if e.Path != "" {
		s += ": " + e.Path
	}
	return s + ": " + e.Msg
}

// maxDepth bounds nesting, so that no input can exhaust the stack.
const maxDepth = 100

// Parse parses one document. The result is a DocumentNode whose Content
// holds the top node, or nothing for an empty document (blank lines and
// comments only).
func Parse(src []byte) (*Node, error) {
	src = normalize(src)
	if line, col, what := badChar(src); line > 0 {
		// Parse a copy without the bad characters, to name the key.
		path := ""
		if root, err := parse(sanitize(src)); err == nil {
			path = pathAt(root, line)
		}
		return nil, &Error{Line: line, Column: col, Path: path, Msg: what}
	}
	return parse(src)
}

func parse(src []byte) (doc *Node, err error) {
	p := &parser{src: src, line: 1}
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(*Error)
			if !ok {
				panic(r)
			}
			doc, err = nil, e
		}
	}()
	return p.stream(), nil
}

// normalize drops a byte order mark and turns CR LF and CR into LF.
func normalize(src []byte) []byte {
	src = bytes.TrimPrefix(src, []byte("\xEF\xBB\xBF"))
	if bytes.IndexByte(src, '\r') < 0 {
		return src
	}
	src = bytes.ReplaceAll(src, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(src, []byte("\r"), []byte("\n"))
}

// badChar finds the first character YAML refuses: a control character or
// bytes that are not UTF-8.
func badChar(src []byte) (line, col int, what string) {
	line, ls := 1, 0
	for i := 0; i < len(src); {
		r, n := utf8.DecodeRune(src[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			return line, i - ls + 1, fmt.Sprintf("byte 0x%02X is not UTF-8 text", src[i])
		case r == '\n':
			line, ls = line+1, i+1
		case r == '\t', r == 0xFEFF:
		case r == 0x85, r == 0x2028, r == 0x2029:
			return line, i - ls + 1, fmt.Sprintf("the line separator %U is not allowed (write \"\\N\", \"\\L\" or \"\\P\" in double quotes if you mean it)", r)
		case r < 0x20, r == 0x7F, r >= 0x80 && r <= 0x9F, r == 0xFFFE, r == 0xFFFF:
			return line, i - ls + 1, fmt.Sprintf("control character %U is not allowed (YAML takes printable text; write it as \"\\x%02X\" in double quotes if you mean it)", r, r)
		}
		i += n
	}
	return 0, 0, ""
}

// sanitize replaces what badChar refuses by '?'.
func sanitize(src []byte) []byte {
	out := make([]byte, 0, len(src))
	for i := 0; i < len(src); {
		r, n := utf8.DecodeRune(src[i:])
		bad := (r == utf8.RuneError && n == 1) || (r < 0x20 && r != '\t' && r != '\n') || r == 0x7F ||
			(r >= 0x80 && r <= 0x9F) || r == 0x2028 || r == 0x2029 || r == 0xFFFE || r == 0xFFFF
		if bad {
			out = append(out, '?')
		} else {
			out = append(out, src[i:i+n]...)
		}
		i += n
	}
	return out
}

// pathAt names the deepest key on line, or the list item there.
func pathAt(n *Node, line int) string {
	best, bestDepth := "", -1
	var walk func(n *Node, path string, depth int)
	walk = func(n *Node, path string, depth int) {
		switch n.Kind {
		case DocumentNode:
			for _, k := range n.Content {
				walk(k, path, depth)
			}
		case MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := joinKey(path, k.Value)
				if (k.Line == line || (v.Kind == ScalarNode && v.Line == line)) && depth+1 > bestDepth {
					best, bestDepth = p, depth+1
				}
				walk(v, p, depth+1)
			}
		case SequenceNode:
			for i, e := range n.Content {
				p := path + "[" + strconv.Itoa(i) + "]"
				if e.Kind == ScalarNode && e.Line == line && depth+1 > bestDepth {
					best, bestDepth = p, depth+1
				}
				walk(e, p, depth+1)
			}
		}
	}
	walk(n, "", 0)
	return best
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

type parser struct {
	src   []byte
	i     int // read offset
	line  int // line of i, from 1
	ls    int // offset of the start of i's line
	path  []string
	depth int
}

type mark struct{ i, line, ls int }

func (p *parser) save() mark     { return mark{p.i, p.line, p.ls} }
func (p *parser) restore(m mark) { p.i, p.line, p.ls = m.i, m.line, m.ls }
func (p *parser) col() int       { return utf8.RuneCount(p.src[p.ls:p.i]) + 1 }
func (p *parser) eof() bool      { return p.i >= len(p.src) }

// at returns the byte k after the read offset, 0 past the end.
func (p *parser) at(k int) byte {
	if p.i+k < len(p.src) && p.i+k >= 0 {
		return p.src[p.i+k]
	}
	return 0
}

// blankAt: a space, tab, line break or the end, k bytes on.
func (p *parser) blankAt(k int) bool {
	j := p.i + k
	if j >= len(p.src) {
		return true
	}
	c := p.src[j]
	return c == ' ' || c == '\t' || c == '\n'
}

func (p *parser) advance() {
	if p.eof() {
		return
	}
	if p.src[p.i] == '\n' {
		p.line++
		p.ls = p.i + 1
	}
	p.i++
}

func (p *parser) pathString() string {
	var b strings.Builder
	for _, s := range p.path {
		if b.Len() > 0 && !strings.HasPrefix(s, "[") {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}

func (p *parser) failAt(line, col int, format string, args ...any) {
	panic(&Error{Line: line, Column: col, Path: p.pathString(), Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) fail(format string, args ...any) { p.failAt(p.line, p.col(), format, args...) }

func (p *parser) enter() {
	p.depth++
	if p.depth > maxDepth {
		p.fail("nested more than %d levels deep", maxDepth)
	}
}

func (p *parser) leave() { p.depth-- }

func (p *parser) skipSpaces() int {
	n := 0
	for p.at(0) == ' ' || p.at(0) == '\t' {
		p.i++
		n++
	}
	return n
}

// skipBlankLines skips lines holding only spaces and comments, from the
// start of a line, and stops at the start of the next content line.
func (p *parser) skipBlankLines() {
	for !p.eof() {
		m := p.save()
		p.skipSpaces()
		if p.at(0) == '#' {
			for !p.eof() && p.at(0) != '\n' {
				p.i++
			}
		}
		if p.eof() {
			return
		}
		if p.at(0) != '\n' {
			p.restore(m)
			return
		}
		p.advance()
	}
}

// indent counts the spaces that start the current line (from its start)
// and refuses a tab among them.
func (p *parser) indent() int {
	n := 0
	for p.at(n) == ' ' {
		n++
	}
	if p.at(n) == '\t' {
		p.failAt(p.line, n+1, "a tab in the indentation: YAML indents with spaces only")
	}
	return n
}

// docMarker tells whether the line, from its start, is --- or ....
func (p *parser) docMarker() string {
	if p.i != p.ls || p.i+3 > len(p.src) || !p.blankAt(3) {
		return ""
	}
	switch s := string(p.src[p.i : p.i+3]); s {
	case "---", "...":
		return s
	}
	return ""
}

// endLine consumes the rest of the line after a value: spaces and a
// comment only.
func (p *parser) endLine() {
	n := p.skipSpaces()
	if p.at(0) == '#' && (n > 0 || p.i > 0 && p.src[p.i-1] == ' ' || p.i > 0 && p.src[p.i-1] == '\t') {
		for !p.eof() && p.at(0) != '\n' {
			p.i++
		}
	}
	if p.eof() {
		return
	}
	if p.at(0) != '\n' {
		rest := p.src[p.i:]
		if k := bytes.IndexByte(rest, '\n'); k >= 0 {
			rest = rest[:k]
		}
		p.fail("unexpected text %q after the value (quote the whole value, or start a comment with \" #\")", rest)
	}
	p.advance()
}

func (p *parser) stream() *Node {
	doc := &Node{Kind: DocumentNode, Line: 1, Column: 1}
	p.skipBlankLines()
	if p.at(0) == '%' {
		p.fail("directives (%%) are not supported in floorhub configs")
	}
	var root *Node
	switch p.docMarker() {
	case "---":
		p.i += 3
		root = p.valueAfter(-1, false, true)
	case "...":
	default:
		if !p.eof() {
			root = p.blockAt(p.indent(), -1)
		}
	}
	if root != nil {
		doc.Content = []*Node{root}
	}
	p.trailing()
	return doc
}

// trailing accepts what may follow the document: "...", and "---"
// followed by nothing.
func (p *parser) trailing() {
	sep := false
	for {
		p.skipBlankLines()
		if p.eof() {
			return
		}
		switch p.docMarker() {
		case "...":
			p.i += 3
			p.endLine()
			sep = true
			continue
		case "---":
			p.i += 3
			p.skipSpaces()
			if p.at(0) == '#' || p.at(0) == '\n' || p.eof() {
				p.endLine()
				sep = true
				continue
			}
			sep = true
		}
		if sep {
			p.path = nil
			p.skipSpaces()
			if k, ok := p.keyAhead(); ok {
				p.path = []string{k}
			}
			p.fail("a second YAML document (after --- or ...): a config file holds one document, so this one would be ignored")
		}
		p.fail("this line fits no mapping or list above it (check its indentation)")
	}
}

// valueAfter parses the value after "key:" of a mapping, or after "-" of
// a sequence, at indentation parent; the read offset is just after the
// indicator. It returns at the start of the next line.
func (p *parser) valueAfter(parent int, inSeq, root bool) *Node {
	line, col := p.line, p.col()
	p.skipSpaces()
	if p.eof() || p.at(0) == '\n' || p.at(0) == '#' {
		p.endLine()
		p.skipBlankLines()
		if p.eof() || p.docMarker() != "" {
			return &Node{Kind: ScalarNode, Line: line, Column: col}
		}
		ind := p.indent()
		if ind > parent {
			return p.blockAt(ind, parent)
		}
		if !inSeq && !root && ind == parent && p.at(ind) == '-' && p.blankAt(ind+1) {
			p.i += ind
			return p.sequence(ind)
		}
		return &Node{Kind: ScalarNode, Line: line, Column: col}
	}
	c := p.i - p.ls
	p.refuseIndicator()
	if inSeq {
		if p.at(0) == '-' && p.blankAt(1) {
			return p.sequence(c)
		}
		if _, ok := p.keyAhead(); ok {
			return p.mapping(c)
		}
		return p.inline(parent)
	}
	if _, ok := p.keyAhead(); ok {
		p.fail("a mapping cannot start on the line of its key: put it on the next line, indented")
	}
	if p.at(0) == '-' && p.blankAt(1) {
		p.fail("a list cannot start on the line of its key: put each \"- item\" on its own line, indented")
	}
	return p.inline(parent)
}

// blockAt parses the node that starts at the current line, indented ind.
func (p *parser) blockAt(ind, parent int) *Node {
	p.i = p.ls + ind
	if p.at(0) == '-' && p.blankAt(1) {
		return p.sequence(ind)
	}
	if _, ok := p.keyAhead(); ok {
		return p.mapping(ind)
	}
	return p.inline(parent)
}

// keyAhead tells whether a key and its ":" start at the read offset, and
// returns the key's text; it reads nothing.
func (p *parser) keyAhead() (string, bool) {
	m := p.save()
	defer p.restore(m)
	switch p.at(0) {
	case '"', '\'':
		q := p.at(0)
		j := p.i + 1
		for ; j < len(p.src) && p.src[j] != '\n'; j++ {
			if q == '"' && p.src[j] == '\\' {
				j++
				continue
			}
			if p.src[j] == q {
				if q == '\'' && j+1 < len(p.src) && p.src[j+1] == '\'' {
					j++
					continue
				}
				break
			}
		}
		if j >= len(p.src) || p.src[j] != q {
			return "", false
		}
		k := string(p.src[p.i+1 : j])
		p.i = j + 1
		p.skipSpaces()
		return k, p.at(0) == ':' && p.blankAt(1)
	case '[', '{', '#', '\n', 0:
		return "", false
	}
	for j := p.i; j < len(p.src) && p.src[j] != '\n'; j++ {
		switch p.src[j] {
		case ':':
			p.i = j
			if p.blankAt(1) {
				return strings.TrimRight(string(p.src[m.i:j]), " \t"), true
			}
		case '#':
			if j > m.i && (p.src[j-1] == ' ' || p.src[j-1] == '\t') {
				return "", false
			}
		}
	}
	return "", false
}

// mapping parses a block mapping whose first key is at the read offset,
// indented ind.
func (p *parser) mapping(ind int) *Node {
	p.enter()
	defer p.leave()
	n := &Node{Kind: MappingNode, Line: p.line, Column: p.col()}
	seen := map[string]int{}
	for {
		k := p.key()
		p.path = append(p.path, k.Value)
		if first, dup := seen[k.Value]; dup {
			p.failAt(k.Line, k.Column, "the key is given twice (first at line %d)", first)
		}
		seen[k.Value] = k.Line
		v := p.valueAfter(ind, false, false)
		p.path = p.path[:len(p.path)-1]
		n.Content = append(n.Content, k, v)
		p.skipBlankLines()
		if p.eof() || p.docMarker() != "" {
			return n
		}
		c := p.indent()
		if c < ind {
			return n
		}
		if c > ind {
			p.failAt(p.line, c+1, "bad indentation: this line is indented %d spaces, more than the key above it (%d); a value goes on the key's line or, for a mapping or list, on the next lines under it", c, ind)
		}
		p.i += c
		if p.at(0) == '-' && p.blankAt(1) {
			p.fail("a list item among the keys of a mapping: indent the list under its key")
		}
		if _, ok := p.keyAhead(); !ok {
			p.fail("expected a key (key: value) at this indentation")
		}
	}
}

// key reads a mapping key and its ":".
func (p *parser) key() *Node {
	k := &Node{Kind: ScalarNode, Line: p.line, Column: p.col()}
	switch c := p.at(0); c {
	case '"':
		k.Style, k.Value = DoubleQuoted, p.doubleQuoted()
	case '\'':
		k.Style, k.Value = SingleQuoted, p.singleQuoted()
	default:
		p.refuseIndicator()
		start := p.i
		for !p.eof() && !(p.at(0) == ':' && p.blankAt(1)) {
			p.i++
		}
		k.Value = strings.TrimRight(string(p.src[start:p.i]), " \t")
		if k.Value == "<<" {
			p.path = append(p.path, k.Value)
			p.failAt(k.Line, k.Column, "merge keys (<<) are not supported in floorhub configs: write the keys out")
		}
	}
	p.skipSpaces()
	p.i++ // ':', as keyAhead found
	return k
}

// refuseIndicator refuses what this subset leaves out, where a node
// starts.
func (p *parser) refuseIndicator() {
	switch c := p.at(0); c {
	case '&', '*', '!':
		what := map[byte]string{'&': "anchors (&)", '*': "aliases (*)", '!': "tags (!)"}[c]
		p.fail("%s are not supported in floorhub configs: write the value out", what)
	case '?':
		if p.blankAt(1) {
			p.fail("complex keys (?) are not supported in floorhub configs")
		}
	case '%', '@', '`':
		p.fail("%q cannot start a plain value: quote the value", c)
	}
}

// sequence parses a block sequence whose first "-" is at the read offset,
// indented ind.
func (p *parser) sequence(ind int) *Node {
	p.enter()
	defer p.leave()
	n := &Node{Kind: SequenceNode, Line: p.line, Column: p.col()}
	for idx := 0; ; idx++ {
		p.i++ // '-'
		p.path = append(p.path, "["+strconv.Itoa(idx)+"]")
		n.Content = append(n.Content, p.valueAfter(ind, true, false))
		p.path = p.path[:len(p.path)-1]
		p.skipBlankLines()
		if p.eof() || p.docMarker() != "" {
			return n
		}
		c := p.indent()
		if c < ind {
			return n
		}
		if c > ind {
			p.path = append(p.path, "["+strconv.Itoa(idx)+"]")
			p.failAt(p.line, c+1, "bad indentation: this line is indented %d spaces, more than the list item above it (%d)", c, ind)
		}
		if !(p.at(c) == '-' && p.blankAt(c+1)) {
			return n // the next key of the mapping the list is the value of
		}
		p.i += c
	}
}

// inline parses a scalar or flow collection that starts at the read
// offset, in a block node at indentation parent, and the rest of its line.
func (p *parser) inline(parent int) *Node {
	n := &Node{Kind: ScalarNode, Line: p.line, Column: p.col()}
	switch p.at(0) {
	case '[', '{':
		n = p.flow()
		p.endLine()
		return n
	case '"':
		n.Style, n.Value = DoubleQuoted, p.doubleQuoted()
		p.endLine()
		return n
	case '\'':
		n.Style, n.Value = SingleQuoted, p.singleQuoted()
		p.endLine()
		return n
	case '|', '>':
		return p.blockScalar(parent)
	case '-':
		if p.blankAt(1) {
			p.fail("a list item cannot start here: put each \"- item\" on its own line")
		}
	}
	p.refuseIndicator()
	n.Value = p.plainBlock(parent)
	return n
}

// plainBlock reads a plain scalar in a block, with the lines that
// continue it (indented more than parent), folded.
func (p *parser) plainBlock(parent int) string {
	var b strings.Builder
	for {
		start := p.i
		comment := false
	scan:
		for !p.eof() {
			switch p.at(0) {
			case '\n':
				break scan
			case ':':
				if p.blankAt(1) {
					p.fail("a key: value inside a value: check the indentation, or quote the value")
				}
			case '#':
				if p.i > start && (p.src[p.i-1] == ' ' || p.src[p.i-1] == '\t') {
					comment = true
					break scan
				}
			}
			p.i++
		}
		text := strings.TrimRight(string(p.src[start:p.i]), " \t")
		b.WriteString(text)
		p.endLine()
		if comment {
			return b.String()
		}
		// Does the next content line continue the scalar?
		m := p.save()
		empty := 0
		for !p.eof() {
			lm := p.save()
			p.skipSpaces()
			if p.eof() {
				break
			}
			if p.at(0) != '\n' {
				p.restore(lm)
				break
			}
			p.advance()
			empty++
		}
		if p.eof() || p.docMarker() != "" {
			p.restore(m)
			return b.String()
		}
		ind := p.indent()
		if ind <= parent || p.at(ind) == '#' {
			p.restore(m)
			return b.String()
		}
		p.i += ind
		if empty == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteString(strings.Repeat("\n", empty))
		}
	}
}

// singleQuoted reads a 'single-quoted' scalar from its opening quote.
func (p *parser) singleQuoted() string {
	line, col := p.line, p.col()
	p.i++
	var b strings.Builder
	for {
		if p.eof() {
			p.failAt(line, col, "unterminated quoted value: the ' at line %d column %d is never closed", line, col)
		}
		switch c := p.at(0); c {
		case '\'':
			if p.at(1) == '\'' {
				b.WriteByte('\'')
				p.i += 2
				continue
			}
			p.i++
			return b.String()
		case '\n':
			p.foldQuoted(&b, line, col, '\'')
		default:
			b.WriteByte(c)
			p.i++
		}
	}
}

// foldQuoted folds a line break in a quoted scalar: a space, or a line
// break per empty line.
func (p *parser) foldQuoted(b *strings.Builder, line, col int, q byte) {
	s := strings.TrimRight(b.String(), " \t")
	b.Reset()
	b.WriteString(s)
	empty := 0
	p.advance()
	for {
		if p.docMarker() != "" {
			p.failAt(line, col, "unterminated quoted value: the %c at line %d column %d is never closed", q, line, col)
		}
		p.skipSpaces()
		if p.at(0) != '\n' {
			break
		}
		p.advance()
		empty++
	}
	if empty == 0 {
		b.WriteByte(' ')
	} else {
		b.WriteString(strings.Repeat("\n", empty))
	}
}

// doubleQuoted reads a "double-quoted" scalar from its opening quote.
func (p *parser) doubleQuoted() string {
	line, col := p.line, p.col()
	p.i++
	var b strings.Builder
	for {
		if p.eof() {
			p.failAt(line, col, "unterminated quoted value: the \" at line %d column %d is never closed", line, col)
		}
		switch c := p.at(0); c {
		case '"':
			p.i++
			return b.String()
		case '\n':
			p.foldQuoted(&b, line, col, '"')
		case '\\':
			p.escape(&b)
		default:
			b.WriteByte(c)
			p.i++
		}
	}
}

// escape reads one escape sequence of a double-quoted scalar.
func (p *parser) escape(b *strings.Builder) {
	c := p.at(1)
	simple := map[byte]string{'0': "\x00", 'a': "\a", 'b': "\b", 't': "\t", '\t': "\t", 'n': "\n", 'v': "\v",
		'f': "\f", 'r': "\r", 'e': "\x1b", ' ': " ", '"': "\"", '/': "/", '\\': "\\",
		'N': "\u0085", '_': "\u00a0", 'L': "\u2028", 'P': "\u2029"}
	if s, ok := simple[c]; ok {
		b.WriteString(s)
		p.i += 2
		return
	}
	if c == '\n' { // an escaped line break joins the lines
		p.i++
		p.advance()
		p.skipSpaces()
		for p.at(0) == '\n' {
			b.WriteByte('\n')
			p.advance()
			p.skipSpaces()
		}
		return
	}
	digits := map[byte]int{'x': 2, 'u': 4, 'U': 8}[c]
	if digits == 0 {
		p.fail("unknown escape \\%c in a double-quoted value (write \\\\ for a backslash)", c)
	}
	if p.i+2+digits > len(p.src) {
		p.fail("the escape \\%c needs %d hexadecimal digits", c, digits)
	}
	v, err := strconv.ParseUint(string(p.src[p.i+2:p.i+2+digits]), 16, 32)
	if err != nil || v > utf8.MaxRune || (v >= 0xD800 && v <= 0xDFFF) {
		p.fail("the escape \\%c needs %d hexadecimal digits of a valid character", c, digits)
	}
	b.WriteRune(rune(v))
	p.i += 2 + digits
}

// blockScalar reads a | or > scalar, from its indicator, in a block node
// at indentation parent.
func (p *parser) blockScalar(parent int) *Node {
	n := &Node{Kind: ScalarNode, Style: Literal, Line: p.line, Column: p.col()}
	if p.at(0) == '>' {
		n.Style = Folded
	}
	p.i++
	chomp, explicit := byte(0), 0
	for k := 0; k < 2; k++ {
		switch c := p.at(0); {
		case (c == '-' || c == '+') && chomp == 0:
			chomp = c
			p.i++
		case c >= '1' && c <= '9' && explicit == 0:
			explicit = int(c - '0')
			p.i++
		}
	}
	if !p.blankAt(0) {
		p.fail("unexpected text after the block scalar's | or >: its text starts on the next line")
	}
	p.endLine()
	ind := -1
	if explicit > 0 {
		ind = parent + explicit
		if parent < 0 {
			ind = explicit
		}
	}
	var lines []string
	broken, leading := false, 0
	for !p.eof() {
		if p.docMarker() != "" {
			break
		}
		sp := 0
		for p.at(sp) == ' ' {
			sp++
		}
		if p.at(sp) == '\n' || p.i+sp >= len(p.src) { // an empty line
			text := ""
			if ind >= 0 && sp > ind {
				text = string(p.src[p.i+ind : p.i+sp])
			}
			lines = append(lines, text)
			if ind < 0 {
				leading = max(leading, sp)
			}
			p.i += sp
			if text != "" { // spaces past the indentation are text
				broken = p.i < len(p.src)
			}
			p.advance()
			continue
		}
		if ind < 0 {
			if sp <= parent || sp == 0 { // as other parsers: never at column 1
				break
			}
			// Leading empty lines may not hold more spaces than the text.
			ind = max(sp, leading)
		}
		if sp < ind {
			break
		}
		end := bytes.IndexByte(p.src[p.i:], '\n')
		if end < 0 {
			end = len(p.src) - p.i
		}
		lines = append(lines, string(p.src[p.i+ind:p.i+end]))
		p.i += end
		broken = p.i < len(p.src) // the line ends with a line break
		p.advance()
	}
	// Trailing empty lines are for the chomping.
	trail := 0
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
		trail++
	}
	var b strings.Builder
	if n.Style == Literal {
		b.WriteString(strings.Join(lines, "\n"))
	} else {
		foldLines(&b, lines)
	}
	switch {
	case len(lines) == 0:
		if chomp == '+' {
			b.WriteString(strings.Repeat("\n", trail))
		}
	case chomp == '-', !broken:
	case chomp == '+':
		b.WriteString(strings.Repeat("\n", trail+1))
	default:
		b.WriteByte('\n')
	}
	n.Value = b.String()
	return n
}

// foldLines folds a > scalar's lines: a line break between two lines of
// text is a space, unless a line is more indented or empty lines are
// between them.
func foldLines(b *strings.Builder, lines []string) {
	started, prevMore, empty := false, false, 0
	for _, l := range lines {
		if l == "" {
			empty++
			continue
		}
		more := l[0] == ' ' || l[0] == '\t'
		switch {
		case !started:
			b.WriteString(strings.Repeat("\n", empty))
		case !prevMore && !more && empty == 0:
			b.WriteByte(' ')
		case !prevMore && !more:
			b.WriteString(strings.Repeat("\n", empty))
		default:
			b.WriteString(strings.Repeat("\n", empty+1))
		}
		b.WriteString(l)
		started, prevMore, empty = true, more, 0
	}
}

// flowSkip skips spaces, line breaks and comments inside [ ] and { }.
func (p *parser) flowSkip(line, col int, close byte) {
	for {
		switch p.at(0) {
		case ' ', '\t':
			p.i++
		case '\n':
			p.advance()
			if p.docMarker() != "" {
				p.failAt(line, col, "unterminated flow collection: the %c at line %d column %d is never closed by %c", map[byte]byte{']': '[', '}': '{'}[close], line, col, close)
			}
		case '#':
			if p.i > 0 && p.src[p.i-1] != ' ' && p.src[p.i-1] != '\t' && p.src[p.i-1] != '\n' {
				return
			}
			for !p.eof() && p.at(0) != '\n' {
				p.i++
			}
		case 0:
			if p.eof() {
				p.failAt(line, col, "unterminated flow collection: the %c at line %d column %d is never closed by %c", map[byte]byte{']': '[', '}': '{'}[close], line, col, close)
			}
			return
		default:
			return
		}
	}
}

// flow reads a flow collection from its [ or {.
func (p *parser) flow() *Node {
	p.enter()
	defer p.leave()
	line, col := p.line, p.col()
	if p.at(0) == '[' {
		n := &Node{Kind: SequenceNode, Style: Flow, Line: line, Column: col}
		p.i++
		for idx := 0; ; idx++ {
			p.flowSkip(line, col, ']')
			if p.at(0) == ']' {
				p.i++
				return n
			}
			p.path = append(p.path, "["+strconv.Itoa(idx)+"]")
			e := p.flowNode()
			p.path = p.path[:len(p.path)-1]
			p.flowSkip(line, col, ']')
			if p.at(0) == ':' && (e.Kind == ScalarNode) && (p.blankAt(1) || strings.IndexByte(",[]{}", p.at(1)) >= 0) {
				p.fail("a key: value pair inside [ ] is not supported: write a mapping as {key: value}")
			}
			n.Content = append(n.Content, e)
			switch p.at(0) {
			case ',':
				p.i++
			case ']':
			default:
				p.fail("expected , or ] in the list that starts at line %d column %d", line, col)
			}
		}
	}
	n := &Node{Kind: MappingNode, Style: Flow, Line: line, Column: col}
	p.i++
	seen := map[string]int{}
	for {
		p.flowSkip(line, col, '}')
		if p.at(0) == '}' {
			p.i++
			return n
		}
		if p.at(0) == '[' || p.at(0) == '{' {
			p.fail("a list or mapping as a key is not supported")
		}
		k := p.flowNode()
		p.path = append(p.path, k.Value)
		if k.Value == "<<" && k.Style == Plain {
			p.failAt(k.Line, k.Column, "merge keys (<<) are not supported in floorhub configs: write the keys out")
		}
		if first, dup := seen[k.Value]; dup {
			p.failAt(k.Line, k.Column, "the key is given twice (first at line %d)", first)
		}
		seen[k.Value] = k.Line
		p.flowSkip(line, col, '}')
		v := &Node{Kind: ScalarNode, Line: p.line, Column: p.col()}
		if p.at(0) == ':' {
			p.i++
			p.flowSkip(line, col, '}')
			v.Line, v.Column = p.line, p.col()
			if p.at(0) != ',' && p.at(0) != '}' {
				v = p.flowNode()
			}
		}
		p.path = p.path[:len(p.path)-1]
		n.Content = append(n.Content, k, v)
		p.flowSkip(line, col, '}')
		switch p.at(0) {
		case ',':
			p.i++
		case '}':
		default:
			p.fail("expected , or } in the mapping that starts at line %d column %d", line, col)
		}
	}
}

// flowNode reads one node inside [ ] or { }.
func (p *parser) flowNode() *Node {
	n := &Node{Kind: ScalarNode, Line: p.line, Column: p.col()}
	switch c := p.at(0); c {
	case '[', '{':
		return p.flow()
	case '"':
		n.Style, n.Value = DoubleQuoted, p.doubleQuoted()
		return n
	case '\'':
		n.Style, n.Value = SingleQuoted, p.singleQuoted()
		return n
	case ',', ']', '}':
		p.fail("an empty entry before %q (remove the extra comma, or write null)", c)
	case '|', '>':
		p.fail("a block scalar (%c) cannot be inside [ ] or { }", c)
	case '-':
		if p.blankAt(1) {
			p.fail("a \"- item\" cannot be inside [ ] or { }: separate items with commas")
		}
	case ':':
		if p.blankAt(1) {
			p.fail("a value without a key")
		}
	}
	p.refuseIndicator()
	var b strings.Builder
	for {
		start := p.i
	scan:
		for !p.eof() {
			switch c := p.at(0); c {
			case '\n', ',', '[', ']', '{', '}':
				break scan
			case ':':
				if p.blankAt(1) {
					break scan
				}
			case '#':
				if p.i > start && (p.src[p.i-1] == ' ' || p.src[p.i-1] == '\t') {
					break scan
				}
			}
			p.i++
		}
		b.WriteString(strings.TrimRight(string(p.src[start:p.i]), " \t"))
		if p.at(0) != '\n' {
			break
		}
		// A plain scalar may go on over lines: fold.
		m := p.save()
		empty := -1
		for p.at(0) == '\n' {
			p.advance()
			empty++
			p.skipSpaces()
		}
		if p.eof() || p.docMarker() != "" || strings.IndexByte(",[]{}#:", p.at(0)) >= 0 {
			p.restore(m)
			break
		}
		if empty == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteString(strings.Repeat("\n", empty))
		}
	}
	n.Value = b.String()
	return n
}
