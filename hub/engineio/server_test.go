package engineio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/gorilla/websocket"
)

// recorder is a Handler that keeps what it gets and, if echo is set, sends
// every message back.
type recorder struct {
	so   *Socket
	echo bool

	mu     sync.Mutex
	msgs   []Message
	closed error
}

func (r *recorder) Message(m Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	if r.echo {
		r.so.Send(m)
	}
}

func (r *recorder) Closed(reason error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if reason == nil {
		reason = errors.New("nil reason")
	}
	r.closed = reason
}

func (r *recorder) reason() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// testServer is a Server on a real socket, with the handlers it made.
type testServer struct {
	*Server
	url string // http://127.0.0.1:port/engine.io/

	mu    sync.Mutex
	recs  map[string]*recorder
	order []*recorder
}

func (ts *testServer) rec(sid string) *recorder {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.recs[sid]
}

func (ts *testServer) all() []*recorder {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]*recorder(nil), ts.order...)
}

func startServer(t *testing.T, o Options) *testServer {
	t.Helper()
	ts := &testServer{recs: make(map[string]*recorder)}
	srv, err := NewServer(o, func(so *Socket) Handler {
		r := &recorder{so: so, echo: true}
		ts.mu.Lock()
		ts.recs[so.ID()] = r
		ts.order = append(ts.order, r)
		ts.mu.Unlock()
		return r
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.Server = srv
	l, addr := testkit.ListenAddr(t)
	hs := &http.Server{Handler: srv}
	go hs.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		hs.Close()
	})
	ts.url = "http://" + addr + "/engine.io/"
	return ts
}

type response struct {
	status int
	body   string
}

func do(t *testing.T, method, url, body string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{res.StatusCode, string(b)}
}

type openPacket struct {
	SID          string   `json:"sid"`
	Upgrades     []string `json:"upgrades"`
	PingInterval int64    `json:"pingInterval"`
	PingTimeout  int64    `json:"pingTimeout"`
	MaxPayload   int64    `json:"maxPayload"`
}

func parseOpen(t *testing.T, s string) openPacket {
	t.Helper()
	var op openPacket
	if !strings.HasPrefix(s, "0") || json.Unmarshal([]byte(s[1:]), &op) != nil || op.SID == "" {
		t.Fatalf("not an open packet: %q", s)
	}
	return op
}

// handshake opens a long-polling session and returns its poll URL.
func (ts *testServer) handshake(t *testing.T) (sid, url string) {
	t.Helper()
	r := do(t, "GET", ts.url+"?EIO=4&transport=polling", "")
	if r.status != 200 {
		t.Fatalf("handshake: %d %s", r.status, r.body)
	}
	op := parseOpen(t, r.body)
	return op.SID, ts.url + "?EIO=4&transport=polling&sid=" + op.SID
}

func (ts *testServer) wsURL(query string) string {
	return "ws" + strings.TrimPrefix(ts.url, "http") + "?" + query
}

func dialWS(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	return c
}

func readText(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	mt, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if mt != websocket.TextMessage {
		t.Fatalf("read a binary frame %v, want text", b)
	}
	return string(b)
}

func fast() Options {
	return Options{PingInterval: 300 * time.Millisecond, PingTimeout: 200 * time.Millisecond}
}

func TestRequestErrors(t *testing.T) {
	ts := startServer(t, fast())
	sid, _ := ts.handshake(t)
	for _, tc := range []struct {
		name, method, query string
		status, code        int
	}{
		{"no EIO", "GET", "transport=polling", 400, codeUnsupported},
		{"EIO 3", "GET", "EIO=3&transport=polling", 400, codeUnsupported},
		{"EIO abc", "GET", "EIO=abc&transport=polling", 400, codeUnsupported},
		{"no transport", "GET", "EIO=4", 400, codeTransportUnknown},
		{"bad transport", "GET", "EIO=4&transport=abc", 400, codeTransportUnknown},
		{"POST handshake", "POST", "EIO=4&transport=polling", 400, codeBadHandshake},
		{"PUT handshake", "PUT", "EIO=4&transport=polling", 400, codeBadHandshake},
		{"unknown sid", "GET", "EIO=4&transport=polling&sid=nope", 400, codeUnknownSID},
		{"PUT with sid", "PUT", "EIO=4&transport=polling&sid=" + sid, 400, codeBadRequest},
		{"websocket without upgrade", "GET", "EIO=4&transport=websocket", 400, codeBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.method, ts.url+"?"+tc.query, "")
			var body struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			}
			if r.status != tc.status || json.Unmarshal([]byte(r.body), &body) != nil || body.Code != tc.code || body.Message != codeMessages[tc.code] {
				t.Fatalf("%s ?%s = %d %s; want %d with code %d", tc.method, tc.query, r.status, r.body, tc.status, tc.code)
			}
		})
	}
}

func TestPollingHandshakeAndEcho(t *testing.T) {
	ts := startServer(t, fast())
	r := do(t, "GET", ts.url+"?EIO=4&transport=polling", "")
	op := parseOpen(t, r.body)
	if len(op.Upgrades) != 1 || op.Upgrades[0] != "websocket" || op.PingInterval != 300 || op.PingTimeout != 200 || op.MaxPayload != 1_000_000 {
		t.Fatalf("open packet %+v", op)
	}
	url := ts.url + "?EIO=4&transport=polling&sid=" + op.SID
	if r := do(t, "POST", url, "4hello\x1ebAQIDBA==\x1e4"); r.status != 200 || r.body != "ok" {
		t.Fatalf("post: %d %q", r.status, r.body)
	}
	if r := do(t, "GET", url, ""); r.status != 200 || r.body != "4hello\x1ebAQIDBA==\x1e4" {
		t.Fatalf("poll: %d %q", r.status, r.body)
	}
	rec := ts.rec(op.SID)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.msgs) != 3 || !rec.msgs[1].Binary || string(rec.msgs[1].Data) != "\x01\x02\x03\x04" {
		t.Fatalf("handler got %+v", rec.msgs)
	}
}

func TestWebSocketHandshakeAndEcho(t *testing.T) {
	ts := startServer(t, fast())
	c := dialWS(t, ts.wsURL("EIO=4&transport=websocket"))
	op := parseOpen(t, readText(t, c))
	if len(op.Upgrades) != 0 {
		t.Fatalf("upgrades %v on a WebSocket session", op.Upgrades)
	}
	c.WriteMessage(websocket.TextMessage, []byte("4hello"))
	c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
	if s := readText(t, c); s != "4hello" {
		t.Fatalf("echo %q", s)
	}
	if mt, b, err := c.ReadMessage(); err != nil || mt != websocket.BinaryMessage || string(b) != "\x01\x02\x03" {
		t.Fatalf("binary echo: %v %v %v", mt, b, err)
	}
}

func TestWebSocketPingPong(t *testing.T) {
	ts := startServer(t, Options{PingInterval: 20 * time.Millisecond, PingTimeout: 2 * time.Second})
	c := dialWS(t, ts.wsURL("EIO=4&transport=websocket"))
	sid := parseOpen(t, readText(t, c)).SID
	for range 3 {
		if s := readText(t, c); s != "2" {
			t.Fatalf("got %q, want a ping", s)
		}
		c.WriteMessage(websocket.TextMessage, []byte("3"))
	}
	if err := ts.rec(sid).reason(); err != nil {
		t.Fatalf("session closed: %v", err)
	}
}

func TestPingTimeout(t *testing.T) {
	ts := startServer(t, Options{PingInterval: 20 * time.Millisecond, PingTimeout: 20 * time.Millisecond})
	sid, url := ts.handshake(t)
	testkit.Eventually(t, "the session to time out", 5*time.Second, func() bool { return ts.rec(sid).reason() != nil })
	if err := ts.rec(sid).reason(); !errors.Is(err, ErrPingTimeout) {
		t.Fatalf("closed with %v, want ErrPingTimeout", err)
	}
	if r := do(t, "GET", url, ""); r.status != 400 {
		t.Fatalf("poll after the timeout: %d %q", r.status, r.body)
	}

	c := dialWS(t, ts.wsURL("EIO=4&transport=websocket"))
	readText(t, c) // open
	for {
		_, _, err := c.ReadMessage() // the ping, then the close
		if err != nil {
			break
		}
	}
}

// A session past its ping deadline is refused even if its heartbeat has not
// run yet (a loaded machine): the clock decides, not the scheduler.
func TestPingDeadlineByClock(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	o := Options{PingInterval: time.Hour, PingTimeout: time.Hour, Now: clock.Now}
	ts := startServer(t, o)
	sid, url := ts.handshake(t)
	clock.Advance(2*time.Hour + time.Second)
	if r := do(t, "GET", url, ""); r.status != 400 {
		t.Fatalf("poll past the deadline: %d %q", r.status, r.body)
	}
	testkit.Eventually(t, "Closed", 5*time.Second, func() bool { return errors.Is(ts.rec(sid).reason(), ErrPingTimeout) })
}

func TestUpgrade(t *testing.T) {
	ts := startServer(t, Options{PingInterval: 10 * time.Second, PingTimeout: 10 * time.Second})
	sid, url := ts.handshake(t)

	// A poll waits; the probe releases it with a noop.
	pending := make(chan response, 1)
	go func() { pending <- do(t, "GET", url, "") }()
	testkit.Eventually(t, "the poll to wait", 5*time.Second, func() bool {
		so := ts.lookup(sid)
		so.mu.Lock()
		defer so.mu.Unlock()
		return so.polling
	})
	c := dialWS(t, ts.wsURL("EIO=4&transport=websocket&sid="+sid))
	c.WriteMessage(websocket.TextMessage, []byte("2probe"))
	if s := readText(t, c); s != "3probe" {
		t.Fatalf("probe answer %q", s)
	}
	if r := <-pending; r.status != 200 || r.body != "6" {
		t.Fatalf("pending poll: %d %q, want the noop", r.status, r.body)
	}
	// A second probe of the same session is refused with a close frame.
	c2 := dialWS(t, ts.wsURL("EIO=4&transport=websocket&sid="+sid))
	if _, _, err := c2.ReadMessage(); !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
		t.Fatalf("second probe: %v, want close 1008", err)
	}
	c.WriteMessage(websocket.TextMessage, []byte("5"))
	c.WriteMessage(websocket.TextMessage, []byte("4after"))
	if s := readText(t, c); s != "4after" {
		t.Fatalf("echo after the upgrade %q", s)
	}
	if r := do(t, "GET", url, ""); r.status != 400 {
		t.Fatalf("poll after the upgrade: %d %q", r.status, r.body)
	}
	if r := do(t, "POST", url, "4x"); r.status != 400 {
		t.Fatalf("post after the upgrade: %d %q", r.status, r.body)
	}
	ts.Server.mu.Lock()
	n := ts.Server.perAddr["127.0.0.1"]
	ts.Server.mu.Unlock()
	if n != 1 {
		t.Fatalf("the address counts %d sessions after the upgrade, want 1", n)
	}
}

// An upgrade left half-way (a probe that never sends "5", or a WebSocket
// that never probes) is dropped after UpgradeTimeout; the session goes on
// polling, gets what was sent meanwhile, and may be probed again.
func TestHalfOpenUpgrade(t *testing.T) {
	o := fast()
	o.PingInterval, o.PingTimeout, o.UpgradeTimeout = 10*time.Second, 10*time.Second, 300*time.Millisecond
	ts := startServer(t, o)
	sid, url := ts.handshake(t)
	for _, probe := range []bool{true, false} {
		c := dialWS(t, ts.wsURL("EIO=4&transport=websocket&sid="+sid))
		if probe {
			c.WriteMessage(websocket.TextMessage, []byte("2probe"))
			if s := readText(t, c); s != "3probe" {
				t.Fatalf("probe answer %q", s)
			}
		}
		if _, _, err := c.ReadMessage(); err == nil {
			t.Fatalf("probe %v: a message, want the connection dropped", probe)
		}
		testkit.Eventually(t, "the probe gone", 5*time.Second, func() bool {
			so := ts.lookup(sid)
			so.mu.Lock()
			defer so.mu.Unlock()
			return so.probe == nil
		})
		ts.lookup(sid).Send(Message{Data: []byte("meanwhile")})
		if r := do(t, "GET", url, ""); r.status != 200 || r.body != "4meanwhile" {
			t.Fatalf("probe %v: poll after the dropped upgrade: %d %q", probe, r.status, r.body)
		}
	}
}

// A polling client that never polls cannot keep its session with pongs
// sent blind: a pong counts only once the client has had the ping. The
// session lived on, and each ping interval queued one more ping for it,
// without end (pings do not count against QueueLen).
func TestBlindPongs(t *testing.T) {
	ts := startServer(t, fast()) // a ping every 300 ms, 200 ms to answer
	sid, url := ts.handshake(t)
	deadline := time.Now().Add(5 * time.Second)
	pace := time.NewTicker(400 * time.Millisecond) // after each ping, and in time
	defer pace.Stop()
	for ; ts.rec(sid).reason() == nil; <-pace.C {
		if time.Now().After(deadline) {
			so := ts.lookup(sid)
			so.mu.Lock()
			n := len(so.queue)
			so.mu.Unlock()
			t.Fatalf("the session lives on blind pongs, %d pings queued", n)
		}
		do(t, "POST", url, "3")
	}
}

func TestDuplicatePoll(t *testing.T) {
	ts := startServer(t, Options{PingInterval: 10 * time.Second, PingTimeout: 10 * time.Second})
	sid, url := ts.handshake(t)
	first := make(chan response, 1)
	go func() { first <- do(t, "GET", url, "") }()
	testkit.Eventually(t, "the poll to wait", 5*time.Second, func() bool {
		so := ts.lookup(sid)
		so.mu.Lock()
		defer so.mu.Unlock()
		return so.polling
	})
	if r := do(t, "GET", url, ""); r.status != 400 {
		t.Fatalf("second poll: %d %q", r.status, r.body)
	}
	if r := <-first; r.status != 200 || r.body != "1" {
		t.Fatalf("first poll: %d %q, want the close packet", r.status, r.body)
	}
	if r := do(t, "GET", url, ""); r.status != 400 {
		t.Fatalf("poll after: %d %q", r.status, r.body)
	}
}

func TestClientClose(t *testing.T) {
	ts := startServer(t, fast())
	// No poll waits: the next one gets the noop, then the session is gone.
	sid, url := ts.handshake(t)
	if r := do(t, "POST", url, "1"); r.status != 200 {
		t.Fatalf("post: %d", r.status)
	}
	if r := do(t, "GET", url, ""); r.status != 200 || r.body != "6" {
		t.Fatalf("poll after close: %d %q", r.status, r.body)
	}
	if r := do(t, "GET", url, ""); r.status != 400 {
		t.Fatalf("second poll after close: %d %q", r.status, r.body)
	}
	if !errors.Is(ts.rec(sid).reason(), ErrClientClose) {
		testkit.Eventually(t, "Closed", 5*time.Second, func() bool { return errors.Is(ts.rec(sid).reason(), ErrClientClose) })
	}
}

func TestHostileInput(t *testing.T) {
	o := fast()
	o.MaxPayload = 100
	ts := startServer(t, o)

	t.Run("invalid packet closes", func(t *testing.T) {
		sid, url := ts.handshake(t)
		if r := do(t, "POST", url, "abc"); r.status != 400 {
			t.Fatalf("post: %d", r.status)
		}
		if r := do(t, "GET", url, ""); r.status != 400 {
			t.Fatalf("poll: %d", r.status)
		}
		testkit.Eventually(t, "Closed", 5*time.Second, func() bool { return errors.Is(ts.rec(sid).reason(), ErrPacket) })
	})
	t.Run("oversized post is 413", func(t *testing.T) {
		sid, url := ts.handshake(t)
		if r := do(t, "POST", url, "4"+strings.Repeat("x", 100)); r.status != 413 {
			t.Fatalf("post: %d", r.status)
		}
		testkit.Eventually(t, "Closed", 5*time.Second, func() bool { return errors.Is(ts.rec(sid).reason(), ErrTooLarge) })
	})
	t.Run("oversized message closes the WebSocket with 1009", func(t *testing.T) {
		c := dialWS(t, ts.wsURL("EIO=4&transport=websocket"))
		var open struct{ Sid string }
		json.Unmarshal([]byte(strings.TrimPrefix(readText(t, c), "0")), &open)
		c.WriteMessage(websocket.TextMessage, []byte("4"+strings.Repeat("x", 100)))
		for {
			_, _, err := c.ReadMessage()
			if err != nil {
				if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
					t.Fatalf("read: %v, want close 1009", err)
				}
				break
			}
		}
		testkit.Eventually(t, "Closed with ErrTooLarge", 5*time.Second, func() bool { return errors.Is(ts.rec(open.Sid).reason(), ErrTooLarge) })
	})
	t.Run("invalid WebSocket packet closes", func(t *testing.T) {
		c := dialWS(t, ts.wsURL("EIO=4&transport=websocket"))
		readText(t, c)
		c.WriteMessage(websocket.TextMessage, []byte("abc"))
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				break
			}
		}
	})
}

func TestSessionLimits(t *testing.T) {
	o := fast()
	o.MaxSessions = 3
	o.MaxSessionsPerAddr = 2
	ts := startServer(t, o)
	ts.handshake(t)
	ts.handshake(t)
	if r := do(t, "GET", ts.url+"?EIO=4&transport=polling", ""); r.status != 429 {
		t.Fatalf("third polling session from one address: %d %q", r.status, r.body)
	}
	if r := do(t, "GET", ts.url+"?EIO=4&transport=polling", ""); r.status != 429 {
		t.Fatalf("fourth session from one address: %d %q", r.status, r.body)
	}
}

// WebSocket handshakes count per address as well: sessions exist before
// anyone is authenticated.
func TestSessionLimitsWebSocket(t *testing.T) {
	o := fast()
	o.MaxSessionsPerAddr = 2
	ts := startServer(t, o)
	first := dialWS(t, ts.wsURL("EIO=4&transport=websocket"))
	readText(t, first)
	dialWS(t, ts.wsURL("EIO=4&transport=websocket"))
	c, res, err := websocket.DefaultDialer.Dial(ts.wsURL("EIO=4&transport=websocket"), nil)
	if err == nil {
		c.Close()
		t.Fatal("third WebSocket session from one address was accepted")
	}
	if res == nil || res.StatusCode != 429 {
		t.Fatalf("third WebSocket session from one address: %v %v", res, err)
	}
	if r := do(t, "GET", ts.url+"?EIO=4&transport=polling", ""); r.status != 429 {
		t.Fatalf("polling session after two WebSockets: %d %q", r.status, r.body)
	}
	first.Close() // frees its place once the server has seen it go
	testkit.Eventually(t, "a place to free", 5*time.Second, func() bool {
		c, _, err := websocket.DefaultDialer.Dial(ts.wsURL("EIO=4&transport=websocket"), nil)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

func TestQueueFull(t *testing.T) {
	o := fast()
	o.QueueLen = 4
	ts := startServer(t, o)
	sid, url := ts.handshake(t)
	so := ts.lookup(sid)
	for i := range 4 {
		if err := so.Send(Message{Data: []byte("x")}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if err := so.Send(Message{Data: []byte("x")}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("fifth send: %v", err)
	}
	if err := so.Send(Message{Data: []byte("x")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after: %v", err)
	}
	if r := do(t, "GET", url, ""); r.status != 400 {
		t.Fatalf("poll: %d %q", r.status, r.body)
	}
}

func TestCORS(t *testing.T) {
	o := fast()
	o.AllowedOrigins = []string{"https://ok.example"}
	ts := startServer(t, o)
	req, _ := http.NewRequest("GET", ts.url+"?EIO=4&transport=polling", nil)
	req.Header.Set("Origin", "https://ok.example")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != "https://ok.example" || res.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("allowed origin: %d %v", res.StatusCode, res.Header)
	}
	if r := do(t, "GET", ts.url+"?EIO=4&transport=polling", "", "Origin", "https://evil.example"); r.status != 403 {
		t.Fatalf("other origin: %d %q", r.status, r.body)
	}
	if r := do(t, "OPTIONS", ts.url+"?EIO=4&transport=polling", "", "Origin", "https://ok.example"); r.status != 204 {
		t.Fatalf("preflight: %d", r.status)
	}
	if r := do(t, "GET", ts.url+"?EIO=4&transport=polling", "", "Origin", strings.TrimSuffix(ts.url, "/engine.io/")); r.status != 200 {
		t.Fatalf("own origin: %d %q", r.status, r.body)
	}
}

// "*" lets any page use the server, but never with credentials: the
// browser then sends no cookies cross-origin.
func TestCORSStar(t *testing.T) {
	o := fast()
	o.AllowedOrigins = []string{"*", "https://ok.example"}
	ts := startServer(t, o)
	for _, c := range []struct {
		origin string
		creds  string
	}{{"https://evil.example", ""}, {"https://ok.example", "true"}} {
		req, _ := http.NewRequest("GET", ts.url+"?EIO=4&transport=polling", nil)
		req.Header.Set("Origin", c.origin)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != c.origin || res.Header.Get("Access-Control-Allow-Credentials") != c.creds {
			t.Fatalf("%s: %d %v", c.origin, res.StatusCode, res.Header)
		}
	}
}

// Close ends every session, tells the clients, and returns once every
// goroutine of every session has ended.
func TestCloseEndsEverySession(t *testing.T) {
	ts := startServer(t, Options{PingInterval: time.Minute, PingTimeout: time.Minute})
	_, url := ts.handshake(t)
	pending := make(chan response, 1)
	go func() { pending <- do(t, "GET", url, "") }()
	c := dialWS(t, ts.wsURL("EIO=4&transport=websocket"))
	readText(t, c)
	_, url2 := ts.handshake(t)
	c2 := dialWS(t, ts.wsURL("EIO=4&transport=websocket&sid="+url2[strings.LastIndex(url2, "=")+1:]))
	c2.WriteMessage(websocket.TextMessage, []byte("2probe"))
	readText(t, c2)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, r := range ts.all() {
		if !errors.Is(r.reason(), ErrServerClose) {
			t.Errorf("a session ended with %v, want ErrServerClose", r.reason())
		}
	}
	if r := <-pending; r.status != 200 || r.body != "1" {
		t.Fatalf("waiting poll: %d %q", r.status, r.body)
	}
	if s := readText(t, c); s != "1" {
		t.Fatalf("WebSocket got %q, want the close packet", s)
	}
	if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("WebSocket: %v, want close 1001", err)
	}
	if r := do(t, "GET", ts.url+"?EIO=4&transport=polling", ""); r.status != 503 {
		t.Fatalf("handshake after Close: %d", r.status)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{
		{PingInterval: -1}, {PingTimeout: -1}, {MaxPayload: -1}, {QueueLen: -1}, {QueueBytes: -1}, {WriteWait: -1}, {AllowedOrigins: []string{" "}}, {Headers: []string{""}},
	} {
		if err := o.Validate(); !errors.Is(err, ErrOptions) {
			t.Errorf("Validate(%+v) = %v, want ErrOptions", o, err)
		}
		if _, err := NewServer(o, nil); !errors.Is(err, ErrOptions) {
			t.Errorf("NewServer(%+v) = %v, want ErrOptions", o, err)
		}
	}
	var o Options
	if err := o.setDefaults(); err != nil || o.PingInterval != 25*time.Second || o.MaxPayload != 1_000_000 || o.MaxSessions != 1000 {
		t.Fatalf("defaults %+v, %v", o, err)
	}
}

// A poll's write deadline does not outlive its response: the keep-alive
// connection's next request, long after it, is answered.
func TestWriteDeadlineDoesNotLinger(t *testing.T) {
	o := Options{PingInterval: time.Minute, PingTimeout: time.Minute, WriteWait: 200 * time.Millisecond}
	ts := startServer(t, o)
	_, url := ts.handshake(t) // its answer set a write deadline on the connection
	t0 := time.Now()
	testkit.Eventually(t, "the deadline to pass", 5*time.Second, func() bool { return time.Since(t0) > 2*o.WriteWait })
	if r := do(t, "POST", url, "4x"); r.status != 200 || r.body != "ok" {
		t.Fatalf("post on the reused connection: %d %q", r.status, r.body)
	}
	if r := do(t, "GET", url, ""); r.status != 200 || r.body != "4x" {
		t.Fatalf("poll: %d %q", r.status, r.body)
	}
}

// An idle WebSocket session costs one goroutine, its reader: its writer
// runs only while something is queued, its heartbeat is a timer. Sessions
// opened on a WebSocket and upgraded from long-polling alike.
func TestIdleWebSocketSessionGoroutines(t *testing.T) {
	ts := startServer(t, Options{PingInterval: time.Minute, PingTimeout: time.Minute})
	sid, _ := ts.handshake(t) // before counting: the HTTP client keeps its connection
	base := runtime.NumGoroutine()
	const n = 10
	for range n {
		c := dialWS(t, ts.wsURL("EIO=4&transport=websocket"))
		readText(t, c)
		c.WriteMessage(websocket.TextMessage, []byte("4x"))
		if s := readText(t, c); s != "4x" {
			t.Fatalf("echo %q", s)
		}
	}
	c := dialWS(t, ts.wsURL("EIO=4&transport=websocket&sid="+sid))
	c.WriteMessage(websocket.TextMessage, []byte("2probe"))
	if s := readText(t, c); s != "3probe" {
		t.Fatalf("probe answer %q", s)
	}
	c.WriteMessage(websocket.TextMessage, []byte("5"))
	c.WriteMessage(websocket.TextMessage, []byte("4y"))
	if s := readText(t, c); s != "4y" {
		t.Fatalf("echo after the upgrade %q", s)
	}
	testkit.Eventually(t, "one goroutine per idle session", 5*time.Second, func() bool {
		return runtime.NumGoroutine()-base <= n+1
	})
}

// A session keeps the handshake's query and the headers Options.Headers
// names (by default Authorization and Cookie, every value), not the
// others.
func TestHandshakeKeeps(t *testing.T) {
	for _, tc := range []struct {
		name    string
		headers []string
		want    http.Header
	}{
		{"default", nil, http.Header{"Authorization": {"Bearer x"}, "Cookie": {"a=1", "b=2"}}},
		{"named", []string{"x-client"}, http.Header{"X-Client": {"kiosk 3"}}},
		{"none", []string{}, nil},
	} {
		o := fast()
		o.Headers = tc.headers
		ts := startServer(t, o)
		req, _ := http.NewRequest("GET", ts.url+"?EIO=4&transport=polling&token=t%2B1&userId=7", nil)
		req.Header["Cookie"] = []string{"a=1", "b=2"}
		req.Header.Set("Authorization", "Bearer x")
		req.Header.Set("X-Client", "kiosk 3")
		req.Header.Set("User-Agent", "test")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		hs := ts.Server.lookup(parseOpen(t, string(b)).SID).Handshake()
		if hs.Query.Get("token") != "t+1" || hs.Query.Get("userId") != "7" || hs.Query.Get("EIO") != "4" {
			t.Errorf("%s: query %v", tc.name, hs.Query)
		}
		if !reflect.DeepEqual(hs.Header, tc.want) {
			t.Errorf("%s: header %v, want %v", tc.name, hs.Header, tc.want)
		}
		if hs.Addr != "127.0.0.1" || !hs.TrustedOrigin || hs.Time.IsZero() {
			t.Errorf("%s: %+v", tc.name, hs)
		}
	}
}

// The sessions' heartbeats share one timer: sessions that answer keep
// getting their pings, a silent one times out meanwhile, and a closed
// session leaves the heap.
func TestHeartbeatsShared(t *testing.T) {
	ts := startServer(t, Options{PingInterval: 20 * time.Millisecond, PingTimeout: time.Second})
	silent, _ := ts.handshake(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	pings := make([]int, 4)
	var conns []*websocket.Conn
	for i := range pings {
		c := dialWS(t, ts.wsURL("EIO=4&transport=websocket"))
		readText(t, c) // open
		conns = append(conns, c)
		wg.Add(1)
		go func() { // answers every ping until the connection ends
			defer wg.Done()
			for {
				if _, b, err := c.ReadMessage(); err != nil || string(b) != "2" {
					return
				}
				mu.Lock()
				pings[i]++
				mu.Unlock()
				c.WriteMessage(websocket.TextMessage, []byte("3"))
			}
		}()
	}
	testkit.Eventually(t, "the silent session to time out", 10*time.Second, func() bool { return ts.rec(silent).reason() != nil })
	if err := ts.rec(silent).reason(); !errors.Is(err, ErrPingTimeout) {
		t.Fatalf("closed with %v, want ErrPingTimeout", err)
	}
	testkit.Eventually(t, "3 pings on every answering session", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Min(pings) >= 3
	})
	for _, r := range ts.all()[1:] {
		if err := r.reason(); err != nil {
			t.Fatalf("an answering session closed: %v", err)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
	testkit.Eventually(t, "the heap to empty", 5*time.Second, func() bool {
		ts.beats.mu.Lock()
		defer ts.beats.mu.Unlock()
		return len(ts.beats.heap) == 0
	})
}

// What waits for a client that does not read is bounded in bytes too, not
// only in packets: a few large messages (a chat's history, 6 MB with
// escaped control characters) would otherwise hold gigabytes before
// QueueLen is reached. Past QueueBytes the session is closed, on either
// transport; a message larger than QueueBytes still goes when nothing
// waits before it.
func TestQueueBytes(t *testing.T) {
	big := Message{Data: bytes.Repeat([]byte("x"), 1<<20)} // shared: the test holds 1 MiB
	overflows := func(t *testing.T, so *Socket) {
		t.Helper()
		for i := range 100 {
			err := so.Send(big)
			if errors.Is(err, ErrQueueFull) {
				if i < 16 {
					t.Fatalf("full after %d MiB, want at least 16", i)
				}
				return
			}
			if err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		t.Fatal("100 MiB wait for a client that does not read, and the session is open")
	}
	// The client answers no ping: with fast()'s 0.5 s the heartbeat could
	// close the session before 16 MiB are queued on a loaded machine.
	noPings := Options{PingInterval: time.Minute, PingTimeout: time.Minute}
	ts := startServer(t, noPings)
	t.Run("polling", func(t *testing.T) {
		sid, url := ts.handshake(t)
		overflows(t, ts.lookup(sid))
		if r := do(t, "GET", url, ""); r.status != 400 {
			t.Fatalf("poll: %d %q", r.status, r.body)
		}
	})
	t.Run("websocket", func(t *testing.T) {
		c := dialWS(t, ts.wsURL("EIO=4&transport=websocket"))
		sid := parseOpen(t, readText(t, c)).SID
		overflows(t, ts.lookup(sid))
		testkit.Eventually(t, "the session closed", 10*time.Second, func() bool { return ts.rec(sid).reason() != nil })
	})
	t.Run("one large message", func(t *testing.T) {
		o := noPings
		o.QueueBytes = 1 << 10
		ts := startServer(t, o)
		sid, url := ts.handshake(t)
		so := ts.lookup(sid)
		if err := so.Send(Message{Data: bytes.Repeat([]byte("y"), 4<<10)}); err != nil {
			t.Fatalf("a message over QueueBytes with nothing waiting: %v", err)
		}
		if err := so.Send(Message{Data: []byte("z")}); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("one more: %v", err)
		}
		if r := do(t, "GET", url, ""); r.status != 200 && r.status != 400 {
			t.Fatalf("poll: %d", r.status)
		}
	})
}
