package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/floorhub/floorhub/store"
)

// useMachineID points the machine id lookup at a file holding id.
func useMachineID(t *testing.T, id string) string {
	t.Helper()
	mid := filepath.Join(t.TempDir(), "machine-id")
	if err := os.WriteFile(mid, []byte(id+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := machineIDFiles
	t.Cleanup(func() { machineIDFiles = old })
	machineIDFiles = []string{mid}
	return mid
}

// dirNames lists a directory's entries.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// TestGatewayIDPersisted covers the three data directories an agent can
// start on: a fresh one (the machine id's id, written), one holding a
// store from before the id was persisted (the host name, the default
// then, written), one holding the file (its id, whatever the machine id
// says). Loading the config (what -check-config does) writes nothing.
func TestGatewayIDPersisted(t *testing.T) {
	const machine = "4f1b0c3e9a2d4c5b8e7f6a1b2c3d4e5f"
	mid := useMachineID(t, machine)
	fromMachine, _ := gatewayIDFromMachineID([]byte(machine))
	cases := []struct {
		name     string
		prepare  func(t *testing.T, dir string)
		wantID   string
		wantFrom string // "" : the id file
	}{
		{"fresh data dir", func(*testing.T, string) {}, fromMachine, mid},
		{"store without id file", func(t *testing.T, dir string) {
			st, err := store.Open(filepath.Join(dir, DBFile), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
		}, hostnameID(), sourceLegacy},
		{"id file", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, GatewayIDFile), []byte("press-7\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "press-7", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			c.prepare(t, dir)
			before := dirNames(t, dir)
			yaml := "data_dir: " + dir + "\n"
			cfg, err := ParseConfig("gw.yaml", []byte(yaml))
			if err != nil {
				t.Fatal(err)
			}
			idFile := filepath.Join(dir, GatewayIDFile)
			from := c.wantFrom
			if from == "" {
				from = idFile
			}
			if cfg.GatewayID != c.wantID || cfg.GatewayIDSource() != from {
				t.Fatalf("gateway_id %q from %q, want %q from %q", cfg.GatewayID, cfg.GatewayIDSource(), c.wantID, from)
			}
			if got := dirNames(t, dir); strings.Join(got, ",") != strings.Join(before, ",") {
				t.Fatalf("loading the config changed the data dir: %v -> %v", before, got)
			}

			r := start(t, yaml)
			if r.a.cfg.GatewayID != c.wantID {
				t.Fatalf("running as %q, want %q", r.a.cfg.GatewayID, c.wantID)
			}
			r.stop(t)
			b, err := os.ReadFile(idFile)
			if err != nil || string(b) != c.wantID+"\n" {
				t.Fatalf("id file: %q %v, want %q", b, err, c.wantID)
			}
			if fi, err := os.Stat(idFile); err != nil || fi.Mode().Perm() != 0o644 {
				t.Fatalf("id file mode: %v %v", fi.Mode(), err)
			}
			if c.wantFrom != "" && !strings.Contains(r.logs.String(), "gateway_id chosen and kept") {
				t.Errorf("no log of the chosen id:\n%s", r.logs)
			}
			for _, n := range dirNames(t, dir) {
				if strings.HasSuffix(n, ".tmp") {
					t.Errorf("temporary file left: %s", n)
				}
			}

			// Later starts read the file back, whatever the machine id.
			useMachineID(t, "00000000000000000000000000000001")
			cfg, err = ParseConfig("gw.yaml", []byte(yaml))
			if err != nil || cfg.GatewayID != c.wantID || cfg.GatewayIDSource() != idFile {
				t.Fatalf("next start: %v %q from %q, want %q from the file", err, cfg.GatewayID, cfg.GatewayIDSource(), c.wantID)
			}
			// The config's gateway_id still wins, and is not written.
			cfg, err = ParseConfig("gw.yaml", []byte(yaml+"gateway_id: line-3\n"))
			if err != nil || cfg.GatewayID != "line-3" || cfg.GatewayIDSource() != sourceConfig || cfg.gatewayPersist {
				t.Fatalf("set in the config: %v %q from %q", err, cfg.GatewayID, cfg.GatewayIDSource())
			}
			machineIDFiles = []string{mid}
		})
	}
}

// TestGatewayIDDataOverride: -data changes the data directory after the
// file's was resolved; the id follows the directory the agent uses.
func TestGatewayIDDataOverride(t *testing.T) {
	useMachineID(t, "4f1b0c3e9a2d4c5b8e7f6a1b2c3d4e5f")
	a, b := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(b, GatewayIDFile), []byte("from-b"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig("gw.yaml", []byte("data_dir: "+a+"\n"))
	if err != nil || !strings.HasPrefix(cfg.GatewayID, "fh-") {
		t.Fatalf("%v %q", err, cfg.GatewayID)
	}
	if err := cfg.Override(Overrides{DataDir: b}); err != nil || cfg.GatewayID != "from-b" || cfg.gatewayPersist {
		t.Fatalf("after -data: %v %q", err, cfg.GatewayID)
	}
}

// TestGatewayIDBadFile: a damaged id file is a config error naming it,
// never a silent new identity.
func TestGatewayIDBadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, GatewayIDFile)
	if err := os.WriteFile(path, []byte("not an id!\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ParseConfig("gw.yaml", []byte("data_dir: "+dir+"\n"))
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "gateway_id" || !strings.Contains(err.Error(), path) {
		t.Fatalf("want a gateway_id config error naming %s, got %v", path, err)
	}
}
