package hub

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/floorhub/floorhub/command"
	"github.com/floorhub/floorhub/store"
)

// storeAcker does with an ack what the agent does: it appends the
// alert_ack record, marks the alert in the state, then publishes.
type storeAcker struct {
	agentState
	s *store.Store
	h *Hub
}

func (a *storeAcker) AckAlert(_ context.Context, id uint64, user, note string) (store.Record, error) {
	a.mu.Lock()
	r, ok := a.active[id]
	a.mu.Unlock()
	switch {
	case !ok:
		return store.Record{}, fmt.Errorf("%w: no alert %d", command.ErrUnknownAlert, id)
	case len(note) > command.MaxAckNote:
		return store.Record{}, fmt.Errorf("%w: %w", command.ErrBadArgs, command.ErrNoteTooLong)
	}
	al := *r.Alert
	rec, err := a.s.Append(store.Record{Kind: store.KindAlertAck, DeviceID: r.DeviceID, TS: t0.Add(time.Hour), ClockSynced: true,
		Alert: &al, Ack: &store.AlertAck{By: user, Note: note, Raised: r.TS}})
	if err != nil {
		return rec, err
	}
	a.mu.Lock()
	k := *rec.Ack
	r.Ack = &k
	a.active[id] = r
	a.mu.Unlock()
	a.h.Publish(rec)
	return rec, nil
}

func checkAcked(t *testing.T, m map[string]any, id, seq uint64, initial bool) {
	t.Helper()
	if m["alert_id"] != float64(id) || m["state"] != "active" || m["acknowledged"] != true || m["acknowledged_by"] != "alice" ||
		m["acknowledged_at"] != "2026-01-02T04:04:05Z" || m["ack_note"] != "fan replaced" || m["title"] != "High Temperature Alert" ||
		m["timestamp"] != stamp(t0.Add(time.Duration(id)*time.Millisecond)) || seqOf(m) != seq || (m["initial"] == true) != initial {
		t.Fatalf("acknowledged alert %d (seq %d, initial %v): %v", id, seq, initial, m)
	}
}

// An ack_alert from one dashboard reaches every alerts subscriber live,
// the initial alerts of a later one and a resume; refusals are errors
// naming the cause.
func TestAckAlert(t *testing.T) {
	s := openStore(t)
	st := &storeAcker{s: s}
	th := newTestHub(t, func(o *Options) { o.State, o.Replay, o.Acker = st, s, st })
	st.h = th.Hub
	raised, err := s.Append(alert(0, 1, "critical", "temp_high"))
	if err != nil {
		t.Fatal(err)
	}
	raised.TS = t0.Add(time.Duration(raised.Seq) * time.Millisecond) // as alert() stamps
	st.publish(th.Hub, raised)
	id := raised.Seq
	eventually(t, "the raise's fan-out", func() bool { return th.lastSeq.Load() == id })

	a, b := th.login(t, "/ws", "alice"), th.login(t, "/ws", "bob")
	for _, c := range []*tclient{a, b} {
		c.send(map[string]any{"type": "subscribe", "channel": "alerts"})
		c.readType("subscribed")
		if m := c.readType("alert"); m["initial"] != true || m["acknowledged"] != nil {
			t.Fatalf("before the ack: %v", m)
		}
	}
	a.send(map[string]any{"type": "ack_alert", "alert_id": id, "note": "fan replaced"})
	var resp, upd map[string]any
	for resp == nil || upd == nil {
		switch m := a.read(); m["type"] {
		case "ack_alert_response":
			resp = m
		case "alert":
			upd = m
		default:
			t.Fatalf("after ack_alert: %v", m)
		}
	}
	ackSeq := seqOf(resp)
	if resp["success"] != true || resp["alert_id"] != float64(id) || resp["acknowledged_by"] != "alice" ||
		resp["note"] != "fan replaced" || ackSeq <= id {
		t.Fatalf("response: %v", resp)
	}
	checkAcked(t, upd, id, ackSeq, false)
	checkAcked(t, b.readType("alert"), id, ackSeq, false)

	// A later subscriber sees it in its initial alerts; a resume replays
	// the raise and the ack.
	c := th.login(t, "/ws", "carol")
	c.send(map[string]any{"type": "subscribe", "channel": "alerts"})
	c.readType("subscribed")
	checkAcked(t, c.readType("alert"), id, 0, true)
	d := th.login(t, "/ws", "dave")
	d.send(map[string]any{"type": "subscribe", "channel": "alerts", "since": 0})
	d.readType("subscribed")
	d.readType("alert") // initial
	if m := d.readType("alert"); seqOf(m) != id || m["acknowledged"] != nil {
		t.Fatalf("replayed raise: %v", m)
	}
	checkAcked(t, d.readType("alert"), id, ackSeq, false)

	for _, tc := range []struct {
		msg  map[string]any
		code string
	}{
		{map[string]any{"type": "ack_alert", "alert_id": 999}, command.CodeUnknownAlert},
		{map[string]any{"type": "ack_alert", "alert_id": id, "note": strings.Repeat("x", command.MaxAckNote+1)}, command.CodeNoteTooLong},
		{map[string]any{"type": "ack_alert"}, codeInvalidMessage},
		{map[string]any{"type": "ack_alert", "alert_id": "7"}, codeInvalidMessage},
		{map[string]any{"type": "ack_alert", "alert_id": -1}, codeInvalidMessage},
	} {
		b.send(tc.msg)
		if m := b.readType("error"); m["error"] != tc.code || m["message"] == "" {
			t.Fatalf("%v: %v, want %s", tc.msg, m, tc.code)
		}
	}
}
