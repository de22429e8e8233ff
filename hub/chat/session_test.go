package chat

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/auth/session"
	"github.com/floorhub/floorhub/hub/engineio"
	"github.com/floorhub/floorhub/hub/socketio"
	"github.com/floorhub/floorhub/internal/testkit"
)

// openSessions opens a session manager in a fresh directory for users,
// whose password is "pw" (hashed with few rounds: the test need not be
// slow). With tokens it also takes bearer tokens signed with secret.
func openSessions(t *testing.T, tokens bool, users ...session.User) *session.Manager {
	t.Helper()
	h, err := auth.HashPasswordRounds([]byte("pw"), 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i := range users {
		users[i].PasswordHash = h
	}
	o := session.Options{Dir: t.TempDir(), Logger: quiet}
	if tokens {
		o.Verifier = newVerifier(t, auth.VerifierOptions{})
	}
	m, err := session.Open(o, users)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// With the session manager: the dashboard's cookie admits its user with the
// config's id; a viewer may not chat; a token takes its configured user's
// id when it has no uid. With allowed_origins ["*"], as on /ws, the cookie
// counts only from the hub's own page (a token from any).
func TestConnectSession(t *testing.T) {
	m := openSessions(t, true, session.User{Name: "olga", ID: 7, Role: auth.RoleOperator}, session.User{Name: "victor", ID: 8, Role: auth.RoleViewer})
	s, _ := newService(t, Options{SocketIO: socketio.Options{Engine: engineio.Options{AllowedOrigins: []string{"*"}}}})
	s.o.Auth, s.o.Verifier = m, nil
	srv := serve(t, s)

	cookie := func(user string) http.Header {
		c, _, ok, err := m.Login(user, []byte("pw"))
		if !ok || err != nil {
			t.Fatalf("login %s: %v %v", user, ok, err)
		}
		return http.Header{"Cookie": {session.CookieName + "=" + c}}
	}
	from := func(origin string, h http.Header) http.Header {
		if h == nil {
			h = http.Header{}
		}
		h.Set("Origin", origin)
		return h
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
		{"operator's cookie from another site's page", "", from("https://evil.example", cookie("olga")), `unauthorized: a session cookie is accepted from the hub's own origin only`},
		{"operator's cookie from the hub's own page", "", from(srv.URL, cookie("olga")), `40{"sid":`},
		{"a token from another site's page", "&token=" + tok, from("https://evil.example", nil), `40{"sid":`},
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

// A connection on a session ends with the session: after a logout the
// client gets a DISCONNECT within a check or two and the user is offline,
// while a connection on another session of the same user stays.
func TestSessionEndDisconnects(t *testing.T) {
	m := openSessions(t, false, session.User{Name: "olga", ID: 7, Role: auth.RoleOperator})
	s, _ := newService(t, Options{})
	s.o.Auth, s.o.Verifier = m, nil
	srv := serve(t, s)

	connect := func() (*poller, string) {
		c, _, ok, err := m.Login("olga", []byte("pw"))
		if !ok || err != nil {
			t.Fatalf("login: %v %v", ok, err)
		}
		p := dialPolling(t, srv, "", http.Header{"Cookie": {session.CookieName + "=" + c}})
		p.post("40")
		var got string
		testkit.Eventually(t, "connected", 10*time.Second, func() bool { got += p.get(); return strings.Contains(got, `40{"sid":`) })
		return p, c
	}
	gone, c := connect()
	stays, _ := connect()
	if ok, err := m.Logout(c); !ok || err != nil {
		t.Fatalf("logout: %v %v", ok, err)
	}
	var got string
	testkit.Eventually(t, "a DISCONNECT once the session ended", 15*time.Second, func() bool {
		got += "\x1e" + gone.get()
		return hasPacket(got, "41")
	})
	testkit.Eventually(t, "one connection left", 10*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.online[7]) == 1
	})
	stays.post(`421["get_chats"]`)
	got = ""
	testkit.Eventually(t, "the other session still answers", 10*time.Second, func() bool {
		got += "\x1e" + stays.get()
		return hasPacket(got, "41") || strings.Contains(got, "431")
	})
	if hasPacket(got, "41") {
		t.Fatalf("the other session's connection ended: %q", got)
	}
}

// hasPacket tells whether polling payloads hold the packet p (packets are
// separated by the record separator).
func hasPacket(payloads, p string) bool {
	return slices.Contains(strings.Split(payloads, "\x1e"), p)
}

// connectToken opens a polling connection with tok and waits for its
// CONNECT answer.
func connectToken(t *testing.T, srv *httptest.Server, tok string) *poller {
	t.Helper()
	p := dialPolling(t, srv, "&token="+tok, nil)
	p.post("40")
	var got string
	testkit.Eventually(t, "the CONNECT answer", 10*time.Second, func() bool {
		got += p.get()
		return strings.Contains(got, "updated_chat_list") || strings.Contains(got, "44")
	})
	if !strings.Contains(got, `40{"sid":`) {
		t.Fatalf("connect: %q", got)
	}
	return p
}

// emit sends one event and waits for the answer that contains want.
func (p *poller) emit(event, want string) {
	p.t.Helper()
	p.post(event)
	var got string
	if !testkit.WaitTrue(10*time.Second, func() bool {
		got += p.get()
		return strings.Contains(got, "chat_created") || strings.Contains(got, "exception")
	}) || !strings.Contains(got, want) {
		p.t.Errorf("%s: %q, want %q", event, got, want)
	}
}

// With users configured, create_chat takes only their ids as receivers;
// without (token-only), any positive id, up to MaxChatsPerUser chats a
// user belongs to (an existing chat is still returned).
func TestCreateChatLimits(t *testing.T) {
	m := openSessions(t, true, session.User{Name: "olga", ID: 7, Role: auth.RoleOperator}, session.User{Name: "oscar", ID: 8, Role: auth.RoleOperator})
	configured, _ := newService(t, Options{Users: m})
	configured.o.Auth, configured.o.Verifier = m, nil
	tokenOnly, _ := newService(t, Options{MaxChatsPerUser: 2})
	srv, srv2 := serve(t, configured), serve(t, tokenOnly)
	tok, err := auth.Mint(secret, "olga", time.Hour, auth.Claims{})
	if err != nil {
		t.Fatal(err)
	}
	p := connectToken(t, srv, tok)
	p.emit(`42["create_chat",{"receiver_id":99}]`, `42["exception",{"message":"unknown user 99","status":"error"}]`)
	p.emit(`42["create_chat",{"receiver_id":8}]`, `"members":[7,8]`)

	tok, err = auth.Mint(secret, "tina", time.Hour, auth.Claims{UserID: 1})
	if err != nil {
		t.Fatal(err)
	}
	p = connectToken(t, srv2, tok)
	p.emit(`42["create_chat",{"receiver_id":99}]`, `"members":[1,99]`)
	p.emit(`42["create_chat",{"receiver_id":98}]`, `"members":[1,98]`)
	p.emit(`42["create_chat",{"receiver_id":97}]`, `"message":"too many chats: user 1 is in 2 (at most 2)"`)
	p.emit(`42["create_chat",{"receiver_id":99}]`, `"members":[1,99]`)
}
