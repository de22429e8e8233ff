package socketio

import (
	"sync"
	"time"
)

// waiting closes the sessions that connect no namespace within the
// connect timeout. The timeout is the same for every session, so the
// deadlines come in the order the sessions opened: one queue and one timer
// serve them all. (A timer per session stayed with it after its CONNECT:
// the runtime frees a stopped timer only when it gets round to it.)
type waiting struct {
	timeout time.Duration

	mu    sync.Mutex
	queue []waiter    // by deadline; a client that connected or closed is nil
	first uint64      // the number of queue[0]
	next  uint64      // the number of the next client queued; 0 is none
	timer *time.Timer // armed while the queue is not empty
	done  bool        // closed: nothing is queued any more
}

// waiter is one session's place in the queue.
type waiter struct {
	c  *client
	at time.Time
}

// add queues c, unless it waits already.
func (w *waiting) add(c *client) {
	w.mu.Lock()
	switch {
	case w.done, c.place != 0:
		w.mu.Unlock()
		return
	case len(w.queue) == 0:
		w.next++ // 0 is no place
		w.first = w.next
		if w.timer == nil {
			w.timer = time.AfterFunc(w.timeout, w.expire)
		} else {
			w.timer.Reset(w.timeout)
		}
	default:
		w.next++
	}
	c.place = w.next
	w.queue = append(w.queue, waiter{c, time.Now().Add(w.timeout)})
	w.mu.Unlock()
}

// remove takes c off the queue: it connected, or closed.
func (w *waiting) remove(c *client) {
	w.mu.Lock()
	if c.place >= w.first && c.place-w.first < uint64(len(w.queue)) {
		w.queue[c.place-w.first].c = nil
	}
	c.place = 0
	// Sessions connect in about the order they opened: the queue's
	// array goes once they all have.
	for len(w.queue) > 0 && w.queue[0].c == nil {
		w.queue = w.queue[1:]
		w.first++
	}
	if len(w.queue) == 0 {
		w.queue = nil
	}
	w.mu.Unlock()
}

// expire closes the sessions whose time is up; it runs on the timer.
func (w *waiting) expire() {
	now := time.Now()
	var late []*client
	w.mu.Lock()
	for len(w.queue) > 0 && !w.queue[0].at.After(now) {
		if c := w.queue[0].c; c != nil {
			c.place = 0
			late = append(late, c)
		}
		w.queue[0] = waiter{} // the array keeps no client
		w.queue = w.queue[1:]
		w.first++
	}
	if len(w.queue) == 0 {
		w.queue = nil
	} else if !w.done {
		w.timer.Reset(w.queue[0].at.Sub(now))
	}
	w.mu.Unlock()
	for _, c := range late {
		c.connectTimeout()
	}
}

// close empties the queue and stops the timer: the server is closing
// every session.
func (w *waiting) close() {
	w.mu.Lock()
	w.done = true
	w.queue = nil
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
}
