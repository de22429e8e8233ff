package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/floorhub/floorhub/auth"
)

// A token made from another directory is signed with the installed
// agent's secret, and no secret is made where no agent has run.
func TestTokenFindsTheInstalledAgent(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "var-lib-floorhub")
	secret, err := auth.LoadOrCreateSecret(data) // the installed agent has run
	if err != nil {
		t.Fatal(err)
	}
	installed := filepath.Join(dir, "floorhub.yaml")
	if err := os.WriteFile(installed, []byte("data_dir: "+data+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := installedConfig
	t.Cleanup(func() { installedConfig = old })
	installedConfig = installed
	t.Chdir(t.TempDir()) // "another directory", with no ./data

	code, out, errs := runCmd("token", "-user", "alice")
	if code != exitOK || !strings.Contains(errs, installed) {
		t.Fatalf("token: %d %q", code, errs)
	}
	v, _ := auth.NewVerifier(auth.VerifierOptions{Secret: secret})
	if _, err := v.Verify(strings.TrimSpace(out)); err != nil {
		t.Fatalf("the installed agent refuses the token: %v", err)
	}

	// An explicit -data without a secret: refused, and nothing is made.
	empty := filepath.Join(dir, "elsewhere")
	code, out, errs = runCmd("token", "-user", "alice", "-data", empty)
	if code != exitFail || out != "" || !strings.Contains(errs, "-create-secret") {
		t.Fatalf("no secret: %d %q %q", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(empty, auth.SecretFile)); !os.IsNotExist(err) {
		t.Fatalf("a secret was made: %v", err)
	}
	// No installed config either: ./data has no secret.
	installedConfig = filepath.Join(dir, "missing.yaml")
	if code, _, errs := runCmd("token", "-user", "alice"); code != exitFail || !strings.Contains(errs, "no secret") {
		t.Fatalf("no installed config: %d %q", code, errs)
	}
	if _, err := os.Stat(filepath.Join("data", auth.SecretFile)); !os.IsNotExist(err) {
		t.Fatalf("a secret was made in ./data: %v", err)
	}
	// Asked explicitly, it makes one.
	if code, _, errs := runCmd("token", "-user", "alice", "-data", empty, "-create-secret"); code != exitOK {
		t.Fatalf("-create-secret: %d %q", code, errs)
	}
	// A config whose hub takes RS256 tokens: the local secret's are useless.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(key.Public())
	pemFile := filepath.Join(dir, "k.pem")
	os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	es := filepath.Join(dir, "es.yaml")
	os.WriteFile(es, []byte("data_dir: "+data+"\nauth: {algorithm: ES256, public_key_file: "+pemFile+"}\n"), 0o644)
	if code, out, errs := runCmd("token", "-user", "alice", "-config", es); code != exitFail || out != "" || !strings.Contains(errs, "ES256") {
		t.Fatalf("an HS256 token for an ES256 hub: %d %q %q", code, out, errs)
	}
}

// A stray word is refused, not dropped: `-uid 3 viewer` meant a role the
// token would not carry.
func TestTokenRefusesStrayArguments(t *testing.T) {
	data := t.TempDir()
	if _, err := auth.LoadOrCreateSecret(data); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd("token", "-user", "alice", "-data", data, "-uid", "3", "viewer")
	if code != exitUsage || out != "" || !strings.Contains(errs, `unexpected argument "viewer"`) {
		t.Fatalf("stray argument: %d %q %q", code, out, errs)
	}
}
