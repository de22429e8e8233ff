// Package auth mints and verifies the JSON Web Tokens (RFC 7519) that the
// hub's WebSocket APIs accept.
//
// The algorithm is pinned by the Verifier: a token signed with any other
// algorithm (including "none") is refused, whatever its header says. By
// default tokens are HS256, signed with a secret that the agent generates in
// its data directory on first start (mode 0600).
//
// The compact JWS (RFC 7515) of the three algorithms floorhub accepts (RFC
// 7518: HS256, RS256, ES256) is written here on the standard library: a
// general JWT library registers every algorithm it knows and cost the arm64
// binary about 45 KB. The tests check it against such a library
// (auth/authtest mints with github.com/golang-jwt/jwt).
package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Errors returned by Verify. Each maps to the hub's auth_response error code.
var (
	ErrMissing   = errors.New("auth: no token")
	ErrTooLong   = errors.New("auth: token too long")
	ErrExpired   = errors.New("auth: token expired")
	ErrInvalid   = errors.New("auth: invalid token")
	ErrNoSubject = errors.New("auth: token has no sub")
	// ErrNoSession: a request carries neither a session cookie nor a
	// token (auth/session).
	ErrNoSession = errors.New("auth: no session")
	// ErrSessionExpired: a request's session cookie names no live session:
	// it expired, was logged out, or its user was removed or changed
	// (auth/session).
	ErrSessionExpired = errors.New("auth: session expired")
)

// MaxTokenLen caps the length of a token, in bytes, before any parsing.
const MaxTokenLen = 4096

// DefaultLeeway is the clock skew allowed on exp, nbf and iat.
const DefaultLeeway = 30 * time.Second

// Claims is what floorhub reads from a token.
type Claims struct {
	RegisteredClaims
	// Groups, when not empty, lists the Aether V3 groups the user may join;
	// "*" allows every group.
	Groups []string `json:"groups,omitempty"`
	// Broadcast allows sending target "broadcast" on the V3 endpoint.
	Broadcast bool `json:"broadcast,omitempty"`
	// UserID is the user's number (the config's users[].id, the floor
	// chat's userId, positive); 0 when the token has none (such a token
	// cannot join the chat).
	UserID int64 `json:"uid,omitempty"`
	// Role is viewer, operator or admin; empty: the configured user's
	// role, else DefaultTokenRole (see TokenIdentity).
	Role string `json:"role,omitempty"`
}

// User returns the token's subject.
func (c *Claims) User() string { return c.Subject }

// MayJoin reports whether the claims allow joining group.
func (c *Claims) MayJoin(group string) bool {
	if len(c.Groups) == 0 {
		return true
	}
	for _, g := range c.Groups {
		if g == "*" || g == group {
			return true
		}
	}
	return false
}

// Verifier checks tokens with one pinned algorithm and key.
type Verifier struct {
	alg    string
	key    any // []byte for HS256, a public key otherwise
	leeway time.Duration
	now    func() time.Time
}

// VerifierOptions configures a Verifier. The zero value of each field means
// its default.
type VerifierOptions struct {
	// Algorithm is HS256 (default), RS256 or ES256.
	Algorithm string
	// Secret is the HS256 key.
	Secret []byte
	// PublicKeyPEM is the RS256/ES256 public key, PEM encoded.
	PublicKeyPEM []byte
	// Leeway is the allowed clock skew; default DefaultLeeway.
	Leeway time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// NewVerifier returns a Verifier for the given options.
func NewVerifier(o VerifierOptions) (*Verifier, error) {
	v := &Verifier{alg: o.Algorithm, leeway: o.Leeway, now: o.Now}
	if v.alg == "" {
		v.alg = "HS256"
	}
	if v.leeway == 0 {
		v.leeway = DefaultLeeway
	}
	if v.now == nil {
		v.now = time.Now
	}
	switch v.alg {
	case "HS256":
		if len(o.Secret) < 16 {
			return nil, errors.New("auth: HS256 secret shorter than 16 bytes")
		}
		v.key = o.Secret
	case "RS256", "ES256":
		k, err := parsePublicKey(v.alg, o.PublicKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("auth: %s public key: %w", v.alg, err)
		}
		v.key = k
	default:
		return nil, fmt.Errorf("auth: unsupported algorithm %q (want HS256, RS256 or ES256)", v.alg)
	}
	return v, nil
}

// Leeway is the clock skew the Verifier allows on exp, nbf and iat; a
// server that closes connections when their token expires allows the same.
func (v *Verifier) Leeway() time.Duration { return v.leeway }

// Verify parses and checks a token: algorithm, signature, exp (required),
// nbf, iat and sub. The error is one of the sentinels above.
func (v *Verifier) Verify(token string) (*Claims, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, ErrMissing
	}
	if len(token) > MaxTokenLen {
		return nil, ErrTooLong
	}
	claims := &Claims{}
	if err := verifyJWS(token, v.alg, v.key, claims); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	now := v.now()
	switch {
	case claims.ExpiresAt == nil:
		return nil, fmt.Errorf("%w: no exp", ErrInvalid)
	case now.After(claims.ExpiresAt.Add(v.leeway)):
		return nil, ErrExpired
	case claims.NotBefore != nil && now.Add(v.leeway).Before(claims.NotBefore.Time):
		return nil, fmt.Errorf("%w: not valid yet (nbf)", ErrInvalid)
	case claims.IssuedAt != nil && now.Add(v.leeway).Before(claims.IssuedAt.Time):
		return nil, fmt.Errorf("%w: issued in the future (iat)", ErrInvalid)
	case claims.Subject == "":
		return nil, ErrNoSubject
	}
	return claims, nil
}

// Mint signs an HS256 token for user, valid for ttl.
func Mint(secret []byte, user string, ttl time.Duration, extra Claims) (string, error) {
	if user == "" {
		return "", errors.New("auth: empty user")
	}
	now := time.Now()
	c := extra
	c.Subject = user
	c.IssuedAt = NewNumericDate(now)
	c.ExpiresAt = NewNumericDate(now.Add(ttl))
	return signHS256(secret, &c)
}

// LoadSecret reads the HS256 secret of the data directory dir. A missing
// file is an error wrapping os.ErrNotExist: nothing has made one there.
func LoadSecret(dir string) ([]byte, error) {
	path := filepath.Join(dir, SecretFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if len(s) < 32 {
		return nil, fmt.Errorf("auth: %s: secret shorter than 32 characters", path)
	}
	return []byte(s), nil
}

// SecretFile is the name of the HS256 secret in the data directory.
const SecretFile = "jwt.secret"

// LoadOrCreateSecret reads the secret from dir, creating it (32 random
// bytes, hex, mode 0600) when it does not exist.
func LoadOrCreateSecret(dir string) ([]byte, error) {
	path := filepath.Join(dir, SecretFile)
	if b, err := LoadSecret(dir); !errors.Is(err, os.ErrNotExist) {
		return b, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	s := hex.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("auth: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("auth: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return []byte(s), nil
}
