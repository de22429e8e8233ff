package wsconn

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/floorhub/floorhub/internal/testkit"
)

// echo is a session that answers every message with itself and
// authenticates on "login:<user>".
type echo struct {
	c      *Conn
	closed chan struct{}
}

func (e *echo) Message(data []byte) {
	if string(data) == "sizes" {
		// Frames of every length encoding, batched into one write.
		for _, n := range []int{0, 125, 126, 65535, 65536, 200000} {
			e.c.Send(Message{Data: []byte(strings.Repeat("s", n))})
		}
		return
	}
	if u, ok := strings.CutPrefix(string(data), "login:"); ok {
		if err := e.c.SetUser(u); err != nil {
			e.c.SendWait(context.Background(), Message{Data: []byte("refused: " + err.Error())})
			e.c.Close(ClosePolicy, err.Error())
			return
		}
	}
	e.c.SendWait(context.Background(), Message{Data: append([]byte(nil), data...)})
}
func (e *echo) Limited() { e.c.Send(Message{Data: []byte("limited")}) }
func (e *echo) Closed()  { close(e.closed) }

func start(t *testing.T, o Options) (*Server, string, chan *echo) {
	t.Helper()
	s, err := NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	sessions := make(chan *echo, 100)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Serve(w, r, func(c *Conn) Session {
			e := &echo{c: c, closed: make(chan struct{})}
			sessions <- e
			return e
		})
	}))
	t.Cleanup(func() {
		s.Shutdown(context.Background())
		hs.Close()
	})
	return s, "ws" + strings.TrimPrefix(hs.URL, "http"), sessions
}

func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

func readText(t *testing.T, ws *websocket.Conn) string {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func closeOf(t *testing.T, ws *websocket.Conn) (int, string) {
	t.Helper()
	for {
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Text
		}
		return websocket.CloseAbnormalClosure, err.Error()
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, c := range []struct {
		o     Options
		field string
	}{
		{Options{PongWait: -1}, "PongWait"}, {Options{MaxMessageBytes: -1}, "MaxMessageBytes"},
		{Options{QueueLen: -2}, "QueueLen"}, {Options{QueueBytes: -1}, "QueueBytes"}, {Options{AllowedOrigins: []string{" "}}, "AllowedOrigins"},
		{Options{WriteWait: -1}, "WriteWait"}, {Options{ReadBufferSize: -1}, "ReadBufferSize"},
	} {
		// NewServer refuses with exactly Validate's error, naming the field.
		verr := c.o.Validate()
		_, err := NewServer(c.o)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, ErrOptions) || verr == nil || verr.Error() != err.Error() ||
			!strings.HasPrefix(err.Error(), "wsconn: ") {
			t.Errorf("%+v: %v; Validate: %v; want a *FieldError on %s from both", c.o, err, verr, c.field)
		}
	}
}

// A peer that stops answering pings is dropped after the pong wait. (The
// wait is a second: with 100 ms, a client descheduled that long on a
// loaded machine was dropped although it answered, 1 in 60 runs.)
func TestPongDeadline(t *testing.T) {
	s, url, _ := start(t, Options{PingInterval: 50 * time.Millisecond, PongWait: time.Second, ConnectsPerMinute: -1})
	ws := dial(t, url)
	ws.WriteMessage(websocket.TextMessage, []byte("login:a"))
	readText(t, ws)
	// Answering pings (gorilla's default handler, while reading): kept.
	pings := 0
	ws.SetPingHandler(func(d string) error {
		pings++
		if pings > 5 {
			return nil // stop answering
		}
		return ws.WriteControl(websocket.PongMessage, []byte(d), time.Now().Add(time.Second))
	})
	code, _ := closeOf(t, ws)
	if code != websocket.CloseAbnormalClosure {
		t.Fatalf("close %d, want the connection dropped", code)
	}
	if pings <= 5 {
		t.Fatalf("dropped after %d pings although it answered", pings)
	}
	waitFor(t, "the connection to be forgotten", func() bool { return s.Len() == 0 })
}

func TestPerUserAndRate(t *testing.T) {
	_, url, _ := start(t, Options{MaxConnsPerUser: 1, MessagesPerSecond: 10, ConnectsPerMinute: -1,
		Now: func() time.Time { return time.Unix(0, 0) }}) // frozen clock: no refill
	a := dial(t, url)
	a.WriteMessage(websocket.TextMessage, []byte("login:u"))
	readText(t, a)
	b := dial(t, url)
	b.WriteMessage(websocket.TextMessage, []byte("login:u"))
	if got := readText(t, b); !strings.Contains(got, "too many connections") {
		t.Fatalf("second connection of u: %q", got)
	}
	if code, _ := closeOf(t, b); code != ClosePolicy {
		t.Fatalf("close %d", code)
	}
	// 9 more messages fit the burst of 10 (the login took one); then
	// "limited" once per burst, then 1008 after RateGrace refusals.
	for i := 0; i < 30; i++ {
		a.WriteMessage(websocket.TextMessage, []byte("m"))
	}
	echoes, limited := 0, 0
	for {
		a.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, b, err := a.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != ClosePolicy {
				t.Fatalf("ended with %v, want 1008", err)
			}
			break
		}
		if string(b) == "limited" {
			limited++
		} else {
			echoes++
		}
	}
	if echoes != 9 || limited == 0 {
		t.Fatalf("%d echoes, %d limited", echoes, limited)
	}
}

// A negative MessagesPerSecond turns the rate limit off.
func TestNoRateLimit(t *testing.T) {
	_, url, _ := start(t, Options{MessagesPerSecond: -1, Now: func() time.Time { return time.Unix(0, 0) }})
	a := dial(t, url)
	const n = 500
	for i := 0; i < n; i++ {
		a.WriteMessage(websocket.TextMessage, []byte("m"))
	}
	for i := 0; i < n; i++ {
		if got := readText(t, a); got != "m" {
			t.Fatalf("message %d: %q", i, got)
		}
	}
}

func TestShutdownClosesEveryone(t *testing.T) {
	s, url, sessions := start(t, Options{ConnectsPerMinute: -1})
	var wss []*websocket.Conn
	for range 10 {
		ws := dial(t, url)
		ws.WriteMessage(websocket.TextMessage, []byte("hi"))
		readText(t, ws)
		wss = append(wss, ws)
	}
	done := make(chan struct{})
	go func() {
		s.Shutdown(context.Background())
		close(done)
	}()
	for _, ws := range wss {
		if code, _ := closeOf(t, ws); code != CloseGoingAway {
			t.Fatalf("close %d, want 1001", code)
		}
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	for range 10 {
		e := <-sessions
		select {
		case <-e.closed:
		default:
			t.Fatal("Shutdown returned before a session's Closed")
		}
	}
}

// Shutdown is bounded even when a client never answers the close frame.
func TestShutdownBounded(t *testing.T) {
	s, url, _ := start(t, Options{ConnectsPerMinute: -1, ShutdownWait: 200 * time.Millisecond, CloseGrace: time.Hour})
	ws := dial(t, url) // never reads: never answers the close
	_ = ws
	waitFor(t, "the connection", func() bool { return s.Len() == 1 })
	start := time.Now()
	s.Shutdown(context.Background())
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	poll := time.NewTicker(2 * time.Millisecond)
	defer poll.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-poll.C:
		}
	}
}

type sum struct{ n int }

func (s sum) MergeOlder(older, newer Message) Message {
	newer.Data = append(append([]byte(nil), older.Data...), newer.Data...)
	return newer
}

func (s sum) Encode() []byte { return nil }

// serverWith is a Server with exactly o, for tests of the queue alone.
func serverWith(o Options) *Server {
	s := &Server{}
	s.o.Store(&o)
	return s
}

// The queue without a writer: coalescing keeps production order and never
// overflows; other messages overflow (here at QueueMax = QueueLen) and close
// with 1013.
func TestQueue(t *testing.T) {
	c := &Conn{s: serverWith(Options{QueueLen: 4, QueueMax: 4, CoalesceAfter: 2}), finished: true}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Send(Message{Data: []byte("a1"), Key: 1, Seq: 1}))
	must(c.Send(Message{Data: []byte("a2"), Key: 1, Seq: 2})) // only 1 waiting: no coalescing yet
	must(c.Send(Message{Data: []byte("x"), Seq: 3}))
	must(c.Send(Message{Data: []byte("a3"), Key: 1, Seq: 4, Merge: sum{}})) // replaces a2, merged, to the tail
	must(c.Send(Message{Data: []byte("b1"), Key: 2, Seq: 5}))
	if c.live != 4 {
		t.Fatalf("live %d", c.live)
	}
	must(c.Send(Message{Data: []byte("b2"), Key: 2, Seq: 6})) // full, but replaces
	if err := c.Send(Message{Data: []byte("y"), Seq: 7}); !errors.Is(err, ErrOverflow) {
		t.Fatalf("overflow: %v", err)
	}
	if !c.closing || c.closeCode != CloseSlowConsumer || c.live != 0 {
		t.Fatalf("after overflow: closing %v code %d live %d", c.closing, c.closeCode, c.live)
	}
	if err := c.Send(Message{Data: []byte("z")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
	if st := c.s.Stats(); st.Coalesced != 2 || st.Overflows != 1 {
		t.Fatalf("stats after two replacements and an overflow: %+v", st)
	}

	c = &Conn{s: serverWith(Options{QueueLen: 100, QueueMax: 400, CoalesceAfter: 2}), finished: true}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	must(c.Send(Message{Data: []byte("a1"), Key: 1, Seq: 1}))
	must(c.Send(Message{Data: []byte("x"), Seq: 2}))
	must(c.Send(Message{Data: []byte("a2"), Key: 1, Seq: 3, Merge: sum{}}))
	must(c.Send(Message{Data: []byte("a3"), Key: 1, Seq: 4, Merge: sum{}}))
	var got []string
	for {
		m, ok := c.pop()
		if !ok {
			break
		}
		got = append(got, string(m.Data))
	}
	if strings.Join(got, " ") != "x a1a2a3" {
		t.Fatalf("queue order %q", got)
	}
	// Many replacements compact the backing array.
	for i := range 10000 {
		must(c.Send(Message{Data: []byte("x"), Seq: uint64(i)}))
		must(c.Send(Message{Data: []byte("k"), Key: 9}))
		if _, ok := c.pop(); !ok {
			t.Fatal("empty")
		}
	}
	if len(c.q) > 1000 {
		t.Fatalf("backing array grew to %d", len(c.q))
	}
	// So do replacements while nothing is written (a writer stuck in a
	// write to a peer that stopped reading).
	for i := range 10000 {
		must(c.Send(Message{Data: []byte("k"), Key: uint64(10 + i%3)}))
	}
	if len(c.q) > 1000 || c.live > 10 {
		t.Fatalf("backing array grew to %d (%d live)", len(c.q), c.live)
	}
}

// QueueBytes bounds the bytes waiting, whatever the count: what is
// written, replaced or dropped leaves the count, a message alone may be
// larger than the bound, and the one that would pass it closes with 1013.
func TestQueueBytes(t *testing.T) {
	c := &Conn{s: serverWith(Options{QueueLen: 100, QueueMax: 400, CoalesceAfter: 1, QueueBytes: 10}), finished: true}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	for _, step := range []struct {
		send   string
		key    uint64
		pop    bool
		queued int64
	}{
		{send: "0123456789ab", queued: 12}, // alone: over the bound, and queued
		{pop: true, queued: 0},
		{send: "abcd", key: 1, queued: 4},
		{send: "efgh", key: 1, queued: 4}, // replaces abcd
		{send: "ijklmn", queued: 10},      // exactly the bound
		{pop: true, queued: 6},
	} {
		if step.pop {
			if _, ok := c.pop(); !ok {
				t.Fatal("empty")
			}
		} else if err := c.Send(Message{Data: []byte(step.send), Key: step.key}); err != nil {
			t.Fatalf("send %q: %v", step.send, err)
		}
		if c.queued != step.queued {
			t.Fatalf("after %+v: %d bytes queued, want %d", step, c.queued, step.queued)
		}
	}
	if err := c.Send(Message{Data: []byte("opqrs")}); !errors.Is(err, ErrOverflow) {
		t.Fatalf("past QueueBytes: %v", err)
	}
	if !c.closing || c.closeCode != CloseSlowConsumer || c.queued != 0 {
		t.Fatalf("after overflow: closing %v code %d, %d bytes queued", c.closing, c.closeCode, c.queued)
	}
}

func TestFrameLengths(t *testing.T) {
	_, url, _ := start(t, Options{ConnectsPerMinute: -1, QueueLen: 10})
	ws := dial(t, url)
	ws.WriteMessage(websocket.TextMessage, []byte("sizes"))
	for _, n := range []int{0, 125, 126, 65535, 65536, 200000} {
		if got := readText(t, ws); got != strings.Repeat("s", n) {
			t.Fatalf("frame of %d bytes read back as %d bytes", n, len(got))
		}
	}
}

// SetOptions changes the limits of a running server: a lower MaxConns
// refuses the next connection and keeps the open one, which goes on
// echoing; Stats counts both.
func TestSetOptions(t *testing.T) {
	s, url, _ := start(t, Options{ConnectsPerMinute: -1})
	a := dial(t, url)
	a.WriteMessage(websocket.TextMessage, []byte("one"))
	if got := readText(t, a); got != "one" {
		t.Fatalf("echo %q", got)
	}
	if err := s.SetOptions(Options{PingInterval: -1}); err == nil {
		t.Fatal("SetOptions turned pings off while the server runs")
	}
	if err := s.SetOptions(Options{PongWait: -1}); err == nil {
		t.Fatal("SetOptions accepted a negative PongWait")
	}
	if err := s.SetOptions(Options{MaxConns: 1, ConnectsPerMinute: -1}); err != nil {
		t.Fatal(err)
	}
	if o := s.Options(); o.MaxConns != 1 || o.QueueLen != 256 || o.Logger == nil {
		t.Fatalf("options after SetOptions: MaxConns %d QueueLen %d", o.MaxConns, o.QueueLen)
	}
	_, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second connection over MaxConns 1: %v %v", resp, err)
	}
	a.WriteMessage(websocket.TextMessage, []byte("two"))
	if got := readText(t, a); got != "two" {
		t.Fatalf("echo after SetOptions %q", got)
	}
	// The writer counts a message once its write returned, which may be
	// after the client read it.
	testkit.Eventually(t, "both echoes counted as sent", 10*time.Second, func() bool { return s.Stats().Sent == 2 })
	if st := s.Stats(); st.Open != 1 || st.Accepted != 1 || st.Refused != 1 || st.Sent != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCheckOrigin(t *testing.T) {
	for _, c := range []struct {
		origin    string
		allowed   []string
		ok, named bool
	}{
		{"", nil, true, true},
		{"http://gw.local:8000", nil, true, true}, // the request's own host
		{"http://evil.example", nil, false, false},
		{"http://evil.example", []string{"*"}, true, false},
		{"http://scada.example", []string{"*", "scada.example"}, true, true},
		{"http://scada.example", []string{"http://SCADA.example"}, true, true},
		{"not a url", []string{"*"}, false, false},
	} {
		r := httptest.NewRequest("GET", "http://gw.local:8000/ws", nil)
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		if ok, named := CheckOrigin(r, c.allowed); ok != c.ok || named != c.named {
			t.Errorf("CheckOrigin(%q, %q) = %v, %v; want %v, %v", c.origin, c.allowed, ok, named, c.ok, c.named)
		}
	}
}
