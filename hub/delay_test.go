package hub

import (
	"testing"
	"time"
)

// The hub marks its fan-out as delayable and its replies as urgent
// (wsconn.Message.Delay): with a write delay of an hour, the replies
// (auth_response, subscribed, pong) still come at once, and a pong takes
// the telemetry waiting before it along, in order.
func TestWriteDelayRepliesFlushFanout(t *testing.T) {
	th := newTestHub(t, limitless, func(o *Options) {
		o.Conn.WriteDelay = time.Hour
		o.Conn.MessagesPerSecond = -1 // a ping per poll
	})
	c := th.login(t, "/ws", "c")
	c.send(map[string]any{"type": "subscribe", "channel": "telemetry"})
	c.readType("subscribed")
	th.Publish(telemetry(1, 1, 20))
	// The fan-out queues the record when it gets to it; every ping's pong
	// flushes what is queued, so the record comes before some pong.
	var got []uint64
	eventually(t, "the record before a pong", func() bool {
		c.send(map[string]any{"type": "ping"})
		for m := c.read(); m["type"] != "pong"; m = c.read() {
			if m["type"] != "telemetry_update" {
				t.Fatalf("unexpected %v", m)
			}
			got = append(got, seqOf(m))
		}
		return len(got) > 0
	})
	if len(got) != 1 || got[0] != 1 {
		t.Fatalf("seqs %v before the pong, want [1]", got)
	}
}
