package catalog_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Only cmd/agent may initialise the host: everything the simulated build
// path uses (the agent package, every sensors package and their tests)
// must build without periph.io/x/host, so the drivers stay testable
// anywhere and the catalog never opens hardware behind the agent's back.
func TestNoHostImport(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	pkgs := []string{"github.com/floorhub/floorhub/sensors/..."}
	// The agent package may not exist yet while the project is assembled.
	if exec.Command(goBin, "list", "github.com/floorhub/floorhub/agent").Run() == nil {
		pkgs = append(pkgs, "github.com/floorhub/floorhub/agent")
	}
	out, err := exec.Command(goBin, append([]string{"list", "-deps", "-test", "-f", "{{.ImportPath}}"}, pkgs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list returned too little to trust: %q", deps)
	}
	for _, p := range deps {
		if strings.HasPrefix(p, "periph.io/x/host") {
			t.Errorf("%s is imported by %s: only cmd/agent may import periph.io/x/host", p, strings.Join(pkgs, " "))
		}
	}
	t.Logf("%d packages checked (%s)", len(deps), strings.Join(pkgs, ", "))
}
