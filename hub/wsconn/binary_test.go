package wsconn

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// binEcho echoes text as text and binary as binary.
type binEcho struct{ c *Conn }

func (e binEcho) Message(data []byte) { e.c.Send(Message{Data: append([]byte(nil), data...)}) }
func (e binEcho) Binary(data []byte) {
	e.c.Send(Message{Data: append([]byte(nil), data...), Binary: true})
}
func (binEcho) Limited() {}
func (binEcho) Closed()  {}

func startBin(t *testing.T, o Options) string {
	t.Helper()
	s, err := NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Serve(w, r, func(c *Conn) Session {
			c.SetUser("u")
			return binEcho{c}
		})
	}))
	t.Cleanup(func() {
		s.Shutdown(context.Background())
		hs.Close()
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http")
}

// A BinarySession gets binary messages and sends binary frames; with
// Compression, clients that offer permessage-deflate get compressed
// frames (which gorilla's client inflates) and the others plain ones.
func TestBinaryAndCompression(t *testing.T) {
	for _, tc := range []struct {
		name              string
		server, client    bool
		wantExtNegotiated bool
	}{
		{"plain", false, false, false},
		{"server only", true, false, false},
		{"client only", false, true, false},
		{"compressed", true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := startBin(t, Options{Compression: tc.server, MaxMessageBytes: 1 << 20})
			var read atomic.Int64 // bytes the client read off the wire
			d := websocket.Dialer{EnableCompression: tc.client, NetDial: func(network, addr string) (net.Conn, error) {
				c, err := net.Dial(network, addr)
				return countConn{c, &read}, err
			}}
			ws, res, err := d.Dial(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			if got := strings.Contains(res.Header.Get("Sec-Websocket-Extensions"), "permessage-deflate"); got != tc.wantExtNegotiated {
				t.Fatalf("negotiated %v, want %v", got, tc.wantExtNegotiated)
			}
			for _, m := range []struct {
				typ  int
				data []byte
			}{
				{websocket.TextMessage, []byte("hello")},
				{websocket.BinaryMessage, []byte{0, 1, 2, 255}},
				{websocket.TextMessage, []byte{}},
				{websocket.TextMessage, bytes.Repeat([]byte("abc"), 70000)},
				{websocket.BinaryMessage, bytes.Repeat([]byte{7}, 126)},
			} {
				if err := ws.WriteMessage(m.typ, m.data); err != nil {
					t.Fatal(err)
				}
				ws.SetReadDeadline(time.Now().Add(10 * time.Second))
				typ, b, err := ws.ReadMessage()
				if err != nil || typ != m.typ || !bytes.Equal(b, m.data) {
					t.Fatalf("sent %d/%d bytes, got %d/%d bytes, %v", m.typ, len(m.data), typ, len(b), err)
				}
			}
			// 210,463 bytes of payload, most of it very repetitive.
			if compressed := read.Load() < 100_000; compressed != tc.wantExtNegotiated {
				t.Fatalf("the client read %d bytes", read.Load())
			}
		})
	}
}

type countConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.n.Add(int64(n))
	return n, err
}

func TestOffersDeflate(t *testing.T) {
	for h, want := range map[string]bool{
		"":                   false,
		"permessage-deflate": true,
		"permessage-deflate; client_max_window_bits":              true,
		"x-other, permessage-deflate; server_no_context_takeover": true,
		"x-other":                        false,
		"permessage-deflate=1":           false,
		`foo; a="b", permessage-deflate`: false, // quoted: not parsed here, so no
		"permessage-deflate;;":           false,
	} {
		hdr := http.Header{}
		if h != "" {
			hdr.Set("Sec-WebSocket-Extensions", h)
		}
		if got := offersDeflate(hdr); got != want {
			t.Errorf("offersDeflate(%q) = %v, want %v", h, got, want)
		}
	}
}

// flushEcho answers with SendFlushed and reports what it returned.
type flushEcho struct {
	c    *Conn
	errs chan error
}

func (e flushEcho) Message(data []byte) {
	e.errs <- e.c.SendFlushed(context.Background(), Message{Data: append([]byte(nil), data...), Key: 1})
}
func (flushEcho) Limited() {}
func (flushEcho) Closed()  {}

// SendFlushed returns once its message is written, and ErrClosed on a
// closing connection.
func TestSendFlushed(t *testing.T) {
	s, err := NewServer(Options{})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 10)
	conns := make(chan *Conn, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Serve(w, r, func(c *Conn) Session {
			c.SetUser("u")
			conns <- c
			return flushEcho{c, errs}
		})
	}))
	t.Cleanup(func() {
		s.Shutdown(context.Background())
		hs.Close()
	})
	ws := dial(t, "ws"+strings.TrimPrefix(hs.URL, "http"))
	c := <-conns
	ws.WriteMessage(websocket.TextMessage, []byte("one"))
	if err := <-errs; err != nil {
		t.Fatalf("SendFlushed: %v", err)
	}
	if st := s.Stats(); st.Sent != 1 {
		t.Fatalf("%d messages written when SendFlushed returned", st.Sent)
	}
	if got := readText(t, ws); got != "one" {
		t.Fatalf("read %q", got)
	}
	c.Close(1000, "")
	if err := c.SendFlushed(context.Background(), Message{Data: []byte("late")}); err != ErrClosed {
		t.Fatalf("SendFlushed on a closing connection: %v", err)
	}
}

// MaxMessageBytes bounds what a compressed message inflates to, not only
// its bytes on the wire: 100 KB of zeros, about a hundred bytes deflated,
// closes the connection with 1009.
func TestCompressedMessageInflatesPastTheLimit(t *testing.T) {
	url := startBin(t, Options{Compression: true, MaxMessageBytes: 1024})
	d := websocket.Dialer{EnableCompression: true}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteMessage(websocket.TextMessage, []byte("small")); err != nil {
		t.Fatal(err)
	}
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, b, err := ws.ReadMessage(); err != nil || string(b) != "small" {
		t.Fatalf("echo: %q, %v", b, err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, make([]byte, 100_000)); err != nil {
		t.Fatal(err)
	}
	for {
		_, b, err := ws.ReadMessage()
		if err == nil {
			t.Fatalf("got a %d-byte message back; want the connection closed", len(b))
		}
		if !websocket.IsCloseError(err, CloseTooBig) {
			t.Fatalf("got %v; want close %d", err, CloseTooBig)
		}
		return
	}
}

// Connections that all send compressed messages at once each get their
// own messages back, inflated through the shared pool of readers.
func TestCompressedConnsAtOnce(t *testing.T) {
	const conns, messages = 16, 30
	url := startBin(t, Options{Compression: true, MaxMessageBytes: 1 << 16,
		ConnectsPerMinute: -1, MaxConns: -1, MaxConnsPerUser: -1})
	d := websocket.Dialer{EnableCompression: true}
	var wg sync.WaitGroup
	for c := range conns {
		ws, _, err := d.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		wg.Go(func() {
			for i := range messages {
				msg := []byte(strings.Repeat(fmt.Sprintf("conn %d message %d;", c, i), 1+(c*messages+i)%500))
				if err := ws.WriteMessage(websocket.TextMessage, msg); err != nil {
					t.Errorf("conn %d: %v", c, err)
					return
				}
				ws.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, b, err := ws.ReadMessage(); err != nil || !bytes.Equal(b, msg) {
					t.Errorf("conn %d message %d: got %.40q, %v", c, i, b, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
