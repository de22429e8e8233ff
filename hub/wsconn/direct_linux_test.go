package wsconn

import (
	"bytes"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A message for an idle connection is written by Send itself: when Send
// returns it has been written, and no writer goroutine runs.
func TestDirectWrite(t *testing.T) {
	s, url, sessions := start(t, Options{WriteDelay: -1})
	ws := dial(t, url)
	e := <-sessions
	before := s.Stats().Sent
	if err := e.c.Send(Message{Data: []byte("direct")}); err != nil {
		t.Fatal(err)
	}
	e.c.mu.Lock()
	writing, live := e.c.writing, e.c.live
	e.c.mu.Unlock()
	if got := s.Stats().Sent - before; got != 1 || writing || live != 0 {
		t.Fatalf("after Send: sent %d, writer running %v, %d waiting; want 1, false, 0", got, writing, live)
	}
	if got := readText(t, ws); got != "direct" {
		t.Fatalf("read %q", got)
	}
	// The queue starts over after each one: a connection written to
	// directly keeps no growing array.
	for i := 0; i < 200; i++ {
		if err := e.c.Send(Message{Data: []byte("again")}); err != nil {
			t.Fatal(err)
		}
		if got := readText(t, ws); got != "again" {
			t.Fatalf("read %q", got)
		}
	}
	e.c.mu.Lock()
	n := cap(e.c.q)
	e.c.mu.Unlock()
	if n > 1 {
		t.Fatalf("after 200 direct writes the queue's array holds %d entries; want 1", n)
	}
}

// When the kernel takes only part of a frame, the writer writes the rest
// before anything else, and the client reads every message whole.
func TestDirectWritePartial(t *testing.T) {
	type wrote struct{ n, size int }
	direct := make(chan wrote, 10)
	_, url, sessions := start(t, Options{WriteDelay: -1, SendBufferBytes: 16 << 10,
		directWrote: func(n, size int) { direct <- wrote{n, size} }})
	d := *websocket.DefaultDialer
	d.NetDial = func(network, addr string) (net.Conn, error) {
		nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
			})
			if err != nil {
				return err
			}
			return serr
		}}
		return nd.Dial(network, addr)
	}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetReadLimit(-1)
	e := <-sessions

	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: more than both buffers hold
	if err := e.c.Send(Message{Data: big, Seq: 7}); err != nil {
		t.Fatal(err)
	}
	if w := <-direct; w.n == 0 || w.n >= w.size {
		t.Fatalf("the direct write wrote %d of %d bytes; want a part", w.n, w.size)
	}
	if err := e.c.Send(Message{Data: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	if got := readText(t, ws); got != string(big) {
		t.Fatalf("first message: %d bytes, want %d intact", len(got), len(big))
	}
	if got := readText(t, ws); got != "after" {
		t.Fatalf("second message %q", got)
	}
	if got := e.c.LastSeq(); got != 7 {
		t.Fatalf("LastSeq %d, want 7", got)
	}
}

// A write deadline a writer left behind, long past, does not stop the
// next message from being written directly (the raw write checks it
// first).
func TestDirectWriteAfterOldDeadline(t *testing.T) {
	type wrote struct{ n, size int }
	direct := make(chan wrote, 10)
	_, url, sessions := start(t, Options{WriteDelay: -1, directWrote: func(n, size int) { direct <- wrote{n, size} }})
	ws := dial(t, url)
	e := <-sessions
	e.c.mu.Lock()
	e.c.deadlineAt = time.Now().Add(-time.Hour)
	e.c.nc.SetWriteDeadline(time.Now().Add(-time.Minute))
	e.c.mu.Unlock()
	if err := e.c.Send(Message{Data: []byte("late")}); err != nil {
		t.Fatal(err)
	}
	if w := <-direct; w.n != w.size {
		t.Fatalf("the direct write wrote %d of %d bytes", w.n, w.size)
	}
	if got := readText(t, ws); got != "late" {
		t.Fatalf("read %q", got)
	}
}

// Dropping the queue keeps the rest of a frame a direct write began: the
// close frame must not land inside it.
func TestDropQueueKeepsSplitFrame(t *testing.T) {
	c := &Conn{}
	c.q = []Message{{Data: []byte("rest of a frame"), framed: true}, {Data: []byte("next")}}
	c.dead = []bool{false, false}
	c.live = 2
	c.dropQueue()
	if m, ok := c.peek(); !ok || !m.framed || c.live != 1 || len(c.q) != 1 {
		t.Fatalf("after dropQueue: %d waiting, head %+v", c.live, m)
	}
	c.pop()
	c.dropQueue()
	if c.live != 0 || len(c.q) != 0 {
		t.Fatalf("an empty queue kept %d", c.live)
	}
}
