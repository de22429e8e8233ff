package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/floorhub/floorhub/agent"
	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/store"
)

func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("devices:\n  - {id: 1, driver: sim-env}\n"), 0o644)
	os.WriteFile(bad, []byte("devices:\n  - id: 1\n    driver: sim-env\n    intervall: 5s\n"), 0o644)

	if code, out, errs := runCmd("-check-config", "-config", good); code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("good config: %d %q %q", code, out, errs)
	}
	code, _, errs := runCmd("-check-config", "-config", bad)
	if code != 78 || !strings.Contains(errs, bad+":4: devices[0].intervall") {
		t.Fatalf("bad config: exit %d, %q (want 78 naming the file, line 4 and the field)", code, errs)
	}
	if code, _, errs := runCmd("-check-config", "-config", filepath.Join(dir, "missing.yaml")); code != 78 || !strings.Contains(errs, "missing.yaml") {
		t.Fatalf("missing config: %d %q", code, errs)
	}
	if code, _, _ := runCmd("-check-config", "-mqtt", "nonsense"); code != 78 {
		t.Fatalf("bad -mqtt flag: exit %d", code)
	}
	if code, out, _ := runCmd("-check-config"); code != 0 || !strings.Contains(out, "(defaults)") {
		t.Fatalf("no config: %d %q", code, out)
	}
	if code, _, _ := runCmd("-nosuchflag"); code != 2 {
		t.Fatalf("bad flag: exit %d", code)
	}
}

func TestExampleConfigChecks(t *testing.T) {
	if code, out, errs := runCmd("-check-config", "-config", "../../systemd/floorhub.example.yaml"); code != 0 {
		t.Fatalf("example config: %d %q %q", code, out, errs)
	}
}

func TestTokenAndVersion(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := runCmd("token", "-user", "alice", "-ttl", "1h", "-data", dir, "-create-secret")
	if code != 0 {
		t.Fatalf("token: %d %s", code, errs)
	}
	st, err := os.Stat(filepath.Join(dir, auth.SecretFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", st, err)
	}
	secret, _ := auth.LoadOrCreateSecret(dir)
	v, _ := auth.NewVerifier(auth.VerifierOptions{Secret: secret})
	c, err := v.Verify(strings.TrimSpace(out))
	if err != nil || c.User() != "alice" || time.Until(c.ExpiresAt.Time) > time.Hour {
		t.Fatalf("minted token: %v %+v", err, c)
	}
	_, out, _ = runCmd("token", "-user", "bob", "-data", dir, "-groups", "line-1,line-2", "-broadcast")
	if c, err := v.Verify(strings.TrimSpace(out)); err != nil || !c.MayJoin("line-2") || c.MayJoin("line-3") || !c.Broadcast {
		t.Fatalf("claims: %v %+v", err, c)
	}
	_, out, _ = runCmd("token", "-user", "carol", "-data", dir, "-role", "operator")
	if c, err := v.Verify(strings.TrimSpace(out)); err != nil || c.Role != "operator" {
		t.Fatalf("-role: %v %+v", err, c)
	}
	if code, _, errs := runCmd("token", "-user", "carol", "-data", dir, "-role", "root"); code != 2 || !strings.Contains(errs, "viewer, operator or admin") {
		t.Fatalf("-role root: %d %q", code, errs)
	}
	if code, _, _ := runCmd("token"); code != 2 {
		t.Fatalf("token without -user: %d", code)
	}
	if code, out, _ := runCmd("version"); code != 0 || !strings.Contains(out, version) {
		t.Fatalf("version: %d %q", code, out)
	}
}

// TestCheckConfigKeepsAnUpgradedGatewaysID: a gateway from before the
// gateway_id was persisted (a store, no id file, no gateway_id set, the
// host name in its websocket URL) still passes -check-config, and the
// check writes nothing in the data directory, fresh or not.
func TestCheckConfigKeepsAnUpgradedGatewaysID(t *testing.T) {
	h, err := os.Hostname()
	if err != nil || !regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`).MatchString(h) {
		t.Skipf("host name %q is not a gateway_id", h)
	}
	old, fresh := t.TempDir(), t.TempDir()
	st, err := store.Open(filepath.Join(old, agent.DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadDir(old)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "gw.yaml")
	os.WriteFile(cfg, []byte("uplink:\n  websocket:\n    url: wss://central/v3/ws/group/site/client/"+h+"\n"), 0o644)
	code, out, errs := runCmd("-check-config", "-config", cfg, "-data", old)
	if code != 0 || !strings.Contains(out, "gateway_id "+h+" from hostname (existing data_dir)") {
		t.Fatalf("existing gateway: exit %d %q %q", code, out, errs)
	}
	if code, out, _ := runCmd("-check-config", "-data", fresh); code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("fresh data dir: exit %d %q", code, out)
	}
	for dir, want := range map[string]int{old: len(before), fresh: 0} {
		es, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != want {
			t.Errorf("-check-config wrote in %s: %v, before %v", dir, es, before)
		}
	}
}

// `agent passwd` prints a hash that the config accepts and that checks the
// password; a password too long, or none, is refused.
func TestPasswd(t *testing.T) {
	defer func(r int) { passwdRounds = r }(passwdRounds)
	passwdRounds = auth.MinPasswordRounds
	var out, errb bytes.Buffer
	if code := runPasswd(nil, strings.NewReader("s3cret pass\r\nignored\n"), &out, &errb); code != 0 {
		t.Fatalf("passwd: %d %s", code, errb.String())
	}
	h := strings.TrimSpace(out.String())
	if err := auth.CheckHash(h); err != nil || !auth.CheckPassword(h, []byte("s3cret pass")) {
		t.Fatalf("hash %q: %v", h, err)
	}
	for _, in := range []string{"", "\n", strings.Repeat("x", auth.MaxPasswordLen+1) + "\n"} {
		out.Reset()
		if code := runPasswd(nil, strings.NewReader(in), &out, &errb); code != exitFail || out.Len() != 0 {
			t.Errorf("passwd %q: exit %d, %q", in, code, out.String())
		}
	}
	for _, n := range []int{auth.MaxPasswordLen + 1, 5000} { // refused with a clear error, not truncated
		out.Reset()
		errb.Reset()
		if code := runPasswd(nil, strings.NewReader(strings.Repeat("x", n)+"\n"), &out, &errb); code != exitFail ||
			out.Len() != 0 || !strings.Contains(errb.String(), "password longer than 1024 bytes") {
			t.Errorf("passwd of %d bytes: exit %d, %q, %q", n, code, out.String(), errb.String())
		}
	}
}
