// Package yamlconf reads floorhub's configuration files: a strict subset of
// YAML 1.2, parsed to a tree of nodes that carry their line and column, and
// decoded into Go values by their `yaml:"name"` struct tags.
//
// It exists because the agent must fit in 8 MiB on a gateway, and the
// general YAML library (gopkg.in/yaml.v3, with the regexp package it pulled
// in) cost about 320 KB of that binary; a configuration needs far less of
// YAML than a general library offers. That library stays a test-only
// dependency: the differential tests and FuzzParse hold this package to it.
//
// Accepted:
//   - block mappings (key: value) and block sequences (- item), also a
//     mapping inside a list item (- key: v, then more keys under it) and a
//     list written at the same indentation as its key;
//   - plain, 'single-quoted' (a doubled quote is one quote) and "double-quoted" scalars,
//     with YAML's escapes (\n, \t, \", \\, \xXX, \uXXXX, \UXXXXXXXX, ...)
//     and their folding across lines;
//   - literal (|) and folded (>) block scalars, with the chomping (- +)
//     and indentation (1-9) indicators, so that a PEM key can be pasted;
//   - flow sequences [a, b] and flow mappings {a: 1, b: [x]}, also across
//     lines;
//   - comments, one "---" before the document, "..." after it (an empty
//     document after a "---" is allowed: it holds nothing), empty values,
//     ~ and null.
//
// Refused, each with an error naming the line: a tab in the indentation,
// anchors (&), aliases (*), tags (!), merge keys (<<), complex keys (? and
// keys that are lists or mappings), directives (%), a key given twice, a
// second document, indentation that fits no mapping or list, unterminated
// quotes and brackets, control characters, the line separators U+0085,
// U+2028 and U+2029, and text that is not UTF-8.
//
// Decode is strict: a key that matches no field is an error naming the
// key and its line. Scalars are resolved as in YAML 1.2's core schema,
// with these choices:
//   - booleans are true and false (also True, TRUE, False, FALSE); a bool
//     field also takes yes/no, on/off and y/n, as the library used before
//     did, so that existing files keep working;
//   - integers are decimal, 0x hexadecimal, 0o octal or 0b binary, with
//     optional _ separators; a decimal with a leading zero (017) is
//     refused as ambiguous; a float is never truncated into an integer;
//   - a time.Duration is written with a unit ("10s", "1m30s"); a bare
//     number other than 0 is refused, as before;
//   - a string field takes any scalar's text (7 is "7");
//   - dates stay strings.
package yamlconf
