package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floorhub/floorhub/hub/engineio"
	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/gorilla/websocket"
)

// events collects what the server's handlers saw, for the test to wait on.
type events struct {
	mu  sync.Mutex
	got []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	e.got = append(e.got, s)
	e.mu.Unlock()
}

func (e *events) has(s string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, g := range e.got {
		if g == s {
			return true
		}
	}
	return false
}

func startServer(t *testing.T, o Options, setup func(*Server)) (ws string) {
	t.Helper()
	if o.Engine.PingInterval == 0 {
		o.Engine.PingInterval, o.Engine.PingTimeout = time.Minute, time.Minute
	}
	s, err := NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	setup(s)
	l, addr := testkit.ListenAddr(t)
	hs := &http.Server{Handler: s}
	go hs.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		hs.Close()
	})
	return "ws://" + addr + "/socket.io/?EIO=4&transport=websocket"
}

type peer struct {
	t *testing.T
	c *websocket.Conn
}

func dial(t *testing.T, url string) *peer {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	cl := &peer{t, c}
	if s := cl.read(); !strings.HasPrefix(s, "0{") {
		t.Fatalf("open packet %q", s)
	}
	return cl
}

func (c *peer) send(s string) {
	c.t.Helper()
	if err := c.c.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *peer) sendBinary(b []byte) {
	c.t.Helper()
	if err := c.c.WriteMessage(websocket.BinaryMessage, b); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next text message, pings excepted (as "b:..." for a
// binary one).
func (c *peer) read() string {
	c.t.Helper()
	for {
		mt, b, err := c.c.ReadMessage()
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if mt == websocket.BinaryMessage {
			return "b:" + string(b)
		}
		if string(b) != "2" {
			return string(b)
		}
		c.send("3")
	}
}

// closed waits for the server to end the connection.
func (c *peer) closed() {
	c.t.Helper()
	for {
		if _, _, err := c.c.ReadMessage(); err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				c.t.Fatal("the server did not close the connection")
			}
			return
		}
	}
}

// suite is the reference setup of the protocol suite.
func suite(s *Server) {
	ns := func(so *Socket, auth json.RawMessage) error {
		so.On("message", func(args []any, _ func(...any) error) { so.Emit("message-back", args...) })
		so.On("message-with-ack", func(args []any, ack func(...any) error) { ack(args...) })
		return so.Emit("auth", auth)
	}
	s.Namespace("/", ns)
	s.Namespace("/custom", ns)
}

func TestConnect(t *testing.T) {
	url := startServer(t, Options{}, suite)
	for _, tc := range []struct{ send, prefix, auth string }{
		{"40", "40", `42["auth",{}]`},
		{`40{"token":"123"}`, "40", `42["auth",{"token":"123"}]`},
		{"40/custom,", "40/custom,", `42/custom,["auth",{}]`},
		{"40/custom", "40/custom,", `42/custom,["auth",{}]`},
		{`40/custom,{"token":"abc"}`, "40/custom,", `42/custom,["auth",{"token":"abc"}]`},
	} {
		c := dial(t, url)
		c.send(tc.send)
		got := c.read()
		var hs map[string]string
		if !strings.HasPrefix(got, tc.prefix) || json.Unmarshal([]byte(got[len(tc.prefix):]), &hs) != nil || len(hs) != 1 || len(hs["sid"]) != 20 {
			t.Fatalf("%s: answer %q", tc.send, got)
		}
		if got := c.read(); got != tc.auth {
			t.Fatalf("%s: auth event %q, want %q", tc.send, got, tc.auth)
		}
	}
	c := dial(t, url)
	c.send("40/random")
	if got := c.read(); got != `44/random,{"message":"Invalid namespace"}` {
		t.Fatalf("unknown namespace: %q", got)
	}
}

func TestRefusedConnect(t *testing.T) {
	url := startServer(t, Options{}, func(s *Server) {
		s.Namespace("/", func(so *Socket, auth json.RawMessage) error {
			so.Emit("never")
			return &Refusal{Message: "no token", Data: map[string]any{"code": 401}}
		})
		s.Namespace("/plain", func(*Socket, json.RawMessage) error { return errors.New("go away") })
	})
	c := dial(t, url)
	c.send("40")
	if got := c.read(); got != `44{"data":{"code":401},"message":"no token"}` {
		t.Fatalf("refusal %q", got)
	}
	c.send("40/plain,")
	if got := c.read(); got != `44/plain,{"message":"go away"}` {
		t.Fatalf("refusal %q", got)
	}
}

func TestEventsAndAcks(t *testing.T) {
	var ev events
	acked := make(chan []any, 1)
	url := startServer(t, Options{}, func(s *Server) {
		suite(s)
		s.Namespace("/", func(so *Socket, auth json.RawMessage) error {
			so.On("message", func(args []any, _ func(...any) error) { so.Emit("message-back", args...) })
			so.On("message-with-ack", func(args []any, ack func(...any) error) {
				if err := ack(args...); err != nil {
					t.Errorf("ack: %v", err)
				}
				if err := ack("again"); err == nil {
					t.Errorf("a second ack was sent")
				}
			})
			so.On("ask", func([]any, func(...any) error) {
				so.EmitWithAck("question", func(args []any, err error) {
					if err != nil {
						t.Errorf("ack error: %v", err)
					}
					acked <- args
				}, []byte{9}, "q")
			})
			so.OnDisconnect(func(reason error) { ev.add("disconnect: " + reason.Error()) })
			return nil
		})
	})
	c := dial(t, url)
	c.send("40")
	c.read()
	for _, tc := range []struct {
		send []string
		want []string
	}{
		{[]string{`42["message",1,"2",{"3":[true]}]`}, []string{`42["message-back",1,"2",{"3":[true]}]`}},
		{[]string{`42456["message-with-ack",1,"2",{"3":[false]}]`}, []string{`43456[1,"2",{"3":[false]}]`}},
		{[]string{`452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, "b:\x01\x02\x03", "b:\x04\x05\x06"},
			[]string{`452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, "b:\x01\x02\x03", "b:\x04\x05\x06"}},
		{[]string{`452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, "b:\x01\x02\x03", "b:\x04\x05\x06"},
			[]string{`462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, "b:\x01\x02\x03", "b:\x04\x05\x06"}},
		{[]string{`42["ask"]`}, []string{`451-0["question",{"_placeholder":true,"num":0},"q"]`, "b:\x09"}},
		{[]string{`42["unhandled"]`, `42["message","after"]`}, []string{`42["message-back","after"]`}},
	} {
		for _, s := range tc.send {
			if b, ok := strings.CutPrefix(s, "b:"); ok {
				c.sendBinary([]byte(b))
			} else {
				c.send(s)
			}
		}
		for _, w := range tc.want {
			if got := c.read(); got != w {
				t.Fatalf("after %q: got %q, want %q", tc.send, got, w)
			}
		}
	}
	c.send(`430["yes",1]`)
	if got := <-acked; !reflect.DeepEqual(got, []any{"yes", json.Number("1")}) {
		t.Fatalf("ack args %#v", got)
	}
	c.send("41")
	testkit.Eventually(t, "OnDisconnect", 5*time.Second, func() bool { return ev.has("disconnect: " + errClientDisconnect.Error()) })
	// The session stays: the client may connect again.
	c.send("40")
	if got := c.read(); !strings.HasPrefix(got, "40{") {
		t.Fatalf("reconnect: %q", got)
	}
}

func TestMalformedCloses(t *testing.T) {
	url := startServer(t, Options{MaxAttachments: 2}, suite)
	for _, tc := range []struct {
		name string
		send []string
	}{
		{"invalid handshake", []string{"4abc"}},
		{"event before connect", []string{`42["message"]`}},
		{"unknown packet type", []string{"40", "4abc"}},
		{"invalid payload", []string{"40", "42{}"}},
		{"invalid ack id", []string{"40", `42abc["message-with-ack",1]`}},
		{"reserved event", []string{"40", `42["disconnect"]`}},
		{"connect twice", []string{"40", "40"}},
		{"connect error from the peer", []string{"40", `44{"message":"x"}`}},
		{"too many attachments", []string{"40", `453-["message",1]`}},
		{"binary without a packet", []string{"40", "b:x"}},
		{"text while attachments are due", []string{"40", `452-["message",{"_placeholder":true,"num":0}]`, "b:x", `42["message"]`}},
		{"placeholder out of range", []string{"40", `451-["message",{"_placeholder":true,"num":3}]`, "b:x"}},
		{"event for an unconnected namespace", []string{"40", `42/custom,["message"]`}},
		{"disconnect from an unconnected namespace", []string{"41/custom,"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, url)
			for _, s := range tc.send {
				if b, ok := strings.CutPrefix(s, "b:"); ok {
					c.sendBinary([]byte(b))
				} else {
					c.send(s)
				}
			}
			c.closed()
		})
	}
}

// A session that connects no namespace within ConnectTimeout is closed;
// one that did stays. (The timeout leaves the connected one ample time to
// connect on a loaded machine.)
func TestConnectTimeout(t *testing.T) {
	url := startServer(t, Options{ConnectTimeout: 500 * time.Millisecond}, suite)
	in := dial(t, url)
	in.send("40")
	if got := in.read(); !strings.HasPrefix(got, "40{") {
		t.Fatalf("connect: %q", got)
	}
	in.read() // the auth event
	c := dial(t, url)
	c.closed() // the timeout has passed for in too
	in.send(`42["message","still here"]`)
	if got := in.read(); got != `42["message-back","still here"]` {
		t.Fatalf("the connected session: %q", got)
	}
}

// A session whose last namespace was left (the client's DISCONNECT, or
// the server's: a token that expired) has ConnectTimeout to connect one
// again, as a new session has, or it is closed: it had no expiry, and a
// client with one token could hold as many sessions as the limits on
// sessions allow (connect, leave, connect on the next), for as long as it
// answered pings. One that connects again in time stays.
func TestLeftSessionTimeout(t *testing.T) {
	url := startServer(t, Options{ConnectTimeout: 500 * time.Millisecond}, func(s *Server) {
		s.Namespace("/", func(so *Socket, _ json.RawMessage) error {
			so.On("leave", func([]any, func(...any) error) { so.Disconnect() })
			so.On("message", func(args []any, _ func(...any) error) { so.Emit("message-back", args...) })
			return nil
		})
	})
	for _, leave := range []string{"41", `42["leave"]`} {
		c := dial(t, url)
		c.send("40")
		if got := c.read(); !strings.HasPrefix(got, "40{") {
			t.Fatalf("connect: %q", got)
		}
		c.send(leave)
		c.closed()
	}
	again := dial(t, url)
	again.send("40")
	again.read()
	again.send("41")
	again.send("40")
	if got := again.read(); !strings.HasPrefix(got, "40{") {
		t.Fatalf("connect again: %q", got)
	}
	c := dial(t, url)
	c.closed() // the timeout has passed for again too
	again.send(`42["message","still here"]`)
	if got := again.read(); got != `42["message-back","still here"]` {
		t.Fatalf("the session connected again: %q", got)
	}
}

// A socket that leaves fails the acks it waits for.
func TestPendingAcksFailOnDisconnect(t *testing.T) {
	errc := make(chan error, 1)
	url := startServer(t, Options{}, func(s *Server) {
		s.Namespace("/", func(so *Socket, _ json.RawMessage) error {
			so.On("go", func([]any, func(...any) error) {
				so.EmitWithAck("q", func(_ []any, err error) { errc <- err })
			})
			return nil
		})
	})
	c := dial(t, url)
	c.send("40")
	c.read()
	c.send(`42["go"]`)
	if got := c.read(); got != `420["q"]` {
		t.Fatalf("got %q", got)
	}
	c.send("1") // Engine.IO close
	if err := <-errc; !errors.Is(err, ErrDisconnected) {
		t.Fatalf("ack error %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{{ConnectTimeout: -1}, {MaxAttachments: -1}, {MaxPendingAcks: -1}, {Engine: engineio.Options{PingInterval: -1}}} {
		if _, err := NewServer(o); err == nil {
			t.Errorf("NewServer(%+v) accepted", o)
		}
	}
}

// The server's Disconnect tells the client and ends the socket; the
// session stays for other namespaces.
func TestServerDisconnect(t *testing.T) {
	var ev events
	url := startServer(t, Options{}, func(s *Server) {
		s.Namespace("/custom", func(so *Socket, _ json.RawMessage) error {
			so.OnDisconnect(func(reason error) { ev.add(reason.Error()) })
			so.On("leave", func([]any, func(...any) error) { so.Disconnect() })
			return nil
		})
		s.Namespace("/", func(so *Socket, _ json.RawMessage) error {
			so.On("message", func(args []any, _ func(...any) error) { so.Emit("message-back", args...) })
			return nil
		})
	})
	c := dial(t, url)
	c.send("40/custom,")
	c.read()
	c.send(`42/custom,["leave"]`)
	if got := c.read(); got != "41/custom," {
		t.Fatalf("got %q, want the DISCONNECT", got)
	}
	testkit.Eventually(t, "OnDisconnect", 5*time.Second, func() bool { return ev.has(errServerDisconnect.Error()) })
	c.send("40")
	c.read()
	c.send(`42["message",1]`)
	if got := c.read(); got != `42["message-back",1]` {
		t.Fatalf("main namespace after: %q", got)
	}
}

// A socket disconnected before its CONNECT answer is out (by the
// ConnectFunc here; in the chat, by a sweep that found it registered)
// answers CONNECT then DISCONNECT, leaves once, and frees its namespace
// for the client's next CONNECT.
func TestDisconnectWhileConnecting(t *testing.T) {
	var ev events
	var calls atomic.Int32
	url := startServer(t, Options{}, func(s *Server) {
		s.Namespace("/custom", func(so *Socket, _ json.RawMessage) error {
			if calls.Add(1) == 1 {
				so.OnDisconnect(func(reason error) { ev.add(reason.Error()) })
				so.Emit("early")
				so.Disconnect()
				return nil
			}
			so.On("ping", func(_ []any, ack func(...any) error) { ack("pong") })
			return nil
		})
	})
	c := dial(t, url)
	c.send("40/custom,")
	if got := c.read(); !strings.HasPrefix(got, "40/custom,{") {
		t.Fatalf("got %q, want the CONNECT answer", got)
	}
	if got := c.read(); got != "41/custom," {
		t.Fatalf("got %q, want the DISCONNECT (and not the early event)", got)
	}
	testkit.Eventually(t, "OnDisconnect", 5*time.Second, func() bool { return ev.has(errServerDisconnect.Error()) })
	c.send("40/custom,")
	if got := c.read(); !strings.HasPrefix(got, "40/custom,{") {
		t.Fatalf("second CONNECT: %q", got)
	}
	c.send(`42/custom,7["ping"]`)
	if got := c.read(); got != `43/custom,7["pong"]` {
		t.Fatalf("second socket: %q", got)
	}
}

// A Disconnect from another goroutine (the chat's expiry sweep) racing a
// CONNECT's answer: whichever comes first, the client gets the answer and
// then the DISCONNECT, the socket leaves once, and the namespace takes the
// next CONNECT.
func TestDisconnectRacesConnect(t *testing.T) {
	const rounds = 200
	var left atomic.Int32
	given := make(chan *Socket)
	stop, done := make(chan struct{}), make(chan struct{})
	url := startServer(t, Options{}, func(s *Server) {
		s.Namespace("/custom", func(so *Socket, _ json.RawMessage) error {
			so.OnDisconnect(func(error) { left.Add(1) })
			select {
			case given <- so:
			case <-stop:
			}
			return nil
		})
	})
	defer func() { close(stop); <-done }()
	go func() {
		defer close(done)
		for {
			select {
			case so := <-given:
				so.Disconnect()
			case <-stop:
				return
			}
		}
	}()
	c := dial(t, url)
	for i := range rounds {
		c.send("40/custom,")
		if got := c.read(); !strings.HasPrefix(got, "40/custom,{") {
			t.Fatalf("round %d: got %q, want the CONNECT answer", i, got)
		}
		if got := c.read(); got != "41/custom," {
			t.Fatalf("round %d: got %q, want the DISCONNECT", i, got)
		}
	}
	testkit.Eventually(t, "every socket left", 5*time.Second, func() bool { return left.Load() == rounds })
	if n := left.Load(); n != rounds {
		t.Fatalf("%d sockets left, want %d", n, rounds)
	}
}

// A frame encoded once reaches every socket of its namespace as Emit would
// have sent it, binary attachments included; another namespace refuses it.
func TestEmitFrame(t *testing.T) {
	sockets := make(chan *Socket, 3)
	url := startServer(t, Options{}, func(s *Server) {
		ns := func(so *Socket, _ json.RawMessage) error { sockets <- so; return nil }
		s.Namespace("/", ns)
		s.Namespace("/custom", ns)
	})
	var peers []*peer
	for _, connect := range []string{"40", "40", "40/custom,"} {
		c := dial(t, url)
		c.send(connect)
		c.read()
		peers = append(peers, c)
	}
	f, err := NewFrame("/", "news", map[string]any{"n": 1}, []byte{7})
	if err != nil {
		t.Fatal(err)
	}
	var sent, refused int
	for range peers {
		switch err := (<-sockets).EmitFrame(f); {
		case err == nil:
			sent++
		case errors.Is(err, ErrNamespace):
			refused++
		default:
			t.Fatalf("EmitFrame: %v", err)
		}
	}
	if sent != 2 || refused != 1 {
		t.Fatalf("sent %d, refused %d; want 2 and 1", sent, refused)
	}
	for _, c := range peers[:2] {
		if got := c.read(); got != `451-["news",{"n":1},{"_placeholder":true,"num":0}]` {
			t.Fatalf("frame %q", got)
		}
		if got := c.read(); got != "b:\x07" {
			t.Fatalf("attachment %q", got)
		}
	}
	if _, err := NewFrame("/", "bad", func() {}); err == nil {
		t.Fatal("NewFrame encoded a func")
	}
}

// OnAny gets the events that have no handler of their own, with their
// names and acks; On's events do not reach it.
func TestOnAny(t *testing.T) {
	url := startServer(t, Options{}, func(s *Server) {
		s.Namespace("/", func(so *Socket, _ json.RawMessage) error {
			so.On("mine", func(args []any, _ func(...any) error) { so.Emit("on", args...) })
			so.OnAny(func(event string, args []any, ack func(...any) error) {
				if ack != nil {
					ack(append([]any{event}, args...)...)
					return
				}
				so.Emit("any", append([]any{event}, args...)...)
			})
			return nil
		})
	})
	c := dial(t, url)
	c.send("40")
	if got := c.read(); !strings.HasPrefix(got, "40{") {
		t.Fatalf("connect: %q", got)
	}
	for _, tc := range []struct{ send, want string }{
		{`42["mine",1]`, `42["on",1]`},
		{`42["other",2]`, `42["any","other",2]`},
		{`427["asked",3]`, `437["asked",3]`},
	} {
		c.send(tc.send)
		if got := c.read(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.send, got, tc.want)
		}
	}
}
