package hub

import (
	"slices"
	"sync/atomic"
	"testing"

	"github.com/floorhub/floorhub/internal/testkit"
)

// A record published the instant the client may read "subscribed" reaches
// it: the reply is queued only once the subscription is in place. The
// hook runs right after the reply is queued, with the client's lock held
// (the lock the fan-out takes to deliver): there the client must already
// be in the fan-out's list of the channel, and a record published and
// taken by the fan-out there must reach it. Queued before the index (the
// old order), the reply would go out while the fan-out still skips the
// client: the check in the hook fails, and the record is lost.
func TestSubscribedMeansInstalled(t *testing.T) {
	for _, path := range []string{"/ws", "/ws/telemetry"} {
		t.Run(path, func(t *testing.T) {
			var calls atomic.Int32
			var th *testHub
			th = newTestHub(t, limitless, func(o *Options) {
				o.afterSubscribe = func(c *client, ch channel) {
					calls.Add(1)
					if !slices.Contains(*th.snap[ch].Load(), c) {
						t.Errorf("\"subscribed\" was queued before the client was in the fan-out's list of %s", ch)
					}
					th.Publish(telemetry(1, 1, 20))
					// Once the fan-out has taken the record, it either
					// skipped this client or waits for its lock.
					if !testkit.WaitTrue(wait, func() bool { return th.lastSeq.Load() >= 1 }) {
						t.Error("the fan-out did not take record 1")
					}
				}
			})
			c := th.login(t, path, "c")
			if path == "/ws" {
				c.send(map[string]any{"type": "subscribe", "channel": "telemetry"})
			}
			c.readType("subscribed")
			// Once the reader is past subscribe (the pong proves it), a
			// second record, which reaches the client either way; the
			// first must come before it.
			var seqs []uint64
			c.send(map[string]any{"type": "ping"})
			for m := c.read(); m["type"] != "pong"; m = c.read() {
				seqs = append(seqs, seqOf(m))
			}
			th.Publish(telemetry(2, 1, 21))
			for len(seqs) == 0 || seqs[len(seqs)-1] != 2 {
				seqs = append(seqs, seqOf(c.readType("telemetry_update")))
			}
			if len(seqs) != 2 || seqs[0] != 1 {
				t.Fatalf("client got seqs %v, want [1 2]: the record published when it saw \"subscribed\" was lost", seqs)
			}
			if n := calls.Load(); n != 1 {
				t.Fatalf("the hook ran %d times, want 1", n)
			}
		})
	}
}
