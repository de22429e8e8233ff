package session_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/auth/session"
	"github.com/floorhub/floorhub/internal/testkit"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

// hash is a password hash of few rounds: the tests check logins, not
// PBKDF2's cost (which the race detector makes seconds).
func hash(t testing.TB, pw string) string {
	t.Helper()
	h, err := auth.HashPasswordRounds([]byte(pw), 1000)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

type env struct {
	t     testing.TB
	dir   string
	clock *testkit.Clock
	o     session.Options
	m     *session.Manager
	srv   *httptest.Server
	users []session.User // as first opened
}

func users(t testing.TB) []session.User {
	return []session.User{
		{Name: "alice", ID: 7, Role: auth.RoleOperator, PasswordHash: hash(t, "alice-pw")},
		{Name: "victor", ID: 8, Role: auth.RoleViewer, PasswordHash: hash(t, "victor-pw")},
	}
}

// newEnv opens a Manager in a fresh directory and serves its endpoints as
// the agent mounts them, on a real socket.
func newEnv(t testing.TB, us []session.User, edit ...func(*session.Options)) *env {
	t.Helper()
	v, err := auth.NewVerifier(auth.VerifierOptions{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: t.TempDir(), clock: testkit.NewClock(time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC))}
	e.o = session.Options{Dir: e.dir, TTL: time.Hour, Verifier: v, Now: e.clock.Now, Logger: slog.New(slog.DiscardHandler)}
	for _, f := range edit {
		f(&e.o)
	}
	e.users = us
	e.open(us)
	return e
}

// open (re)opens the Manager on the same directory, as an agent restarted
// (or killed and restarted) does, and serves it.
func (e *env) open(us []session.User) {
	e.t.Helper()
	m, err := session.Open(e.o, us)
	if err != nil {
		e.t.Fatal(err)
	}
	e.m = m
	if e.srv != nil {
		e.srv.Close()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+session.LoginPath, m.ServeLogin)
	mux.HandleFunc("POST "+session.LogoutPath, m.ServeLogout)
	mux.HandleFunc("GET "+session.SessionPath, m.ServeSession)
	e.srv = httptest.NewServer(mux)
	e.t.Cleanup(e.srv.Close)
}

type reply struct {
	status int
	body   map[string]any
	cookie *http.Cookie
	header http.Header
}

func (e *env) do(method, path, body string, cookie *http.Cookie, hdr ...string) reply {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if cookie != nil {
		req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header}
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &r.body); err != nil {
			e.t.Fatalf("%s %s: not JSON: %q", method, path, b)
		}
	}
	for _, c := range resp.Cookies() {
		if c.Name == session.CookieName {
			r.cookie = c
		}
	}
	return r
}

func (e *env) login(user, pw string) reply {
	e.t.Helper()
	b, _ := json.Marshal(map[string]string{"user": user, "password": pw})
	return e.do("POST", session.LoginPath, string(b), nil)
}

func (e *env) mustLogin(user, pw string) *http.Cookie {
	e.t.Helper()
	r := e.login(user, pw)
	if r.status != 200 || r.cookie == nil {
		e.t.Fatalf("login %s: %d %v", user, r.status, r.body)
	}
	return r.cookie
}

func (e *env) session(c *http.Cookie) reply {
	e.t.Helper()
	return e.do("GET", session.SessionPath, "", c)
}

func TestLoginSessionLogout(t *testing.T) {
	e := newEnv(t, users(t))
	r := e.login("alice", "alice-pw")
	if r.status != 200 || r.body["user"] != "alice" || r.body["id"] != float64(7) || r.body["role"] != "operator" ||
		r.body["expires"] != "2026-12-02T04:00:00Z" {
		t.Fatalf("login: %d %v", r.status, r.body)
	}
	c := r.cookie
	switch {
	case c == nil:
		t.Fatal("no cookie")
	case !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure:
		t.Fatalf("cookie attributes: %+v (want HttpOnly, SameSite=Strict, Path=/, not Secure over plain HTTP)", c)
	case len(c.Value) < 43:
		t.Fatalf("cookie value %q: want 32 random bytes", c.Value)
	case c.MaxAge <= 0:
		t.Fatalf("cookie Max-Age %d: a kiosk browser restarted must keep it", c.MaxAge)
	}
	if b, err := os.ReadFile(filepath.Join(e.dir, session.File)); err != nil || bytes.Contains(b, []byte(c.Value)) {
		t.Fatalf("the sessions file must keep only a digest of the id (err %v)", err)
	}
	e.clock.Advance(10 * time.Minute)
	if r := e.session(c); r.status != 200 || r.body["user"] != "alice" || r.body["id"] != float64(7) || r.body["expires"] != "2026-12-02T04:10:00Z" {
		t.Fatalf("session: %d %v (want renewed to 04:10)", r.status, r.body)
	}
	if r := e.session(nil); r.status != 401 || r.body["error"] != "no_session" {
		t.Fatalf("no cookie: %d %v", r.status, r.body)
	}
	r = e.do("POST", session.LogoutPath, "", c)
	if r.status != 204 || r.cookie == nil || r.cookie.MaxAge >= 0 {
		t.Fatalf("logout: %d, cookie %+v (want 204 and the cookie cleared)", r.status, r.cookie)
	}
	if r := e.session(c); r.status != 401 || r.body["error"] != "session_expired" {
		t.Fatalf("after logout: %d %v", r.status, r.body)
	}
}

func TestLoginRefused(t *testing.T) {
	e := newEnv(t, users(t), func(o *session.Options) { o.LoginsPerMinute = 100 })
	for _, tc := range []struct {
		name, body, ctype string
		status            int
		code              string
	}{
		{"wrong password", `{"user":"alice","password":"nope"}`, "", 401, "bad_credentials"},
		{"unknown user", `{"user":"mallory","password":"alice-pw"}`, "", 401, "bad_credentials"},
		{"empty password", `{"user":"alice","password":""}`, "", 401, "bad_credentials"},
		{"not JSON", `user=alice`, "", 400, "bad_request"},
		{"no password", `{"user":"alice"}`, "", 400, "bad_request"},
		{"a form", `{"user":"alice","password":"alice-pw"}`, "application/x-www-form-urlencoded", 415, "bad_request"},
		{"too long", `{"user":"alice","password":"` + strings.Repeat("x", 5000) + `"}`, "", 400, "bad_request"},
		{"password over 1024 bytes", `{"user":"alice","password":"` + strings.Repeat("x", auth.MaxPasswordLen+1) + `"}`, "", 401, "bad_credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.ctype != "" {
				hdr = []string{"Content-Type", tc.ctype}
			}
			r := e.do("POST", session.LoginPath, tc.body, nil, hdr...)
			if r.status != tc.status || r.body["error"] != tc.code || r.body["message"] == "" || r.cookie != nil {
				t.Fatalf("%d %v cookie %v: want %d %s", r.status, r.body, r.cookie, tc.status, tc.code)
			}
		})
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t, users(t), func(o *session.Options) { o.LoginsPerMinute = 3 })
	for i := range 3 {
		if r := e.login("alice", "wrong"); r.status != 401 {
			t.Fatalf("attempt %d: %d", i, r.status)
		}
	}
	r := e.login("alice", "alice-pw") // even the right password
	if r.status != 429 || r.body["error"] != "rate_limited" || r.header.Get("Retry-After") == "" || r.cookie != nil {
		t.Fatalf("4th attempt in a minute: %d %v", r.status, r.body)
	}
	e.clock.Advance(20 * time.Second) // one attempt back (3 a minute)
	if r := e.login("alice", "alice-pw"); r.status != 200 {
		t.Fatalf("after 20 s: %d %v", r.status, r.body)
	}
	if r := e.login("alice", "alice-pw"); r.status != 429 {
		t.Fatalf("again at once: %d", r.status)
	}
}

// Sessions slide: each use renews them; unused for the TTL they end.
func TestSlidingExpiry(t *testing.T) {
	e := newEnv(t, users(t))
	c := e.mustLogin("victor", "victor-pw")
	for range 3 {
		e.clock.Advance(50 * time.Minute)
		if r := e.session(c); r.status != 200 {
			t.Fatalf("used within the TTL: %d %v", r.status, r.body)
		}
	}
	e.clock.Advance(time.Hour)
	if r := e.session(c); r.status != 401 || r.body["error"] != "session_expired" || r.cookie == nil {
		t.Fatalf("unused for the TTL: %d %v", r.status, r.body)
	}
}

// A session outlives the agent: logins are written at once, so even an
// agent killed right after one (no Flush, no Close) finds it; renewals are
// written by Flush (Run, every minute).
func TestSessionsSurviveRestart(t *testing.T) {
	e := newEnv(t, users(t))
	c := e.mustLogin("alice", "alice-pw")
	gone := e.mustLogin("victor", "victor-pw")
	e.do("POST", session.LogoutPath, "", gone)
	e.open(users0(e)) // "kill -9" and start again: nothing flushed
	if r := e.session(c); r.status != 200 || r.body["user"] != "alice" {
		t.Fatalf("after a restart: %d %v", r.status, r.body)
	}
	if r := e.session(gone); r.status != 401 {
		t.Fatalf("a logged out session came back: %d", r.status)
	}
	e.clock.Advance(50 * time.Minute)
	e.session(c) // renewed to 50 min + 1 h
	if err := e.m.Flush(); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(50 * time.Minute)
	e.open(users0(e))
	if r := e.session(c); r.status != 200 {
		t.Fatalf("the renewal was not kept: %d %v", r.status, r.body)
	}
}

// users0 are the env's users as first opened (same hashes).
func users0(e *env) []session.User { return e.users }

func TestUsersRemovedOrChanged(t *testing.T) {
	e := newEnv(t, users(t))
	us := e.users
	a := e.mustLogin("alice", "alice-pw")
	v := e.mustLogin("victor", "victor-pw")
	// A new role applies to the open session.
	changed := []session.User{us[0], us[1]}
	changed[1].Role = auth.RoleAdmin
	if n, err := e.m.SetUsers(changed); n != 0 || err != nil {
		t.Fatalf("SetUsers: %d %v", n, err)
	}
	if r := e.session(v); r.status != 200 || r.body["role"] != "admin" {
		t.Fatalf("role change: %d %v", r.status, r.body)
	}
	// A new password ends alice's sessions; removing victor ends his.
	changed = []session.User{us[0]}
	changed[0].PasswordHash = hash(t, "new-pw")
	if n, err := e.m.SetUsers(changed); n != 2 || err != nil {
		t.Fatalf("SetUsers: %d sessions ended, %v (want 2)", n, err)
	}
	for _, c := range []*http.Cookie{a, v} {
		if r := e.session(c); r.status != 401 || r.body["error"] != "session_expired" {
			t.Fatalf("after the change: %d %v", r.status, r.body)
		}
	}
	// The same at a start with a config that no longer has the user.
	b := e.mustLogin("alice", "new-pw")
	e.open([]session.User{us[1]})
	if r := e.session(b); r.status != 401 {
		t.Fatalf("a removed user's session survived a restart: %d", r.status)
	}
}

func TestSessionCaps(t *testing.T) {
	e := newEnv(t, users(t), func(o *session.Options) { o.MaxPerUser, o.MaxSessions, o.LoginsPerMinute = 2, 3, 100 })
	first := e.mustLogin("alice", "alice-pw")
	e.clock.Advance(time.Second)
	second := e.mustLogin("alice", "alice-pw")
	e.clock.Advance(time.Second)
	e.session(first) // now the most recently used
	e.clock.Advance(time.Second)
	third := e.mustLogin("alice", "alice-pw")
	if e.session(second).status != 401 || e.session(first).status != 200 || e.session(third).status != 200 {
		t.Fatal("a third login of a user capped at 2 must end the least recently used session")
	}
	e.clock.Advance(time.Second)
	e.mustLogin("victor", "victor-pw")
	e.clock.Advance(time.Second)
	e.mustLogin("victor", "victor-pw")
	n := 0
	for _, c := range []*http.Cookie{first, third} {
		if e.session(c).status == 200 {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d of alice's sessions live: 3 in all allowed, victor has 2", n)
	}
}

func TestCorruptFileMovedAside(t *testing.T) {
	e := newEnv(t, users(t))
	e.mustLogin("alice", "alice-pw")
	path := filepath.Join(e.dir, session.File)
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.open(e.users)
	if r := e.login("alice", "alice-pw"); r.status != 200 {
		t.Fatalf("login after a corrupt file: %d", r.status)
	}
	m, _ := filepath.Glob(path + ".corrupt-*")
	if len(m) != 1 {
		t.Fatalf("the corrupt file was not moved aside: %v", m)
	}
}

func TestSecureCookieOverTLS(t *testing.T) {
	e := newEnv(t, users(t))
	srv := httptest.NewTLSServer(http.HandlerFunc(e.m.ServeLogin))
	defer srv.Close()
	resp, err := srv.Client().Post(srv.URL, "application/json", strings.NewReader(`{"user":"alice","password":"alice-pw"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cs := resp.Cookies()
	if resp.StatusCode != 200 || len(cs) != 1 || !cs[0].Secure {
		t.Fatalf("over TLS: %d %+v (want a Secure cookie)", resp.StatusCode, cs)
	}
}

// Authenticate takes a bearer token as well as the cookie: a token's role
// is its role claim, else its configured user's, else admin; its id the
// uid claim, else its configured user's.
func TestAuthenticateToken(t *testing.T) {
	e := newEnv(t, users(t))
	for _, tc := range []struct {
		sub, role string
		uid       int64
		want      auth.Role
		wantID    int64
	}{
		{"ci-bot", "", 0, auth.RoleAdmin, 0},
		{"ci-bot", "viewer", 3, auth.RoleViewer, 3},
		{"victor", "", 0, auth.RoleViewer, 8},
		{"victor", "operator", 0, auth.RoleOperator, 8},
		{"alice", "root", 0, "", 7},
	} {
		tok, err := auth.Mint(secret, tc.sub, time.Hour, auth.Claims{Role: tc.role, UserID: tc.uid})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("GET", "/api/v1/history", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		id, err := e.m.Authenticate(req)
		if err != nil || id.User != tc.sub || id.Role != tc.want || id.ID != tc.wantID || id.Session != "" {
			t.Errorf("%s role %q: %+v %v, want role %q id %d", tc.sub, tc.role, id, err, tc.want, tc.wantID)
		}
	}
	req := httptest.NewRequest("GET", "/", nil)
	if _, err := e.m.Authenticate(req); !errors.Is(err, auth.ErrNoSession) {
		t.Fatalf("nothing: %v", err)
	}
	req.AddCookie(&http.Cookie{Name: session.CookieName, Value: "forged"})
	if _, err := e.m.Authenticate(req); !errors.Is(err, auth.ErrSessionExpired) {
		t.Fatalf("a forged cookie: %v", err)
	}
}

// An open dashboard renews its session every second; the file is written
// only once a renewal moved the expiry by a tenth of the TTL.
func TestRenewalsSpareTheCard(t *testing.T) {
	e := newEnv(t, users(t))
	c := e.mustLogin("alice", "alice-pw")
	path := filepath.Join(e.dir, session.File)
	read := func() string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	before := read()
	for range 5 {
		e.clock.Advance(time.Minute) // 5 min < 6 min, a tenth of 1 h
		e.session(c)
		if err := e.m.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if read() != before {
		t.Fatal("renewals of less than a tenth of the TTL were written")
	}
	e.clock.Advance(time.Minute)
	e.session(c)
	if err := e.m.Flush(); err != nil {
		t.Fatal(err)
	}
	if read() == before {
		t.Fatal("a renewal of a tenth of the TTL was not written")
	}
}

// A refused login logs the user name only when it names a configured
// user: a password typed into the user box stays out of the journal.
func TestLoginLogsNoUnknownName(t *testing.T) {
	var log testkit.Buffer
	e := newEnv(t, users(t), func(o *session.Options) {
		o.LoginsPerMinute = 100
		o.Logger = slog.New(slog.NewTextHandler(&log, nil))
	})
	e.login("hunter2-Secret!", "x")
	e.login("alice", "wrong")
	got := log.String()
	if strings.Contains(got, "hunter2") || !strings.Contains(got, `user="unknown user (15 bytes)"`) ||
		!strings.Contains(got, "user=alice") {
		t.Fatalf("log:\n%s", got)
	}
}

// Another site's page cannot log the dashboard out: a plain form POST
// needs no CORS preflight, and its answer's Set-Cookie would clear the
// session cookie (or, from a sibling host of the same site, whose requests
// carry the SameSite=Strict cookie, end the session itself). The browser
// names the page's origin; the hub's own origin, or none (curl), may.
func TestLogoutFromAnotherSite(t *testing.T) {
	e := newEnv(t, users(t))
	c := e.mustLogin("alice", "alice-pw")
	for _, origin := range []string{"http://evil.example", "http://evil.example:" + strings.TrimPrefix(e.srv.URL, "http://127.0.0.1:"), "null"} {
		r := e.do("POST", session.LogoutPath, "", c, "Origin", origin, "Content-Type", "application/x-www-form-urlencoded")
		if r.status != http.StatusForbidden || r.cookie != nil {
			t.Fatalf("logout from %s: %d %v, cookie %+v (want 403, the cookie kept)", origin, r.status, r.body, r.cookie)
		}
	}
	if r := e.session(c); r.status != 200 {
		t.Fatalf("after the refused logouts: %d %v", r.status, r.body)
	}
	if r := e.do("POST", session.LogoutPath, "", c, "Origin", e.srv.URL); r.status != 204 || r.cookie == nil {
		t.Fatalf("logout from the hub's own page: %d %v", r.status, r.body)
	}
	c = e.mustLogin("alice", "alice-pw")
	if r := e.do("POST", session.LogoutPath, "", c); r.status != 204 || r.cookie == nil {
		t.Fatalf("logout with no Origin (not a browser): %d %v", r.status, r.body)
	}
}
