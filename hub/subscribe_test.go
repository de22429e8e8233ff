package hub

import (
	"sync/atomic"
	"testing"
)

// A record published the instant the client has read "subscribed" reaches
// it: the reply is queued only once the subscription is in place. The
// subscribe call is held right after it queued the reply (afterSubscribe)
// while the record is published and fanned out (another subscriber has
// received it), so a reply sent before the subscription was installed
// would deterministically lose the record.
func TestSubscribedMeansInstalled(t *testing.T) {
	for _, path := range []string{"/ws", "/ws/telemetry"} {
		t.Run(path, func(t *testing.T) {
			var calls atomic.Int32
			held, release := make(chan struct{}), make(chan struct{})
			th := newTestHub(t, limitless, func(o *Options) {
				o.afterSubscribe = func(channel) {
					if calls.Add(1) == 2 { // the second subscription: the client under test
						close(held)
						<-release
					}
				}
			})
			witness := th.login(t, "/ws/telemetry", "witness")
			witness.readType("subscribed")

			c := th.login(t, path, "c")
			if path == "/ws" {
				c.send(map[string]any{"type": "subscribe", "channel": "telemetry"})
			}
			c.readType("subscribed")
			<-held // the client read the reply; its subscribe has not returned
			th.Publish(telemetry(1, 1, 20))
			if m := witness.readType("telemetry_update"); seqOf(m) != 1 {
				t.Fatalf("witness got %v", m)
			}
			close(release)
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
		})
	}
}
