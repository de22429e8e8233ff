// Package authtest mints tokens for tests with an independent JWT library
// (github.com/golang-jwt/jwt), so that auth's own verifier is checked
// against another implementation, and so that tests can forge tokens auth
// itself never makes (other algorithms, "none"). Only tests import it.
package authtest

import (
	"encoding/json"

	"github.com/golang-jwt/jwt/v5"

	"github.com/floorhub/floorhub/auth"
)

// Mint signs c with method and key. For jwt.SigningMethodNone pass
// jwt.UnsafeAllowNoneSignatureType as the key.
func Mint(method jwt.SigningMethod, key any, c auth.Claims) (string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	m := jwt.MapClaims{}
	if err := json.Unmarshal(b, &m); err != nil {
		return "", err
	}
	return jwt.NewWithClaims(method, m).SignedString(key)
}
