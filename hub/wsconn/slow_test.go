package wsconn

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/floorhub/floorhub/internal/testkit"
)

// writeGate holds the writer before each write, as if it were waiting for
// the CPU: arrived gets a value when a writer waits, and each value sent on
// release lets one write go, until open lets every write go.
type writeGate struct {
	arrived, release, opened chan struct{}
	once                     sync.Once
}

func newWriteGate() *writeGate {
	return &writeGate{arrived: make(chan struct{}), release: make(chan struct{}), opened: make(chan struct{})}
}

func (g *writeGate) hold() {
	select {
	case <-g.opened:
		return
	case g.arrived <- struct{}{}:
	}
	select {
	case <-g.opened:
	case <-g.release:
	}
}

func (g *writeGate) open() { g.once.Do(func() { close(g.opened) }) }

// "Slow" means no write progress for StallTimeout with a full queue, never
// a full queue alone: a writer held (descheduled) while three queues' worth
// of messages arrive loses none of them, in order; a held writer is slow
// once StallTimeout passed on the injected clock since its queue was found
// full; a completed write restarts that time; QueueMax bounds the queue
// whatever the clock says.
func TestSlowMeansNoWriteProgress(t *testing.T) {
	const queueLen, queueMax, stall = 8, 40, 2 * time.Second
	type conn struct {
		c    *Conn
		ws   *websocket.Conn
		gate *writeGate
		clk  *testkit.Clock
	}
	dialHeld := func(t *testing.T) conn {
		clk := testkit.NewClock(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
		gate := newWriteGate()
		_, url, sessions := start(t, Options{ConnectsPerMinute: -1, QueueLen: queueLen, QueueMax: queueMax,
			StallTimeout: stall, Now: clk.Now, beforeWrite: gate.hold})
		t.Cleanup(gate.open) // before the server's shutdown, even if the test fails
		ws := dial(t, url)
		e := <-sessions
		// The first message takes the writer to the gate: from now on
		// every message waits in the queue.
		if err := e.c.Send(Message{Data: []byte("m0")}); err != nil {
			t.Fatal(err)
		}
		<-gate.arrived
		return conn{e.c, ws, gate, clk}
	}
	send := func(t *testing.T, c *Conn, from, to int) error {
		t.Helper()
		for i := from; i < to; i++ {
			if err := c.Send(Message{Data: []byte(fmt.Sprintf("m%d", i))}); err != nil {
				return fmt.Errorf("message %d: %w", i, err)
			}
		}
		return nil
	}
	readAll := func(t *testing.T, ws *websocket.Conn, n int) {
		t.Helper()
		for i := range n {
			if got := readText(t, ws); got != fmt.Sprintf("m%d", i) {
				t.Fatalf("message %d: got %q", i, got)
			}
		}
	}

	t.Run("descheduled writer", func(t *testing.T) {
		c := dialHeld(t)
		c.clk.Advance(stall - time.Millisecond) // long, but less than the stall time since the queue filled
		if err := send(t, c.c, 1, 3*queueLen); err != nil {
			t.Fatalf("a full queue whose writer waits is not slow: %v", err)
		}
		c.clk.Advance(stall - time.Millisecond)
		if err := send(t, c.c, 3*queueLen, 3*queueLen+1); err != nil {
			t.Fatalf("%v less than StallTimeout after the queue was found full: %v", stall-time.Millisecond, err)
		}
		c.gate.open()
		readAll(t, c.ws, 3*queueLen+1)
	})

	t.Run("stalled writer", func(t *testing.T) {
		c := dialHeld(t)
		if err := send(t, c.c, 1, queueLen+2); err != nil { // found full at t0
			t.Fatal(err)
		}
		c.clk.Advance(stall)
		err := send(t, c.c, queueLen+2, queueLen+3)
		if !errors.Is(err, ErrOverflow) {
			t.Fatalf("no write for StallTimeout with a full queue: %v, want ErrOverflow", err)
		}
		c.gate.open()
		readAll(t, c.ws, 1) // what the writer held, then the close frame
		if code, reason := closeOf(t, c.ws); code != CloseSlowConsumer {
			t.Fatalf("closed with %d %q, want %d", code, reason, CloseSlowConsumer)
		}
	})

	t.Run("progress restarts the stall time", func(t *testing.T) {
		c := dialHeld(t)
		if err := send(t, c.c, 1, queueLen+2); err != nil { // found full at t0
			t.Fatal(err)
		}
		c.clk.Advance(stall - time.Millisecond)
		c.gate.release <- struct{}{} // one write completes
		<-c.gate.arrived             // and the writer took the whole queue into its next one
		if err := send(t, c.c, queueLen+2, 2*queueLen+4); err != nil {
			t.Fatal(err)
		}
		c.clk.Advance(stall - time.Millisecond) // 2×stall since first full, but not since the write
		if err := send(t, c.c, 2*queueLen+4, 2*queueLen+5); err != nil {
			t.Fatalf("a write completed less than StallTimeout ago: %v", err)
		}
		c.clk.Advance(time.Millisecond)
		if err := send(t, c.c, 2*queueLen+5, 2*queueLen+6); !errors.Is(err, ErrOverflow) {
			t.Fatalf("no write for StallTimeout since: %v, want ErrOverflow", err)
		}
		c.gate.open()
	})

	t.Run("QueueMax", func(t *testing.T) {
		c := dialHeld(t)
		if err := send(t, c.c, 1, queueMax+1); err != nil {
			t.Fatalf("up to QueueMax waiting: %v", err)
		}
		if err := send(t, c.c, queueMax+1, queueMax+2); !errors.Is(err, ErrOverflow) {
			t.Fatalf("beyond QueueMax: %v, want ErrOverflow", err)
		}
		c.gate.open()
	})
}
