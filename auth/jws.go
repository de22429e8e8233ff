package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// RegisteredClaims are the claims of RFC 7519 section 4.1 that floorhub
// reads or writes.
type RegisteredClaims struct {
	Issuer    string       `json:"iss,omitempty"`
	Subject   string       `json:"sub,omitempty"`
	ExpiresAt *NumericDate `json:"exp,omitempty"`
	NotBefore *NumericDate `json:"nbf,omitempty"`
	IssuedAt  *NumericDate `json:"iat,omitempty"`
	ID        string       `json:"jti,omitempty"`
}

// NumericDate is a JWT time: seconds since the epoch, written as an integer
// and read from any JSON number.
type NumericDate struct{ time.Time }

// NewNumericDate returns t truncated to the second, as a token carries it.
func NewNumericDate(t time.Time) *NumericDate {
	return &NumericDate{t.Truncate(time.Second)}
}

// MarshalJSON writes whole seconds.
func (d NumericDate) MarshalJSON() ([]byte, error) {
	return strconv.AppendInt(nil, d.Unix(), 10), nil
}

// UnmarshalJSON reads a JSON number of seconds, fractions allowed.
func (d *NumericDate) UnmarshalJSON(b []byte) error {
	var n json.Number
	if len(b) > 0 && b[0] == '"' { // json.Number would take a quoted number
		return fmt.Errorf("numeric date: %s is a string", b)
	}
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("numeric date: %w", err)
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e12 {
		return fmt.Errorf("numeric date: %s is not a time", b)
	}
	sec, frac := math.Modf(f)
	d.Time = time.Unix(int64(sec), int64(frac*1e9))
	return nil
}

var b64 = base64.RawURLEncoding.Strict()

// jwsHeader is the JOSE header; a header naming critical extensions is
// refused, since none is understood here (RFC 7515 section 4.1.11).
type jwsHeader struct {
	Alg  string          `json:"alg"`
	Crit json.RawMessage `json:"crit,omitempty"`
}

// verifyJWS checks the compact serialization tok against the pinned
// algorithm alg and key, and decodes its payload into claims.
func verifyJWS(tok, alg string, key any, claims any) error {
	h64, rest, ok := strings.Cut(tok, ".")
	p64, s64, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || strings.Contains(s64, ".") {
		return errors.New("not a compact JWS")
	}
	hb, err := b64.DecodeString(h64)
	if err != nil {
		return fmt.Errorf("header: %w", err)
	}
	var h jwsHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	if h.Alg != alg {
		return fmt.Errorf("algorithm %q, want %q", h.Alg, alg)
	}
	if h.Crit != nil {
		return errors.New("critical header extensions")
	}
	sig, err := b64.DecodeString(s64)
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	signed := tok[:len(h64)+1+len(p64)]
	if err := verifySignature(alg, key, signed, sig); err != nil {
		return err
	}
	pb, err := b64.DecodeString(p64)
	if err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	if err := json.Unmarshal(pb, claims); err != nil {
		return fmt.Errorf("claims: %w", err)
	}
	return nil
}

var errSignature = errors.New("signature is invalid")

func verifySignature(alg string, key any, signed string, sig []byte) error {
	sum := sha256.Sum256([]byte(signed))
	switch k := key.(type) {
	case []byte:
		if alg != "HS256" || !hmac.Equal(sig, hs256(k, signed)) {
			return errSignature
		}
	case *rsa.PublicKey:
		if alg != "RS256" || rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig) != nil {
			return errSignature
		}
	case *ecdsa.PublicKey:
		// JWS carries R and S as two fixed 32-byte big-endian integers
		// (RFC 7518 section 3.4), not the ASN.1 of X.509.
		if alg != "ES256" || len(sig) != 64 {
			return errSignature
		}
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if !ecdsa.Verify(k, sum[:], r, s) {
			return errSignature
		}
	default:
		return errSignature
	}
	return nil
}

func hs256(key []byte, signed string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(signed))
	return m.Sum(nil)
}

// signHS256 returns the compact JWS of claims signed with key.
func signHS256(key []byte, claims any) (string, error) {
	p, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	var b bytes.Buffer
	b.WriteString(b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)))
	b.WriteByte('.')
	b.WriteString(b64.EncodeToString(p))
	signed := b.String()
	return signed + "." + b64.EncodeToString(hs256(key, signed)), nil
}

// parsePublicKey reads a PEM public key for alg: a PKIX "PUBLIC KEY", a
// PKCS #1 "RSA PUBLIC KEY", or the key of a "CERTIFICATE".
func parsePublicKey(alg string, pemBytes []byte) (any, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	var key any
	var err error
	switch blk.Type {
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(blk.Bytes)
	case "CERTIFICATE":
		var c *x509.Certificate
		if c, err = x509.ParseCertificate(blk.Bytes); err == nil {
			key = c.PublicKey
		}
	default:
		key, err = x509.ParsePKIXPublicKey(blk.Bytes)
	}
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		if alg == "RS256" {
			return k, nil
		}
	case *ecdsa.PublicKey:
		if alg == "ES256" && k.Curve == elliptic.P256() {
			return k, nil
		}
	}
	return nil, fmt.Errorf("a %T is not a key for %s", key, alg)
}
