package engineio

import (
	"sync"
	"time"
)

// beats runs the heartbeats of a server's sessions on one timer: the
// sessions wait in a heap by when their heartbeat is next due. A timer of
// their own cost each session about 150 bytes for its life; a place in
// the heap costs 16.
type beats struct {
	now func() time.Duration // Server.now

	mu    sync.Mutex
	heap  []beat      // a min-heap by due; each session knows its index (Socket.beat, -1 when it has none)
	timer *time.Timer // set for the heap's first; nil until a session comes
	done  bool        // the server has closed
}

// beat is a session's place in the heap: its heartbeat is due at due.
type beat struct {
	so  *Socket
	due time.Duration // by Server.now
}

// schedule sets so's heartbeat to run at due (by Server.now). With add
// unset it only moves one that waits in the heap: a heartbeat that is
// running (or not started, or over) sets its own next time.
func (b *beats) schedule(so *Socket, due time.Duration, add bool) {
	b.mu.Lock()
	switch i := so.beat; {
	case b.done:
	case i >= 0:
		b.heap[i].due = due
		b.up(b.down(i))
	case add:
		b.heap = append(b.heap, beat{so, due})
		so.beat = len(b.heap) - 1
		b.up(so.beat)
	}
	if so.beat == 0 { // the first now: the timer is late
		d := due - b.now()
		if b.timer == nil {
			b.timer = time.AfterFunc(d, b.run)
		} else {
			b.timer.Reset(d)
		}
	}
	b.mu.Unlock()
}

// remove takes so out of the heap (it has closed, or its heartbeat is
// due). Called with mu held.
func (b *beats) remove(so *Socket) {
	i := so.beat
	if i < 0 {
		return
	}
	last := len(b.heap) - 1
	b.swap(i, last)
	b.heap[last] = beat{} // the array keeps no session
	b.heap = b.heap[:last]
	so.beat = -1
	if i < last {
		b.up(b.down(i))
	}
}

// up moves the i'th beat towards the root while it is due before its
// parent. Called with mu held.
func (b *beats) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if b.heap[p].due <= b.heap[i].due {
			return
		}
		b.swap(i, p)
		i = p
	}
}

// down moves the i'th beat towards the leaves while a child is due before
// it, and returns where it ends. Called with mu held.
func (b *beats) down(i int) int {
	for {
		c := 2*i + 1
		if c >= len(b.heap) {
			return i
		}
		if c+1 < len(b.heap) && b.heap[c+1].due < b.heap[c].due {
			c++
		}
		if b.heap[i].due <= b.heap[c].due {
			return i
		}
		b.swap(i, c)
		i = c
	}
}

func (b *beats) swap(i, j int) {
	h := b.heap
	h[i], h[j] = h[j], h[i]
	h[i].so.beat, h[j].so.beat = i, j
}

// run runs the heartbeats that are due, on the timer, one at a time, and
// sets the timer for the next. A heartbeat puts its session back.
func (b *beats) run() {
	for {
		b.mu.Lock()
		if b.done || len(b.heap) == 0 {
			b.mu.Unlock()
			return
		}
		if d := b.heap[0].due - b.now(); d > 0 {
			b.timer.Reset(d)
			b.mu.Unlock()
			return
		}
		so := b.heap[0].so
		b.remove(so)
		b.mu.Unlock()
		so.heartbeat()
	}
}

// close stops the timer: the server has closed every session.
func (b *beats) close() {
	b.mu.Lock()
	b.done = true
	for _, e := range b.heap { // none, if every session closed first
		e.so.beat = -1
	}
	b.heap = nil
	if b.timer != nil {
		b.timer.Stop()
	}
	b.mu.Unlock()
}
