package auth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRoleMay(t *testing.T) {
	for _, tc := range []struct {
		role                      Role
		read, ack, chat, commands bool
	}{
		{RoleViewer, true, false, false, false},
		{RoleOperator, true, true, true, false},
		{RoleAdmin, true, true, true, true},
		{"", false, false, false, false},
		{"root", false, false, false, false},
	} {
		got := []bool{tc.role.May(Read), tc.role.May(Acknowledge), tc.role.May(Chat), tc.role.May(RunCommand)}
		want := []bool{tc.read, tc.ack, tc.chat, tc.commands}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%q May(%v) = %v", tc.role, Action(i), got[i])
			}
		}
	}
	for _, s := range []string{"viewer", "operator", "admin"} {
		if r, err := ParseRole(s); err != nil || string(r) != s {
			t.Errorf("ParseRole(%q) = %q, %v", s, r, err)
		}
	}
	if _, err := ParseRole("Admin"); err == nil || !strings.Contains(err.Error(), "viewer, operator or admin") {
		t.Errorf("ParseRole(Admin): %v", err)
	}
}

func TestTokenIdentity(t *testing.T) {
	exp := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	lookup := func(name string) (int64, Role, bool) {
		if name == "victor" {
			return 8, RoleViewer, true
		}
		return 0, "", false
	}
	for _, tc := range []struct {
		c      Claims
		lookup UserLookup
		role   Role
		id     int64
	}{
		{Claims{RegisteredClaims: RegisteredClaims{Subject: "bot"}}, nil, RoleAdmin, 0},
		{Claims{RegisteredClaims: RegisteredClaims{Subject: "bot"}, Role: "viewer", UserID: 4}, lookup, RoleViewer, 4},
		{Claims{RegisteredClaims: RegisteredClaims{Subject: "victor"}}, lookup, RoleViewer, 8},
		{Claims{RegisteredClaims: RegisteredClaims{Subject: "victor"}, Role: "admin", UserID: 9}, lookup, RoleAdmin, 9},
		{Claims{RegisteredClaims: RegisteredClaims{Subject: "victor"}, Role: "god"}, lookup, "", 8},
	} {
		tc.c.ExpiresAt = NewNumericDate(exp)
		id := TokenIdentity(&tc.c, tc.lookup)
		if id.User != tc.c.Subject || id.Role != tc.role || id.ID != tc.id || !id.Expires.Equal(exp) || id.Session != "" {
			t.Errorf("%+v: %+v, want role %q id %d", tc.c, id, tc.role, tc.id)
		}
	}
}

func TestPasswords(t *testing.T) {
	// HashPassword's full cost is checked through the binary (agent
	// passwd, cmd/agent): under -race it takes many seconds.
	h, err := HashPasswordRounds([]byte("correct horse"), MinPasswordRounds)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckHash(h); err != nil || !strings.HasPrefix(h, "$pbkdf2-sha256$i=100000$") || len(h) != 90 {
		t.Fatalf("hash %q (%d): %v", h, len(h), err)
	}
	cheap, err := HashPasswordRounds([]byte("correct horse"), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if !CheckPassword(cheap, []byte("correct horse")) || CheckPassword(cheap, []byte("correct horsf")) ||
		CheckPassword("", nil) || CheckPassword(DecoyHash(cheap), []byte("correct horse")) {
		t.Fatal("CheckPassword")
	}
	if err := CheckHash(cheap); err == nil || !strings.Contains(err.Error(), "1000 rounds") {
		t.Fatalf("a hash of 1000 rounds in the config: %v", err)
	}
	other, _ := HashPasswordRounds([]byte("correct horse"), 1000)
	if other == cheap {
		t.Fatal("two hashes of one password must differ (salt)")
	}
	if d := DecoyHash(cheap); CheckHash(d) == nil || !strings.Contains(d, "$i=1000$") {
		t.Fatalf("decoy %q: the rounds of the hash it is like", d)
	}
	if _, err := HashPassword(nil); err != ErrPasswordEmpty {
		t.Fatalf("empty: %v", err)
	}
	if _, err := HashPassword(make([]byte, MaxPasswordLen+1)); err != ErrPasswordTooLong {
		t.Fatalf("too long: %v", err)
	}
	for _, bad := range []string{"", "secret", "$2b$11$" + strings.Repeat("a", 53), "$pbkdf2-sha256$i=x$c2FsdHNhbHQ$" + h[len(h)-43:],
		"$pbkdf2-sha256$i=600000$c2FsdA$" + h[len(h)-43:], h[:len(h)-1], h + "$", strings.Replace(h, "sha256", "sha512", 1)} {
		if CheckHash(bad) == nil {
			t.Errorf("CheckHash(%q) accepted it", bad)
		}
	}
}

// A password of MaxPasswordLen bytes matches only itself: longer ones are
// refused, not truncated to a prefix that would match.
func TestPasswordTooLongMatchesNothing(t *testing.T) {
	pw := []byte(strings.Repeat("p", MaxPasswordLen))
	h, err := HashPasswordRounds(pw, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !CheckPassword(h, pw) {
		t.Fatal("a password of MaxPasswordLen bytes does not match itself")
	}
	for _, suffix := range []string{"x", "p", strings.Repeat("y", 4000)} {
		if CheckPassword(h, append(pw[:len(pw):len(pw)], suffix...)) {
			t.Errorf("the password plus %d bytes matches", len(suffix))
		}
	}
	if _, err := HashPasswordRounds(append(pw, 'x'), 10); !errors.Is(err, ErrPasswordTooLong) {
		t.Errorf("hashing %d bytes: %v", MaxPasswordLen+1, err)
	}
}
