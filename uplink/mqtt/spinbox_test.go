package mqtt

import (
	"fmt"
	"testing"

	"github.com/floorhub/floorhub/uplink/mqtt/mqttwire"
)

// A flood of commands cannot push out the Primary Host's STATE: commands
// beyond the queue are dropped, a STATE is only superseded by a newer one.
func TestSpInboxStateNeverDropped(t *testing.T) {
	b := newSpInbox()
	for i := range spCommandQueue {
		if !b.putCommand(mqttwire.Message{Topic: fmt.Sprint("ncmd ", i)}) {
			t.Fatalf("command %d dropped with room in the queue", i)
		}
	}
	if b.putCommand(mqttwire.Message{Topic: "one too many"}) {
		t.Fatal("a command beyond the queue was accepted")
	}
	b.putState(mqttwire.Message{Topic: "state", Payload: []byte("online")})
	b.putState(mqttwire.Message{Topic: "state", Payload: []byte("offline")})
	select {
	case m := <-b.state:
		if string(m.Payload) != "offline" {
			t.Fatalf("STATE %q, want the latest (offline)", m.Payload)
		}
	default:
		t.Fatal("no STATE after a command flood")
	}
	select {
	case m := <-b.state:
		t.Fatalf("a superseded STATE was kept: %q", m.Payload)
	default:
	}
	if len(b.cmds) != spCommandQueue {
		t.Fatalf("%d commands queued, want %d", len(b.cmds), spCommandQueue)
	}
}

// At most one rebirth is in progress; the requests during it coalesce
// into one rebirth after it.
func TestRebirthGate(t *testing.T) {
	type step struct {
		op   string // "request" or "finished"
		want bool   // start a rebirth now
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"one", []step{{"request", true}, {"finished", false}, {"request", true}}},
		{"flood", []step{{"request", true}, {"request", false}, {"request", false}, {"request", false},
			{"finished", true}, {"finished", false}}},
		{"request after the coalesced one started", []step{{"request", true}, {"request", false},
			{"finished", true}, {"request", false}, {"finished", true}, {"finished", false}}},
		{"finished when idle", []step{{"finished", false}, {"request", true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var g rebirthGate
			for i, s := range tc.steps {
				var got bool
				if s.op == "request" {
					got = g.request()
				} else {
					got = g.finished()
				}
				if got != s.want {
					t.Fatalf("step %d (%s): start %v, want %v", i, s.op, got, s.want)
				}
			}
		})
	}
}
