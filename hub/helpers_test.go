package hub

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/hub/wsconn"
	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/store"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// wait is how long a test waits for something that should happen at once.
const wait = 10 * time.Second

// testHub is a hub on a test server. It holds no testing.TB of its own:
// every helper takes the one it runs in, so that a subtest fails itself,
// never its parent from the wrong goroutine.
type testHub struct {
	*Hub
	srv  *httptest.Server
	url  string // ws://host
	tick chan time.Time
	now  *testkit.Clock
	stop func()
}

// limitless removes the per-address connection limit, which tests
// connecting many clients from 127.0.0.1 would hit.
func limitless(o *Options) { o.Conn.ConnectsPerMinute = -1 }

// newTestHub starts a hub on an httptest server; edit changes the options.
func newTestHub(t testing.TB, edits ...func(*Options)) *testHub {
	t.Helper()
	return startHub(t, false, edits...)
}

// newSmallBufHub is newTestHub with small kernel send buffers on the
// server's sockets, so that a client that stops reading stalls its writer
// after a few kilobytes rather than megabytes.
func newSmallBufHub(t testing.TB, edits ...func(*Options)) *testHub {
	t.Helper()
	return startHub(t, true, edits...)
}

type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(8 << 10)
	}
	return c, err
}

func startHub(t testing.TB, smallBuf bool, edits ...func(*Options)) *testHub {
	v, err := auth.NewVerifier(auth.VerifierOptions{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	th := &testHub{tick: make(chan time.Time), now: testkit.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))}
	o := Options{Verifier: v, tick: th.tick}
	for _, e := range edits {
		e(&o)
	}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	th.Hub = h
	mux := http.NewServeMux()
	mux.Handle("/ws", h.Handler())
	mux.Handle("/ws/", h.Handler())
	th.srv = httptest.NewUnstartedServer(mux)
	if smallBuf {
		th.srv.Listener = smallBufListener{th.srv.Listener}
	}
	th.srv.Start()
	th.url = "ws" + strings.TrimPrefix(th.srv.URL, "http")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	var once sync.Once
	th.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(wait):
				t.Error("Run did not return after its context ended")
			}
			th.srv.Close()
		})
	}
	t.Cleanup(th.stop)
	return th
}

func token(t testing.TB, user string) string {
	t.Helper()
	tok, err := auth.Mint(testSecret, user, time.Hour, auth.Claims{})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type tclient struct {
	t  testing.TB
	ws *websocket.Conn
}

// dial connects to path (with its query) without authenticating. The
// client belongs to t, the test (or subtest) it runs in: its helpers fail
// t, and it is closed when t ends.
func (th *testHub) dial(t testing.TB, path string, hdr http.Header) *tclient {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(th.url+path, hdr)
	if err != nil {
		if resp != nil {
			t.Fatalf("dial %s: %v (HTTP %d)", path, err, resp.StatusCode)
		}
		t.Fatalf("dial %s: %v", path, err)
	}
	c := &tclient{t: t, ws: ws}
	t.Cleanup(func() { ws.Close() })
	return c
}

// dialSlow connects with a small receive buffer: for clients that stop
// reading.
func (th *testHub) dialSlow(t testing.TB, path string) *tclient {
	t.Helper()
	d := *websocket.DefaultDialer
	d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetReadBuffer(4 << 10)
		}
		return c, err
	}
	ws, _, err := d.Dial(th.url+path, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { ws.Close() })
	return &tclient{t: t, ws: ws}
}

// dialStatus dials and returns the HTTP status of a refused upgrade.
func (th *testHub) dialStatus(t testing.TB, path string, hdr http.Header) int {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(th.url+path, hdr)
	if err == nil {
		ws.Close()
		return http.StatusSwitchingProtocols
	}
	if resp == nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	return resp.StatusCode
}

// login dials path and authenticates with the auth message.
func (th *testHub) login(t testing.TB, path, user string) *tclient {
	t.Helper()
	c := th.dial(t, path, nil)
	c.send(map[string]any{"type": "auth", "token": token(t, user)})
	m := c.read()
	if m["type"] != "auth_response" || m["success"] != true {
		t.Fatalf("auth: %v", m)
	}
	return c
}

func (c *tclient) send(v any) {
	c.t.Helper()
	if err := c.ws.WriteJSON(v); err != nil {
		c.t.Fatal(err)
	}
}

func (c *tclient) sendRaw(s string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next message, failing the test after wait.
func (c *tclient) read() map[string]any {
	c.t.Helper()
	m, err := c.next()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

func (c *tclient) next() (map[string]any, error) {
	c.ws.SetReadDeadline(time.Now().Add(wait))
	_, data, err := c.ws.ReadMessage()
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// readType reads until a message of type typ, failing on anything else
// than the types listed in skip.
func (c *tclient) readType(typ string, skip ...string) map[string]any {
	c.t.Helper()
	for {
		m := c.read()
		if m["type"] == typ {
			return m
		}
		ok := false
		for _, s := range skip {
			ok = ok || m["type"] == s
		}
		if !ok {
			c.t.Fatalf("want %s, got %v", typ, m)
		}
	}
}

// closeCode reads until the connection ends and returns the close code
// (1006 when it ended without a close frame) and reason.
func (c *tclient) closeCode() (int, string) {
	c.t.Helper()
	for {
		c.ws.SetReadDeadline(time.Now().Add(wait))
		_, _, err := c.ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Text
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatalf("connection still open after %v", wait)
		}
		return websocket.CloseAbnormalClosure, err.Error()
	}
}

// eventually waits for cond, failing after wait.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, what, wait, cond)
}

// seqOf returns a message's seq (0 when it has none).
func seqOf(m map[string]any) uint64 {
	f, _ := m["seq"].(float64)
	return uint64(f)
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func telemetry(seq uint64, dev int, vals ...float64) store.Record {
	r := store.Record{Seq: seq, Kind: store.KindTelemetry, DeviceID: dev, TS: t0.Add(time.Duration(seq) * time.Millisecond), ClockSynced: true}
	names := []string{"temperature", "humidity", "pressure"}
	units := []string{"°C", "%", "hPa"}
	for i, v := range vals {
		r.Metrics = append(r.Metrics, store.Metric{Name: names[i], Value: v, Unit: units[i]})
	}
	return r
}

func alert(seq uint64, dev int, severity, rule string) store.Record {
	return store.Record{Seq: seq, Kind: store.KindAlert, DeviceID: dev, TS: t0.Add(time.Duration(seq) * time.Millisecond), ClockSynced: true,
		Alert: &store.Alert{ID: seq, Rule: rule, Severity: severity, Title: "High Temperature Alert",
			Message: "Temperature exceeds safe threshold", State: store.AlertActive, Threshold: 30, Actual: 32.5, Metric: "temperature"}}
}

func status(seq uint64, dev int, old, new string) store.Record {
	return store.Record{Seq: seq, Kind: store.KindDeviceStatus, DeviceID: dev, TS: t0.Add(time.Duration(seq) * time.Millisecond), ClockSynced: true,
		Status: &store.DeviceStatus{Old: old, New: new, Reason: "Connection lost", LastSeen: t0}}
}

// ensure the core's options type is what the hub embeds.
var _ wsconn.Options = Options{}.Conn
