package importrules

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// mod is the module path; rules name the module's packages relative to it.
const mod = "github.com/floorhub/floorhub"

// A rule forbids the packages matching from (and their tests), except those
// matching exempt, to import, directly or not, any package matching forbid
// unless it also matches allow. A pattern is a package path, relative to
// the module unless its first element has a dot, and "x/..." matches x and
// everything under it.
type rule struct {
	name          string
	from, exempt  []string
	forbid, allow []string
}

// rules are the import rules of the design (the package doc says why).
var rules = []rule{
	{
		name:   "drivers import no store, hub, uplink or agent",
		from:   []string{"sensors/..."},
		forbid: []string{"store/...", "hub/...", "uplink/...", "agent/..."},
	},
	{
		// An allow list rather than a list of consumers, so that a new
		// consumer is covered without touching the rule.
		name:   "the store imports no consumer (nothing of the module but itself)",
		from:   []string{"store/..."},
		forbid: []string{"..."},
		allow:  []string{"store/...", "internal/testkit"},
	},
	{
		name:   "the hub never imports an uplink",
		from:   []string{"hub/..."},
		forbid: []string{"uplink/..."},
	},
	{
		name:   "the uplinks never import the hub",
		from:   []string{"uplink/..."},
		forbid: []string{"hub/..."},
	},
	{
		name:   "only cmd/ imports periph.io/x/host",
		from:   []string{"..."},
		exempt: []string{"cmd/..."},
		forbid: []string{"periph.io/x/host/..."},
	},
}

// pkg is what the rules need to know of one package: its direct imports
// and all its dependencies, each once without and once with its tests.
type pkg struct {
	imports, deps         []string
	testImports, testDeps []string
}

// graph maps an import path to its package. It holds the module's packages
// and everything they depend on (tests included), so that a violation can
// be explained by a chain of imports.
type graph map[string]*pkg

// full expands a pattern's module-relative path.
func full(pattern string) string {
	if pattern == "..." {
		return mod + "/..."
	}
	first, _, _ := strings.Cut(pattern, "/")
	if strings.Contains(first, ".") {
		return pattern
	}
	return mod + "/" + pattern
}

// match reports whether path matches pattern.
func match(pattern, path string) bool {
	p := full(pattern)
	if prefix, ok := strings.CutSuffix(p, "/..."); ok {
		return path == prefix || strings.HasPrefix(path, prefix+"/")
	}
	return path == p
}

func matchAny(patterns []string, path string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return match(p, path) })
}

// check returns the violations of rules in g, one line each, naming the
// chain of imports that leads to the forbidden package (the first one on
// the way: not every package a forbidden import brings along). It also reports a
// rule that applies to no package of g: a renamed directory must not turn
// a rule into one that always passes.
func check(g graph, rules []rule) []string {
	var out []string
	paths := make([]string, 0, len(g))
	for p := range g {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, r := range rules {
		subjects := 0
		for _, p := range paths {
			if !strings.HasPrefix(p, mod+"/") || !matchAny(r.from, p) || matchAny(r.exempt, p) {
				continue
			}
			subjects++
			var bad []string
			for _, d := range slices.Concat(g[p].deps, g[p].testDeps) {
				if d != p && matchAny(r.forbid, d) && !matchAny(r.allow, d) && !slices.Contains(bad, d) {
					bad = append(bad, d)
				}
			}
			// Report the forbidden packages p reaches first: those that
			// come in through another one are that one's consequence.
			for _, d := range bad {
				if !slices.ContainsFunc(bad, func(e string) bool { return g[e] != nil && slices.Contains(g[e].deps, d) }) {
					out = append(out, fmt.Sprintf("%s: %s", r.name, strings.Join(g.chain(p, d), " -> ")))
				}
			}
		}
		if subjects == 0 {
			out = append(out, fmt.Sprintf("%s: no package matches %v", r.name, r.from))
		}
	}
	return out
}

// chain returns a chain of imports from (with its
// tests) to to, as paths relative to the module where they are in it.
func (g graph) chain(from, to string) []string {
	short := func(p string) string { return strings.TrimPrefix(p, mod+"/") }
	out := []string{short(from)}
	cur, first := from, true
	for cur != to && len(out) <= len(g) {
		p := g[cur]
		if p == nil {
			break
		}
		imports := p.imports
		if first {
			imports = slices.Concat(p.imports, p.testImports)
			first = false
		}
		next := ""
		for _, i := range imports {
			if i == to {
				next = i
				break
			}
			if q := g[i]; next == "" && q != nil && slices.Contains(q.deps, to) {
				next = i
			}
		}
		if next == "" {
			out = append(out, "...", short(to))
			break
		}
		out = append(out, short(next))
		cur = next
	}
	return out
}

// load lists every package of the module and its dependencies, tests
// included, with `go list -deps -test`.
func load(t *testing.T) graph {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goBin, "list", "-deps", "-test",
		"-f", "{{.ImportPath}}\t{{.ForTest}}\t{{join .Imports \" \"}}\t{{join .Deps \" \"}}", mod+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	// A test variant "x [y.test]" is x compiled for y's test; the rules
	// see through to x.
	plain := func(list string) []string {
		f := strings.Fields(list)
		var paths []string
		for i := 0; i < len(f); i++ {
			if strings.HasPrefix(f[i], "[") {
				continue // the second word of "x [y.test]"
			}
			paths = append(paths, f[i])
		}
		return paths
	}
	g := graph{}
	get := func(p string) *pkg {
		if g[p] == nil {
			g[p] = &pkg{}
		}
		return g[p]
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 4 {
			t.Fatalf("go list: unexpected line %q", sc.Text())
		}
		path, variant, _ := strings.Cut(f[0], " ")
		forTest := f[1]
		switch {
		case strings.HasSuffix(path, ".test"):
			// The generated test main: it imports the test packages below.
		case forTest == "" && variant == "":
			p := get(path)
			p.imports, p.deps = plain(f[2]), plain(f[3])
		case forTest != "" && (path == forTest || path == forTest+"_test"):
			// The package compiled with its own tests, or its external
			// test package: both belong to the package's tests.
			p := get(forTest)
			p.testImports = append(p.testImports, plain(f[2])...)
			p.testDeps = append(p.testDeps, plain(f[3])...)
		}
		// Other variants ("x [y.test]", x another package) add nothing:
		// x is listed plain as well.
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestImportRules checks the design's import rules on the module as it is.
func TestImportRules(t *testing.T) {
	g := load(t)
	// go list gave a graph worth trusting: the packages the rules are about
	// are in it, with their dependencies.
	for _, p := range []string{"agent", "store", "hub", "uplink/mqtt", "sensors/bme280", "cmd/agent"} {
		if g[mod+"/"+p] == nil {
			t.Fatalf("go list did not list %s", p)
		}
	}
	if !slices.Contains(g[mod+"/agent"].deps, mod+"/store") {
		t.Fatal("go list: the agent does not depend on the store: the graph is not to be trusted")
	}
	for _, v := range check(g, rules) {
		t.Error(v)
	}
}

// TestCheck runs the checker on made-up graphs, so that a rule known to be
// broken is reported (and explained), not only rules known to hold.
func TestCheck(t *testing.T) {
	m := func(p string) string { return mod + "/" + p }
	host := "periph.io/x/host/v3"
	g := graph{
		m("sensors/a"):        {imports: []string{m("sensors")}, deps: []string{m("sensors")}, testImports: []string{m("agent")}, testDeps: []string{m("agent"), m("store"), m("hub")}},
		m("sensors"):          {},
		m("agent"):            {imports: []string{m("hub")}, deps: []string{m("hub"), m("store")}},
		m("hub"):              {imports: []string{m("store"), m("command")}, deps: []string{m("store"), m("command")}},
		m("store"):            {testImports: []string{m("internal/testkit")}, testDeps: []string{m("internal/testkit")}},
		m("store/inner"):      {imports: []string{m("command")}, deps: []string{m("command")}},
		m("command"):          {},
		m("uplink/x"):         {imports: []string{m("command")}, deps: []string{m("command")}},
		m("cmd/agent"):        {imports: []string{host, m("agent")}, deps: []string{host, m("agent")}},
		m("internal/testkit"): {},
		host:                  {},
	}
	got := check(g, rules)
	want := []string{
		"drivers import no store, hub, uplink or agent: sensors/a -> agent",
		"the store imports no consumer (nothing of the module but itself): store/inner -> command",
	}
	if !slices.Equal(got, want) {
		t.Errorf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The host rule exempts cmd/ only; the hub and uplink rules see tests;
	// a rule that matches nothing is reported.
	g[m("agent")].testImports = []string{host}
	g[m("agent")].testDeps = []string{host}
	g[m("hub")].testImports = append(g[m("hub")].testImports, m("uplink/x"))
	g[m("hub")].testDeps = append(g[m("hub")].testDeps, m("uplink/x"))
	got = check(g, []rule{rules[2], rules[4], {name: "gone", from: []string{"renamed/..."}, forbid: []string{"..."}}})
	want = []string{
		"the hub never imports an uplink: hub -> uplink/x",
		"only cmd/ imports periph.io/x/host: agent -> periph.io/x/host/v3",
		"gone: no package matches [renamed/...]",
	}
	if !slices.Equal(got, want) {
		t.Errorf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
