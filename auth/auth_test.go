package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func claims(sub string, exp time.Duration) Claims {
	now := time.Now()
	return Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: sub, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(exp))}}
}

func TestHS256(t *testing.T) {
	v, err := NewVerifier(VerifierOptions{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Mint(secret, "alice", time.Hour, Claims{Groups: []string{"line-1"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(tok)
	if err != nil || c.User() != "alice" || !c.MayJoin("line-1") || c.MayJoin("line-2") {
		t.Fatalf("%v %+v", err, c)
	}

	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims("eve", time.Hour)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	wrongAlg, _ := MintWith(jwt.SigningMethodRS256, rsaKey, claims("eve", time.Hour))
	hs512, _ := MintWith(jwt.SigningMethodHS512, secret, claims("eve", time.Hour))
	wrongKey, _ := Mint([]byte("another-secret-another-secret!!"), "eve", time.Hour, Claims{})
	expired, _ := MintWith(jwt.SigningMethodHS256, secret, claims("eve", -time.Hour))
	noExp, _ := MintWith(jwt.SigningMethodHS256, secret, Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "eve"}})
	noSub, _ := MintWith(jwt.SigningMethodHS256, secret, claims("", time.Hour))
	cases := map[string]struct {
		tok  string
		want error
	}{
		"empty": {"", ErrMissing}, "none": {none, ErrInvalid}, "rs256 for hs256": {wrongAlg, ErrInvalid},
		"hs512": {hs512, ErrInvalid}, "wrong key": {wrongKey, ErrInvalid}, "expired": {expired, ErrExpired},
		"no exp": {noExp, ErrInvalid}, "no sub": {noSub, ErrNoSubject}, "garbage": {"a.b.c", ErrInvalid},
		"too long": {strings.Repeat("a", MaxTokenLen+1), ErrTooLong},
	}
	for name, c := range cases {
		if _, err := v.Verify(c.tok); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", name, err, c.want)
		}
	}
	// Leeway: a token that expired a moment ago is still fine.
	justNow, _ := MintWith(jwt.SigningMethodHS256, secret, claims("bob", -5*time.Second))
	if _, err := v.Verify(justNow); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
}

func pemOf(t *testing.T, pub any) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestPublicKeyAlgorithms(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rv, err := NewVerifier(VerifierOptions{Algorithm: "RS256", PublicKeyPEM: pemOf(t, &rsaKey.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := NewVerifier(VerifierOptions{Algorithm: "ES256", PublicKeyPEM: pemOf(t, &ecKey.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	rt, _ := MintWith(jwt.SigningMethodRS256, rsaKey, claims("r", time.Hour))
	et, _ := MintWith(jwt.SigningMethodES256, ecKey, claims("e", time.Hour))
	if _, err := rv.Verify(rt); err != nil {
		t.Fatal(err)
	}
	if _, err := ev.Verify(et); err != nil {
		t.Fatal(err)
	}
	if _, err := rv.Verify(et); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ES256 token on an RS256 verifier: %v", err)
	}
	// The classic confusion: an HS256 token keyed with the RSA public key.
	confused, _ := MintWith(jwt.SigningMethodHS256, pemOf(t, &rsaKey.PublicKey), claims("eve", time.Hour))
	if _, err := rv.Verify(confused); !errors.Is(err, ErrInvalid) {
		t.Fatalf("alg confusion: %v", err)
	}
	if _, err := NewVerifier(VerifierOptions{Algorithm: "none"}); err == nil {
		t.Fatal("alg none accepted")
	}
	if _, err := NewVerifier(VerifierOptions{Secret: []byte("short")}); err == nil {
		t.Fatal("short secret accepted")
	}
}

func TestSecretFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	a, err := LoadOrCreateSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(dir, SecretFile))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	b, err := LoadOrCreateSecret(dir)
	if err != nil || string(a) != string(b) {
		t.Fatal("secret not stable across loads")
	}
	os.WriteFile(filepath.Join(dir, SecretFile), []byte("short\n"), 0o600)
	if _, err := LoadOrCreateSecret(dir); err == nil {
		t.Fatal("short secret file accepted")
	}
}
