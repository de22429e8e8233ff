package chat

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var secret = []byte("0123456789abcdef0123456789abcdef")

// newService is a chat on a fresh store, with o's other options; its
// tokens are verified with secret unless o has a Verifier.
func newService(t *testing.T, o Options) (*Service, *store.Store) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "db"), &store.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if o.Verifier == nil {
		o.Verifier = newVerifier(t, auth.VerifierOptions{})
	}
	o.Store, o.Logger = st, quiet
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

// newVerifier verifies tokens signed with secret, with o's other options.
func newVerifier(t *testing.T, o auth.VerifierOptions) *auth.Verifier {
	t.Helper()
	o.Secret = secret
	v, err := auth.NewVerifier(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// serve runs s (its Run loop, and its handler on a test HTTP server) until
// the end of the test, and returns the server.
func serve(t *testing.T, s *Service) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv
}

func payload(t *testing.T, js string) map[string]any {
	t.Helper()
	if js == "" {
		return nil
	}
	d := json.NewDecoder(strings.NewReader(js))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// Each event's handler against a real store, in order: what it answers
// and which payloads it refuses.
func TestEvents(t *testing.T) {
	s, _ := newService(t, Options{MaxMessageBytes: 16})
	alice, bob, eve := &user{ident: auth.Identity{ID: 1, User: "alice"}}, &user{ident: auth.Identity{ID: 2, User: "bob"}}, &user{ident: auth.Identity{ID: 3, User: "eve"}}
	for _, tc := range []struct {
		name    string
		u       *user
		h       func(*Service, *user, map[string]any) (string, any, error)
		payload string
		reply   string
		want    string // in the answer's JSON, or the error
		err     bool
	}{
		{"create_chat", alice, (*Service).createChat, `{"receiver_id":2}`, "chat_created", `"members":[1,2],`, false},
		{"create_chat again is the same chat", bob, (*Service).createChat, `{"receiver_id":"1"}`, "chat_created", `"id":1,`, false},
		{"create_chat with self", alice, (*Service).createChat, `{"receiver_id":1}`, "", "your own id", true},
		{"create_chat without receiver", alice, (*Service).createChat, `{}`, "", "receiver_id is required", true},
		{"create_chat with a bad receiver", alice, (*Service).createChat, `{"receiver_id":-4}`, "", "positive integer", true},
		{"create_message", alice, (*Service).createMessage, `{"chat_id":1,"receiver_id":2,"message":"hi bob"}`, "", `"sender_id":1,"sender_name":"alice","receiver_id":2,"message":"hi bob"`, false},
		{"create_message too long", alice, (*Service).createMessage, `{"chat_id":1,"receiver_id":2,"message":"0123456789abcdefg"}`, "", "at most 16", true},
		{"create_message empty", alice, (*Service).createMessage, `{"chat_id":1,"receiver_id":2,"message":" "}`, "", "message is required", true},
		{"create_message of a control character", alice, (*Service).createMessage, `{"chat_id":1,"receiver_id":2,"message":"\u0000"}`, "", "control character", true},
		{"create_message with a C1 control", alice, (*Service).createMessage, `{"chat_id":1,"receiver_id":2,"message":"a\u009bb"}`, "", "control character", true},
		{"create_message with tab and newlines", alice, (*Service).createMessage, `{"chat_id":1,"receiver_id":2,"message":"a\tb\r\nc"}`, "", `"message":"a\tb\r\nc"`, false},
		{"create_message without chat", alice, (*Service).createMessage, `{"receiver_id":2,"message":"x"}`, "", "chat_id is required", true},
		{"create_message to a stranger", alice, (*Service).createMessage, `{"chat_id":1,"receiver_id":3,"message":"x"}`, "", "not the other member", true},
		{"create_message by a stranger", eve, (*Service).createMessage, `{"chat_id":1,"receiver_id":2,"message":"x"}`, "", "chat 1 not found", true},
		{"create_message no payload", alice, (*Service).createMessage, ``, "", "chat_id is required", true},
		{"get_chats unread", bob, (*Service).getChats, ``, "updated_chat_list", `"unread_count":2`, false},
		{"get_chats own message is read", alice, (*Service).getChats, ``, "updated_chat_list", `"unread_count":0`, false},
		{"chat_messages", bob, (*Service).chatMessages, `{"chat_id":1}`, "get_all_chat_messages", `"message":"hi bob"`, false},
		{"chat_messages by a stranger", eve, (*Service).chatMessages, `{"chat_id":1}`, "", "chat 1 not found", true},
		{"chat_messages of no chat", bob, (*Service).chatMessages, `{"chat_id":7}`, "", "chat 7 not found", true},
		{"seen_message", bob, (*Service).seenMessage, `{"chat_id":1}`, "", "", false},
		{"get_chats after seen", bob, (*Service).getChats, ``, "updated_chat_list", `"unread_count":0`, false},
		{"seen_message by a stranger", eve, (*Service).seenMessage, `{"chat_id":1}`, "", "chat 1 not found", true},
		{"get_chats of nobody", eve, (*Service).getChats, ``, "updated_chat_list", `[]`, false},
	} {
		reply, body, err := tc.h(s, tc.u, payload(t, tc.payload))
		if tc.err {
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: error %v, want one with %q", tc.name, err, tc.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		js, _ := json.Marshal(body)
		if reply != tc.reply || !strings.Contains(string(js), tc.want) {
			t.Errorf("%s: %q %s, want %q with %s", tc.name, reply, js, tc.reply, tc.want)
		}
	}
}

func TestLimiter(t *testing.T) {
	l := newLimiter(2, 0)
	for i, tc := range []struct {
		at   time.Duration
		want bool
	}{{0, true}, {0, true}, {0, false}, {250 * time.Millisecond, false}, {500 * time.Millisecond, true}, {500 * time.Millisecond, false}, {5 * time.Second, true}, {5 * time.Second, true}, {5 * time.Second, false}} {
		if got := l.allow(2, tc.at); got != tc.want {
			t.Errorf("event %d at %v: %v, want %v", i, tc.at, got, tc.want)
		}
	}
}

// poller is a bare Engine.IO long-polling client, enough to see what a
// CONNECT is answered with.
type poller struct {
	t    *testing.T
	base string
	sid  string
}

func (p *poller) get() string {
	p.t.Helper()
	resp, err := http.Get(p.base + "&sid=" + p.sid)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func (p *poller) post(body string) {
	p.t.Helper()
	resp, err := http.Post(p.base+"&sid="+p.sid, "text/plain", strings.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	resp.Body.Close()
}

func dialPolling(t *testing.T, srv *httptest.Server, query string, header http.Header) *poller {
	t.Helper()
	p := &poller{t: t, base: srv.URL + "/socket.io/?EIO=4&transport=polling" + query}
	req, _ := http.NewRequest("GET", p.base, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('}')
	var hs struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "0")), &hs); err != nil {
		t.Fatalf("handshake %q: %v", line, err)
	}
	p.sid = hs.SID
	return p
}

// No token, no chat; the userId query must be the token's own uid; a
// token may come in the auth payload, the query or the header; a user's
// connections are capped.
func TestConnectAuth(t *testing.T) {
	s, _ := newService(t, Options{MaxConnsPerUser: 1})
	srv := serve(t, s)

	mint := func(uid int64) string {
		tok, err := auth.Mint(secret, "alice", time.Hour, auth.Claims{UserID: uid})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := mint(1)
	for _, tc := range []struct {
		name   string
		query  string
		header http.Header
		auth   string
		want   string
	}{
		{"no token", "", nil, `{}`, `44{"message":"unauthorized: auth: no token"}`},
		{"bad token", "", nil, `{"token":"x.y.z"}`, `44{"message":"unauthorized: auth: invalid token`},
		{"no uid", "", nil, `{"token":"` + mint(0) + `"}`, `uid claim`},
		{"someone else's userId", "&userId=2", nil, `{"token":"` + good + `"}`, `userId \"2\" is not the token's user`},
		{"token in the query with its userId", "&userId=1&token=" + good, nil, ``, `40{"sid":`},
		{"second connection of the user", "", http.Header{"Authorization": {"Bearer " + good}}, ``, `too many connections`},
	} {
		p := dialPolling(t, srv, tc.query, tc.header)
		p.post("40" + tc.auth)
		var got string
		testkit.Eventually(t, tc.name+": the CONNECT answer", 10*time.Second, func() bool {
			got += p.get()
			return strings.Contains(got, "4") && (strings.Contains(got, "40") || strings.Contains(got, "44"))
		})
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
		if strings.HasPrefix(tc.want, "40") && !strings.Contains(got, `42["updated_chat_list",[]]`) {
			t.Errorf("%s: no chat list on connect: %q", tc.name, got)
		}
	}
}

func TestPostAsCentralUser(t *testing.T) {
	s, st := newService(t, Options{})
	c, _, err := st.CreateChat([]int64{1, 2}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Post(c.ID, -1, "control room", ""); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("empty: %v", err)
	}
	if _, err := s.Post(9, -1, "control room", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no chat: %v", err)
	}
	m, err := s.Post(c.ID, -1, "control room", "line 3 stops at noon")
	if err != nil || m.SenderName != "control room" {
		t.Fatalf("Post: %v %v", m, err)
	}
	sums, _ := st.UserChats(2)
	if len(sums) != 1 || sums[0].Unread != 1 {
		t.Fatalf("%+v", sums)
	}
}

// A connection ends when its token expires (plus the leeway): the client
// gets a DISCONNECT and the user is offline.
func TestTokenExpiryDisconnects(t *testing.T) {
	s, _ := newService(t, Options{Verifier: newVerifier(t, auth.VerifierOptions{Leeway: time.Millisecond})})
	srv := serve(t, s)

	tok, err := auth.Mint(secret, "alice", 2*time.Second, auth.Claims{UserID: 1})
	if err != nil {
		t.Fatal(err)
	}
	p := dialPolling(t, srv, "", nil)
	p.post(`40{"token":"` + tok + `"}`)
	var got string
	testkit.Eventually(t, "connected", 10*time.Second, func() bool { got += p.get(); return strings.Contains(got, `40{"sid":`) })
	if s.Online() != 1 {
		t.Fatalf("online %d", s.Online())
	}
	testkit.Eventually(t, "a DISCONNECT once the token expired", 15*time.Second, func() bool {
		got += p.get() // a long poll: the default ping interval (25 s) does not come into it
		return strings.Contains(got, "41")
	})
	testkit.Eventually(t, "the user offline", 10*time.Second, func() bool { return s.Online() == 0 })
}
