package auth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/auth/authtest"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func claims(sub string, exp time.Duration) auth.Claims {
	now := time.Now()
	return auth.Claims{RegisteredClaims: auth.RegisteredClaims{Subject: sub, IssuedAt: auth.NewNumericDate(now), ExpiresAt: auth.NewNumericDate(now.Add(exp))}}
}

func TestHS256(t *testing.T) {
	v, err := auth.NewVerifier(auth.VerifierOptions{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.Mint(secret, "alice", time.Hour, auth.Claims{Groups: []string{"line-1"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(tok)
	if err != nil || c.User() != "alice" || !c.MayJoin("line-1") || c.MayJoin("line-2") {
		t.Fatalf("%v %+v", err, c)
	}

	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	none, _ := authtest.Mint(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("eve", time.Hour))
	wrongAlg, _ := authtest.Mint(jwt.SigningMethodRS256, rsaKey, claims("eve", time.Hour))
	hs512, _ := authtest.Mint(jwt.SigningMethodHS512, secret, claims("eve", time.Hour))
	wrongKey, _ := auth.Mint([]byte("another-secret-another-secret!!"), "eve", time.Hour, auth.Claims{})
	expired, _ := authtest.Mint(jwt.SigningMethodHS256, secret, claims("eve", -time.Hour))
	noExp, _ := authtest.Mint(jwt.SigningMethodHS256, secret, auth.Claims{RegisteredClaims: auth.RegisteredClaims{Subject: "eve"}})
	noSub, _ := authtest.Mint(jwt.SigningMethodHS256, secret, claims("", time.Hour))
	cases := map[string]struct {
		tok  string
		want error
	}{
		"empty": {"", auth.ErrMissing}, "none": {none, auth.ErrInvalid}, "rs256 for hs256": {wrongAlg, auth.ErrInvalid},
		"hs512": {hs512, auth.ErrInvalid}, "wrong key": {wrongKey, auth.ErrInvalid}, "expired": {expired, auth.ErrExpired},
		"no exp": {noExp, auth.ErrInvalid}, "no sub": {noSub, auth.ErrNoSubject}, "garbage": {"a.b.c", auth.ErrInvalid},
		"too long": {strings.Repeat("a", auth.MaxTokenLen+1), auth.ErrTooLong},
	}
	for name, c := range cases {
		if _, err := v.Verify(c.tok); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", name, err, c.want)
		}
	}
	// Leeway: a token that expired a moment ago is still fine.
	justNow, _ := authtest.Mint(jwt.SigningMethodHS256, secret, claims("bob", -5*time.Second))
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
	rv, err := auth.NewVerifier(auth.VerifierOptions{Algorithm: "RS256", PublicKeyPEM: pemOf(t, &rsaKey.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := auth.NewVerifier(auth.VerifierOptions{Algorithm: "ES256", PublicKeyPEM: pemOf(t, &ecKey.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	rt, _ := authtest.Mint(jwt.SigningMethodRS256, rsaKey, claims("r", time.Hour))
	et, _ := authtest.Mint(jwt.SigningMethodES256, ecKey, claims("e", time.Hour))
	if _, err := rv.Verify(rt); err != nil {
		t.Fatal(err)
	}
	if _, err := ev.Verify(et); err != nil {
		t.Fatal(err)
	}
	if _, err := rv.Verify(et); !errors.Is(err, auth.ErrInvalid) {
		t.Fatalf("ES256 token on an RS256 verifier: %v", err)
	}
	// The classic confusion: an HS256 token keyed with the RSA public key.
	confused, _ := authtest.Mint(jwt.SigningMethodHS256, pemOf(t, &rsaKey.PublicKey), claims("eve", time.Hour))
	if _, err := rv.Verify(confused); !errors.Is(err, auth.ErrInvalid) {
		t.Fatalf("alg confusion: %v", err)
	}
	if _, err := auth.NewVerifier(auth.VerifierOptions{Algorithm: "none"}); err == nil {
		t.Fatal("alg none accepted")
	}
	if _, err := auth.NewVerifier(auth.VerifierOptions{Secret: []byte("short")}); err == nil {
		t.Fatal("short secret accepted")
	}
}

func TestSecretFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	a, err := auth.LoadOrCreateSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(dir, auth.SecretFile))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	b, err := auth.LoadOrCreateSecret(dir)
	if err != nil || string(a) != string(b) {
		t.Fatal("secret not stable across loads")
	}
	os.WriteFile(filepath.Join(dir, auth.SecretFile), []byte("short\n"), 0o600)
	if _, err := auth.LoadOrCreateSecret(dir); err == nil {
		t.Fatal("short secret file accepted")
	}
}

// TestJWSEdges checks what a hand-written JWS must get right, against
// tokens made by an independent JWT library where one can make them.
func TestJWSEdges(t *testing.T) {
	v, err := auth.NewVerifier(auth.VerifierOptions{Secret: secret, Leeway: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	at := func(d time.Duration) *auth.NumericDate { return auth.NewNumericDate(now.Add(d)) }
	mint := func(rc auth.RegisteredClaims) string {
		tok, err := authtest.Mint(jwt.SigningMethodHS256, secret, auth.Claims{RegisteredClaims: rc})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := mint(auth.RegisteredClaims{Subject: "a", ExpiresAt: at(time.Hour)})
	h, p, _ := strings.Cut(good, ".")
	p, s, _ := strings.Cut(p, ".")
	sign := func(header, payload string) string {
		m := hmac.New(sha256.New, secret)
		signed := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
		m.Write([]byte(signed))
		return signed + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	cases := map[string]struct {
		tok  string
		want error
	}{
		"library token":    {good, nil},
		"future nbf":       {mint(auth.RegisteredClaims{Subject: "a", ExpiresAt: at(time.Hour), NotBefore: at(time.Minute)}), auth.ErrInvalid},
		"nbf within skew":  {mint(auth.RegisteredClaims{Subject: "a", ExpiresAt: at(time.Hour), NotBefore: at(0)}), nil},
		"future iat":       {mint(auth.RegisteredClaims{Subject: "a", ExpiresAt: at(time.Hour), IssuedAt: at(time.Minute)}), auth.ErrInvalid},
		"expired":          {mint(auth.RegisteredClaims{Subject: "a", ExpiresAt: at(-time.Minute)}), auth.ErrExpired},
		"fractional exp":   {sign(`{"alg":"HS256"}`, fmt.Sprintf(`{"sub":"a","exp":%d.5}`, now.Add(time.Hour).Unix())), nil},
		"string exp":       {sign(`{"alg":"HS256"}`, fmt.Sprintf(`{"sub":"a","exp":"%d"}`, now.Add(time.Hour).Unix())), auth.ErrInvalid},
		"crit header":      {sign(`{"alg":"HS256","crit":["b64"],"b64":false}`, `{"sub":"a","exp":9999999999}`), auth.ErrInvalid},
		"alg case":         {sign(`{"alg":"hs256"}`, `{"sub":"a","exp":9999999999}`), auth.ErrInvalid},
		"padded signature": {h + "." + p + "." + s + "=", auth.ErrInvalid},
		"four parts":       {good + ".x", auth.ErrInvalid},
		"payload swapped":  {h + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"root","exp":9999999999}`)) + "." + s, auth.ErrInvalid},
		"not json":         {sign(`{"alg":"HS256"}`, `sub=a`), auth.ErrInvalid},
	}
	for name, c := range cases {
		_, err := v.Verify(c.tok)
		if (c.want == nil && err != nil) || !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", name, err, c.want)
		}
	}
	// And the other way: the independent library accepts what auth mints.
	tok, err := auth.Mint(secret, "alice", time.Hour, auth.Claims{Groups: []string{"g"}})
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return secret, nil }, jwt.WithValidMethods([]string{"HS256"}))
	if err != nil || parsed.Claims.(jwt.MapClaims)["sub"] != "alice" {
		t.Fatalf("library refuses auth's token: %v", err)
	}
}
