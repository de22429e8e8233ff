package wsconn

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/floorhub/floorhub/internal/testkit"
)

// handTimer is the write delay's timer, fired by the test.
type handTimer struct {
	mu      sync.Mutex
	f       func()
	armed   int // times armed (made or Reset)
	pending bool
}

func (h *handTimer) afterFunc(d time.Duration, f func()) timer {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.f, h.pending = f, true
	h.armed++
	return h
}

func (h *handTimer) Stop() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	was := h.pending
	h.pending = false
	return was
}

func (h *handTimer) Reset(time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	was := h.pending
	h.pending = true
	h.armed++
	return was
}

// fire runs the timer's function if it is armed, as the runtime would.
func (h *handTimer) fire() {
	h.mu.Lock()
	f, ok := h.f, h.pending
	h.pending = false
	h.mu.Unlock()
	if ok {
		f()
	}
}

func (h *handTimer) state() (armed int, pending bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.armed, h.pending
}

// delayConn is one connection of a server whose write delay the test fires.
type delayConn struct {
	c      *Conn
	e      *echo
	ws     *websocket.Conn
	tm     *handTimer
	writes *atomic.Int64 // system calls writing messages
}

func dialDelayed(t *testing.T, o Options) delayConn {
	t.Helper()
	tm := &handTimer{}
	writes := new(atomic.Int64)
	o.ConnectsPerMinute = -1
	o.afterFunc = tm.afterFunc
	hold := o.beforeWrite
	o.beforeWrite = func() {
		writes.Add(1)
		if hold != nil {
			hold()
		}
	}
	_, url, sessions := start(t, o)
	ws := dial(t, url)
	e := <-sessions
	return delayConn{e.c, e, ws, tm, writes}
}

func (d delayConn) send(t *testing.T, delay bool, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := d.c.Send(Message{Data: []byte(n), Delay: delay}); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
	}
}

func (d delayConn) read(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if got := readText(t, d.ws); got != n {
			t.Fatalf("read %q, want %q", got, n)
		}
	}
}

// Fan-out messages queued within the write delay go out together, in one
// write, when it ends; nothing is written before.
func TestWriteDelayBatches(t *testing.T) {
	d := dialDelayed(t, Options{WriteDelay: time.Hour})
	d.send(t, true, "f1", "f2", "f3", "f4", "f5")
	if armed, pending := d.tm.state(); armed != 1 || !pending {
		t.Fatalf("timer armed %d times, pending %v; want once, pending", armed, pending)
	}
	d.c.mu.Lock()
	writing := d.c.writing
	d.c.mu.Unlock()
	if writing || d.writes.Load() != 0 {
		t.Fatalf("within the delay: writer running %v, %d writes", writing, d.writes.Load())
	}
	d.tm.fire()
	d.read(t, "f1", "f2", "f3", "f4", "f5")
	if n := d.writes.Load(); n != 1 {
		t.Fatalf("%d writes for five messages queued within the delay, want 1", n)
	}
	// Once the writer found the queue empty and exited, the next one
	// waits again: the timer is reused.
	testkit.Eventually(t, "the writer to exit", 10*time.Second, func() bool {
		d.c.mu.Lock()
		defer d.c.mu.Unlock()
		return !d.c.writing
	})
	d.send(t, true, "f6")
	if armed, pending := d.tm.state(); armed != 2 || !pending {
		t.Fatalf("after the first batch: armed %d times, pending %v", armed, pending)
	}
	d.tm.fire()
	d.read(t, "f6")
}

// A message without Delay (a reply) is written at once, taking the fan-out
// queued before it along, in order, in one write; the delay is disarmed.
// So are pings' and Close's frames.
func TestWriteDelayReplyGoesAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		urgent  func(d delayConn)
		then    []string
		closing bool
	}{
		{"reply", func(d delayConn) { d.c.Send(Message{Data: []byte("reply")}) }, []string{"reply"}, false},
		{"SendWait reply", func(d delayConn) { d.c.SendWait(d.c.Context(), Message{Data: []byte("reply")}) }, []string{"reply"}, false},
		{"echoed request", func(d delayConn) { d.ws.WriteMessage(websocket.TextMessage, []byte("req")) }, []string{"req"}, false},
		{"close", func(d delayConn) { d.c.Close(CloseGoingAway, "bye") }, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := dialDelayed(t, Options{WriteDelay: time.Hour})
			d.send(t, true, "f1", "f2", "f3")
			tc.urgent(d)
			d.read(t, append([]string{"f1", "f2", "f3"}, tc.then...)...)
			if tc.closing {
				if code, reason := closeOf(t, d.ws); code != CloseGoingAway || reason != "bye" {
					t.Fatalf("closed with %d %q after the delayed messages, want %d", code, reason, CloseGoingAway)
				}
			}
			if _, pending := d.tm.state(); pending {
				t.Fatal("the delay is still armed after the writer started")
			}
			if n := d.writes.Load(); n != 1 {
				t.Fatalf("%d writes, want the queue in one", n)
			}
		})
	}
}

// Shutdown's close frames come after the messages waiting out the delay.
func TestWriteDelayShutdownFlushes(t *testing.T) {
	tm := &handTimer{}
	s, url, sessions := start(t, Options{ConnectsPerMinute: -1, WriteDelay: time.Hour, afterFunc: tm.afterFunc})
	ws := dial(t, url)
	e := <-sessions
	for i := range 3 {
		if err := e.c.Send(Message{Data: fmt.Appendf(nil, "f%d", i), Delay: true}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Shutdown(t.Context())
	}()
	for i := range 3 {
		if got := readText(t, ws); got != fmt.Sprint("f", i) {
			t.Fatalf("read %q, want f%d", got, i)
		}
	}
	if code, _ := closeOf(t, ws); code != CloseGoingAway {
		t.Fatalf("close %d, want %d", code, CloseGoingAway)
	}
	ws.Close()
	<-done
}

// A queue waiting out the delay is not a stalled one: stalled() ignores
// the delay's wait, and its queue never grows to QueueLen while waiting
// (half of CoalesceAfter starts the writer), so nothing coalesces either.
func TestWriteDelayIsNotStalled(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		delayed bool
		full    bool // found full before, at t0, with no write since
		elapsed time.Duration
		want    bool
	}{
		{"first found full", false, false, time.Hour, false},
		{"full, no write for less than StallTimeout", false, true, 2*time.Second - 1, false},
		{"full, no write for StallTimeout", false, true, 2 * time.Second, true},
		{"waiting out the delay, long after found full", true, true, time.Hour, false},
		{"waiting out the delay", true, false, time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := testkit.NewClock(t0)
			c := &Conn{s: serverWith(Options{StallTimeout: 2 * time.Second, Now: clk.Now}), delayed: tc.delayed,
				full: tc.full, fullAt: t0, writes: 3, fullWrites: 3}
			clk.Advance(tc.elapsed)
			if got := c.stalled(); got != tc.want {
				t.Fatalf("stalled() = %v, want %v", got, tc.want)
			}
		})
	}

	const coalesceAfter = 8
	d := dialDelayed(t, Options{WriteDelay: time.Hour, QueueLen: 16, CoalesceAfter: coalesceAfter})
	var names []string
	for i := range coalesceAfter/2 - 1 {
		names = append(names, fmt.Sprint("k", i))
		if err := d.c.Send(Message{Data: []byte(names[i]), Key: 7, Delay: true}); err != nil {
			t.Fatal(err)
		}
	}
	if d.writes.Load() != 0 {
		t.Fatal("written before the delay ended or the queue reached CoalesceAfter/2")
	}
	// The next one reaches CoalesceAfter/2: written at once, all of them.
	names = append(names, "last")
	d.send(t, true, "last")
	d.read(t, names...)
	if st := d.c.s.Stats(); st.Coalesced != 0 || st.Overflows != 0 {
		t.Fatalf("stats %+v: a queue waiting out the delay coalesced or overflowed", st)
	}
	if _, pending := d.tm.state(); pending {
		t.Fatal("the delay is still armed after the writer started")
	}
}

// A negative WriteDelay writes every message at once: no timer.
func TestWriteDelayNegative(t *testing.T) {
	d := dialDelayed(t, Options{WriteDelay: -1})
	d.send(t, true, "f1")
	d.read(t, "f1")
	d.send(t, true, "f2")
	d.read(t, "f2")
	if armed, _ := d.tm.state(); armed != 0 {
		t.Fatalf("timer armed %d times with a negative delay", armed)
	}
	s, err := NewServer(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Options().WriteDelay; got != DefaultWriteDelay {
		t.Fatalf("default WriteDelay %v, want %v", got, DefaultWriteDelay)
	}
}

// The delay's timer does not outlive its connection: a peer that goes away
// while messages wait ends the connection and stops the timer (the real
// one: Stop then finds nothing to stop).
func TestWriteDelayTimerEndsWithConn(t *testing.T) {
	_, url, sessions := start(t, Options{ConnectsPerMinute: -1, WriteDelay: time.Hour})
	ws := dial(t, url)
	e := <-sessions
	if err := e.c.Send(Message{Data: []byte("f1"), Delay: true}); err != nil {
		t.Fatal(err)
	}
	e.c.mu.Lock()
	tm, delayed := e.c.delayT, e.c.delayed
	e.c.mu.Unlock()
	if tm == nil || !delayed {
		t.Fatal("no write delay armed")
	}
	ws.NetConn().Close() // the peer goes away
	<-e.c.Done()
	<-e.closed
	e.c.mu.Lock()
	delayed = e.c.delayed
	e.c.mu.Unlock()
	if delayed || tm.Stop() {
		t.Fatal("the write delay's timer outlived the connection")
	}
}

// The write delay's windows: the first message past the current window's
// end opens the next; one within the window is due at its end; one from
// before the window is due at once (0). The end follows the delay given,
// so a reload that shortens it applies to the current window.
func TestDelayWindows(t *testing.T) {
	const d = 20 * time.Millisecond
	for _, tc := range []struct {
		start, t, d, newStart, due time.Duration
	}{
		{0, 0, d, 0, d},               // the first window starts with the Server
		{0, d + 5, d, d + 5, 2*d + 5}, // a message after it opens the next
		{d, 2*d - 1, d, d, 2 * d},     // within the window: its end
		{d, d, d, d, 2 * d},           // its start
		{d, 2 * d, d, 2 * d, 3 * d},   // at its end: the next window
		{d, 9 * d, d, 9 * d, 10 * d},  // long after
		{3 * d, 3*d - 1, d, 3 * d, 0}, // from before the window: at once
		{3 * d, -time.Second, d, 3 * d, 0},
		{0, 5 * d, time.Hour, 0, time.Hour}, // opened with an hour's delay ...
		{0, 5 * d, d, 5 * d, 6 * d},         // ... which a reload shortened
	} {
		if newStart, due := nextWindow(tc.start, tc.t, tc.d); newStart != tc.newStart || due != tc.due {
			t.Errorf("nextWindow(start %v, t %v, d %v) = %v, %v; want %v, %v", tc.start, tc.t, tc.d, newStart, due, tc.newStart, tc.due)
		}
	}
}

// A delayed message produced in a window that has ended (a fan-out that
// took that long to reach this connection) is written at once; messages
// produced in the current window share its timer.
func TestWriteDelayWindowEnded(t *testing.T) {
	d := dialDelayed(t, Options{WriteDelay: time.Hour})
	if err := d.c.Send(Message{Data: []byte("late"), Delay: true, At: time.Now().Add(-2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	d.read(t, "late")
	if armed, _ := d.tm.state(); armed != 0 {
		t.Fatalf("timer armed %d times for a message whose window ended", armed)
	}
	testkit.Eventually(t, "the writer to exit", 10*time.Second, func() bool {
		d.c.mu.Lock()
		defer d.c.mu.Unlock()
		return !d.c.writing
	})
	now := time.Now()
	for _, n := range []string{"a", "b"} {
		if err := d.c.Send(Message{Data: []byte(n), Delay: true, At: now}); err != nil {
			t.Fatal(err)
		}
	}
	if armed, pending := d.tm.state(); armed != 1 || !pending {
		t.Fatalf("timer armed %d times, pending %v, for two messages of one window", armed, pending)
	}
	d.tm.fire()
	d.read(t, "a", "b")
}

// A writer still busy (here held before its write) when a delayed message
// arrives does not take it early: the message waits for its window's end,
// as it does on the connections whose writer was idle.
func TestWriteDelayBusyWriterWaits(t *testing.T) {
	gate := newWriteGate()
	d := dialDelayed(t, Options{WriteDelay: time.Hour, beforeWrite: gate.hold})
	t.Cleanup(gate.open)
	d.send(t, false, "r")
	<-gate.arrived // the writer framed "r" and waits for the CPU
	d.send(t, true, "f1", "f2")
	gate.open()
	d.read(t, "r")
	testkit.Eventually(t, "the writer to leave f1 and f2 for the window's end", 10*time.Second, func() bool {
		armed, pending := d.tm.state()
		return armed == 1 && pending
	})
	if n := d.writes.Load(); n != 1 {
		t.Fatalf("%d writes before the window's end, want 1 (r)", n)
	}
	d.tm.fire()
	d.read(t, "f1", "f2")
	if n := d.writes.Load(); n != 2 {
		t.Fatalf("%d writes, want 2", n)
	}
}
