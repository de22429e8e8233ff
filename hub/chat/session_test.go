package chat

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/auth/session"
	"github.com/floorhub/floorhub/internal/testkit"
)

// With the session manager: the dashboard's cookie admits its user with the
// config's id; a viewer may not chat; a token takes its configured user's
// id when it has no uid.
func TestConnectSession(t *testing.T) {
	var users []session.User
	for i, u := range []struct {
		name string
		role auth.Role
	}{{"olga", auth.RoleOperator}, {"victor", auth.RoleViewer}} {
		h, err := auth.HashPasswordRounds([]byte("pw"), 1000)
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, session.User{Name: u.name, ID: int64(7 + i), Role: u.role, PasswordHash: h})
	}
	v, err := auth.NewVerifier(auth.VerifierOptions{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	m, err := session.Open(session.Options{Dir: t.TempDir(), Verifier: v, Logger: quiet}, users)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newService(t, Options{})
	s.o.Auth, s.o.Verifier = m, nil
	srv := httptest.NewServer(s)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	cookie := func(user string) http.Header {
		c, _, ok, err := m.Login(user, []byte("pw"))
		if !ok || err != nil {
			t.Fatalf("login %s: %v %v", user, ok, err)
		}
		return http.Header{"Cookie": {session.CookieName + "=" + c}}
	}
	tok, err := auth.Mint(secret, "olga", time.Hour, auth.Claims{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		query  string
		header http.Header
		want   string
	}{
		{"operator's cookie", "&userId=7", cookie("olga"), `40{"sid":`},
		{"viewer's cookie", "", cookie("victor"), `forbidden: viewer may not chat`},
		{"a dead cookie", "", http.Header{"Cookie": {session.CookieName + "=gone"}}, `unauthorized: auth: session expired`},
		{"a token without uid", "&userId=7&token=" + tok, nil, `40{"sid":`},
	} {
		p := dialPolling(t, srv, tc.query, tc.header)
		p.post("40")
		var got string
		testkit.Eventually(t, tc.name+": the CONNECT answer", 10*time.Second, func() bool {
			got += p.get()
			return strings.Contains(got, "40") || strings.Contains(got, "44")
		})
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
