package socketio

import (
	"testing"
	"time"
)

// The queue forgets a client that connected or closed, and lets its array
// go once the clients at its front have.
func TestWaitingQueue(t *testing.T) {
	w := waiting{timeout: time.Hour}
	defer w.close()
	cs := []*client{{}, {}, {}}
	for _, c := range cs {
		w.add(c)
	}
	for i, step := range []struct {
		remove int
		len    int
	}{
		{1, 3}, // the middle one: kept as a hole
		{0, 1}, // the first: the hole goes with it
		{2, 0},
	} {
		w.remove(cs[step.remove])
		if len(w.queue) != step.len || cs[step.remove].place != 0 {
			t.Fatalf("step %d: queue %d long, want %d; place %d", i, len(w.queue), step.len, cs[step.remove].place)
		}
	}
	if w.queue != nil {
		t.Fatal("an empty queue keeps its array")
	}
	w.remove(cs[0]) // twice: nothing
	c := &client{}
	w.add(c)
	if len(w.queue) != 1 || w.queue[0].c != c || c.place != w.first {
		t.Fatalf("after emptying: %+v, place %d, first %d", w.queue, c.place, w.first)
	}
}
