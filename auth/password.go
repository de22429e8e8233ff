package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/pbkdf2"
)

// Passwords are hashed with PBKDF2-HMAC-SHA256 (golang.org/x/crypto/pbkdf2,
// RFC 8018), 600,000 rounds (OWASP's figure for it), a 16-byte random salt,
// in the PHC string format:
//
//	$pbkdf2-sha256$i=600000$<salt>$<hash>   (unpadded standard base64)
//
// bcrypt was measured first: it cost the arm64 binary about 17 KB more,
// 4.4 KB of it Blowfish's tables in the data segment, which alone put the
// agent over its 8 MiB budget; PBKDF2 adds a few hundred bytes to the
// HMAC-SHA256 the binary has anyway. It is not memory-hard, which matters
// against an attacker who has the config file and GPUs; the login itself
// is rate-limited per address. A check takes about 0.1 s on an x86 core and
// half a second on a Raspberry Pi 4 (no SHA-2 instructions).

// PasswordRounds is the PBKDF2 iteration count of new hashes.
const PasswordRounds = 600_000

// MinPasswordRounds is the least iteration count CheckHash accepts.
const MinPasswordRounds = 100_000

// MaxPasswordLen is the longest password, in bytes.
const MaxPasswordLen = 1024

// Errors of HashPassword.
var (
	ErrPasswordEmpty   = errors.New("auth: empty password")
	ErrPasswordTooLong = fmt.Errorf("auth: password longer than %d bytes", MaxPasswordLen)
)

const hashPrefix = "$pbkdf2-sha256$i="

var b64std = base64.RawStdEncoding.Strict()

// HashPassword returns the hash of password for the config's
// users[].password_hash.
func HashPassword(password []byte) (string, error) {
	return HashPasswordRounds(password, PasswordRounds)
}

// HashPasswordRounds is HashPassword with another iteration count: tests
// use a few rounds (CheckPassword takes any count; CheckHash, which checks
// the config, wants MinPasswordRounds).
func HashPasswordRounds(password []byte, rounds int) (string, error) {
	switch {
	case len(password) == 0:
		return "", ErrPasswordEmpty
	case len(password) > MaxPasswordLen:
		return "", ErrPasswordTooLong
	case rounds < 1:
		return "", errors.New("auth: rounds must be positive")
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	key := pbkdf2.Key(password, salt, rounds, sha256.Size, sha256.New)
	return hashPrefix + strconv.Itoa(rounds) + "$" + b64std.EncodeToString(salt) + "$" + b64std.EncodeToString(key), nil
}

// parseHash splits a hash into its rounds, salt and key.
func parseHash(hash string) (rounds int, salt, key []byte, err error) {
	rest, ok := strings.CutPrefix(hash, hashPrefix)
	parts := strings.Split(rest, "$")
	if !ok || len(parts) != 3 {
		return 0, nil, nil, errors.New("not a password hash ($pbkdf2-sha256$i=...$salt$hash): make one with `agent passwd`")
	}
	if rounds, err = strconv.Atoi(parts[0]); err != nil || rounds < 1 || rounds > 100_000_000 {
		return 0, nil, nil, fmt.Errorf("rounds %q: want a number from 1 to 100000000", parts[0])
	}
	if salt, err = b64std.DecodeString(parts[1]); err != nil || len(salt) < 8 {
		return 0, nil, nil, errors.New("the salt is not 8 or more bytes of unpadded base64")
	}
	if key, err = b64std.DecodeString(parts[2]); err != nil || len(key) != sha256.Size {
		return 0, nil, nil, errors.New("the hash is not 32 bytes of unpadded base64")
	}
	return rounds, salt, key, nil
}

// CheckHash reports what is wrong with a password hash from the config: it
// must be what `agent passwd` prints, with at least MinPasswordRounds.
func CheckHash(hash string) error {
	rounds, _, _, err := parseHash(hash)
	if err != nil {
		return err
	}
	if rounds < MinPasswordRounds {
		return fmt.Errorf("%d rounds: want at least %d (make the hash with `agent passwd`)", rounds, MinPasswordRounds)
	}
	return nil
}

// DecoyHash returns a hash that no password matches, with the rounds of
// like (PasswordRounds if like is not a hash): checking a login that names
// no user against it takes as long as checking a real user's password.
func DecoyHash(like string) string {
	rounds, _, _, err := parseHash(like)
	if err != nil {
		rounds = PasswordRounds
	}
	return hashPrefix + strconv.Itoa(rounds) + "$" + b64std.EncodeToString([]byte("floorhub-nobody!")) + "$" +
		b64std.EncodeToString(make([]byte, sha256.Size))
}

// CheckPassword reports whether password matches hash, comparing in
// constant time. A malformed hash matches nothing. A password longer than
// MaxPasswordLen matches nothing either (HashPassword refuses to hash one),
// after the same work as any other check: it is not truncated, which made
// a 1024-byte password match itself followed by anything.
func CheckPassword(hash string, password []byte) bool {
	tooLong := len(password) > MaxPasswordLen
	if tooLong {
		password = password[:MaxPasswordLen] // the same work, then refused
	}
	rounds, salt, key, err := parseHash(hash)
	if err != nil {
		return false
	}
	got := pbkdf2.Key(password, salt, rounds, sha256.Size, sha256.New)
	return subtle.ConstantTimeCompare(got, key) == 1 && !tooLong
}

// HashFingerprint is a short digest of a password hash, kept with a
// session so that a session made before the password changed is refused.
func HashFingerprint(hash string) string {
	s := sha256.Sum256([]byte(hash))
	return hex.EncodeToString(s[:8])
}
