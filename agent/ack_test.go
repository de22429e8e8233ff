package agent

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/floorhub/floorhub/command"
	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/store"
)

// activeAlert waits for the agent's one active alert and returns it.
func activeAlert(t *testing.T, r *running) store.Record {
	t.Helper()
	var rec store.Record
	testkit.Eventually(t, "an active alert", 10*time.Second, func() bool {
		r.a.viewMu.Lock()
		defer r.a.viewMu.Unlock()
		for _, a := range r.a.alerts {
			rec = a
		}
		return len(r.a.alerts) == 1
	})
	return rec
}

// readType reads until a message of type typ.
func readType(t *testing.T, ws *websocket.Conn, typ string) map[string]any {
	t.Helper()
	for {
		if m := readMsg(t, ws); m["type"] == typ {
			return m
		}
	}
}

// An operator acknowledges an alert on one dashboard: the other sees it
// live, the alert stays acknowledged across a restart, the center's
// ack_alert command is refused for an acknowledged, unknown or cleared
// alert.
func TestAckAlertEndToEnd(t *testing.T) {
	dir := t.TempDir()
	yaml := `
data_dir: ` + dir + `
listen: ` + anyPort + `
store: {commit_interval: 1h}
devices:
  - {id: 1, driver: sim-env, interval: 100ms}
rules:
  - {name: warm, metric: temperature, above: 0, severity: critical, title: High Temperature Alert}
`
	r := start(t, yaml)
	al := activeAlert(t, r)
	id := al.Alert.ID
	a, b := dialHub(t, r, "/ws/alerts"), dialHub(t, r, "/ws/alerts")
	for _, ws := range []*websocket.Conn{a, b} {
		if m := readMsg(t, ws); m["initial"] != true || m["alert_id"] != float64(id) || m["acknowledged"] != nil {
			t.Fatalf("before the ack: %v", m)
		}
	}
	if err := a.WriteJSON(map[string]any{"type": "ack_alert", "alert_id": id, "note": "fan replaced"}); err != nil {
		t.Fatal(err)
	}
	resp := readType(t, a, "ack_alert_response")
	if resp["success"] != true || resp["acknowledged_by"] != "op" || resp["note"] != "fan replaced" {
		t.Fatalf("response: %v", resp)
	}
	m := readType(t, b, "alert")
	if m["acknowledged"] == nil && m["seq"] == float64(id) {
		m = readType(t, b, "alert") // the raise, live as well as in the snapshot (docs/hub.md)
	}
	if m["alert_id"] != float64(id) || m["acknowledged"] != true || m["acknowledged_by"] != "op" || m["ack_note"] != "fan replaced" ||
		m["seq"] != resp["seq"] || m["acknowledged_at"] != resp["acknowledged_at"] || m["state"] != "active" {
		t.Fatalf("the ack on the other dashboard: %v (response %v)", m, resp)
	}
	// The ack record is committed at once, although telemetry waits an hour.
	recs, err := r.a.store.Read(uint64(resp["seq"].(float64))-1, 1, store.KindAlertAck)
	if err != nil || len(recs) != 1 || recs[0].Ack.By != "op" {
		t.Fatalf("alert_ack record: %v %v", recs, err)
	}
	r.stop(t)

	r = start(t, yaml)
	if al := activeAlert(t, r); al.Alert.ID != id || al.Ack == nil || al.Ack.By != "op" || al.Ack.Note != "fan replaced" {
		t.Fatalf("after a restart: %+v", al)
	}
	c := dialHub(t, r, "/ws/alerts")
	if m := readMsg(t, c); m["initial"] != true || m["acknowledged_by"] != "op" || m["ack_note"] != "fan replaced" ||
		m["acknowledged_at"] != resp["acknowledged_at"] {
		t.Fatalf("initial alert after a restart: %v", m)
	}

	ctx := context.Background()
	cmd := func(args string) error {
		t.Helper()
		_, err := r.a.Command(ctx, command.AckAlert, json.RawMessage(args))
		return err
	}
	for _, tc := range []struct {
		args string
		want error
	}{
		{`{"alert_id":` + jsonNum(id) + `,"user":"center"}`, command.ErrAlreadyAcknowledged},
		{`{"alert_id":999999,"user":"center"}`, command.ErrUnknownAlert},
		{`{"alert_id":` + jsonNum(id) + `,"user":"center","note":"` + strings.Repeat("x", command.MaxAckNote+1) + `"}`, command.ErrNoteTooLong},
		{`{"alert_id":` + jsonNum(id) + `}`, command.ErrBadArgs},
		{`{"user":"center"}`, command.ErrBadArgs},
		{`{"alert_id":1,"user":"center","extra":1}`, command.ErrBadArgs},
	} {
		if err := cmd(tc.args); !errors.Is(err, tc.want) {
			t.Errorf("ack_alert %s: %v, want %v", tc.args, err, tc.want)
		}
	}

	// Cleared meanwhile (as a reload that drops the rule does).
	r.a.mu.Lock()
	_, err = r.a.append(r.a.stamp(store.Record{Kind: store.KindAlert, DeviceID: 1,
		Alert: &store.Alert{ID: id, Rule: "warm", Severity: "critical", State: store.AlertCleared}}))
	r.a.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd(`{"alert_id":` + jsonNum(id) + `,"user":"center"}`); !errors.Is(err, command.ErrAlertCleared) {
		t.Fatalf("ack_alert of a cleared alert: %v", err)
	}
	if m := readType(t, c, "alert"); m["state"] != "cleared" {
		t.Fatalf("clear: %v", m)
	}
	if err := c.WriteJSON(map[string]any{"type": "ack_alert", "alert_id": id}); err != nil {
		t.Fatal(err)
	}
	if m := readType(t, c, "error"); m["error"] != command.CodeAlertCleared || m["request"] != "ack_alert" {
		t.Fatalf("hub ack_alert of a cleared alert: %v", m)
	}
	r.stop(t)
}

func jsonNum(n uint64) string { b, _ := json.Marshal(n); return string(b) }

// A requester whose connection is gone (its context cancelled) still gets
// its acknowledgement committed, and shown only once committed.
func TestAckAlertCommitsWithoutTheRequester(t *testing.T) {
	r := start(t, `
listen: `+anyPort+`
store: {commit_interval: 1h}
devices:
  - {id: 1, driver: sim-env, interval: 100ms}
rules:
  - {name: warm, metric: temperature, above: 0, severity: critical, title: High Temperature Alert}
`)
	id := activeAlert(t, r).Alert.ID
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the dashboard closed before the commit
	rec, err := r.a.AckAlert(ctx, id, "op", "")
	if err != nil {
		t.Fatalf("AckAlert with the requester gone: %v", err)
	}
	if st := r.a.store.Stats(); st.CommittedSeq < rec.Seq {
		t.Fatalf("answered before the commit: committed %d, ack seq %d", st.CommittedSeq, rec.Seq)
	}
	if al := activeAlert(t, r); al.Ack == nil || al.Ack.By != "op" {
		t.Fatalf("the view after the ack: %+v", al)
	}
}

// An acknowledgement whose commit fails is neither answered nor shown, and
// a retry is not refused as already acknowledged. The commit is made to
// fail by a commit timeout too short to wait for it; should the commit win
// that race, the acknowledgement must then be both answered and shown.
func TestAckAlertFailedCommitNotShown(t *testing.T) {
	r := startPrepared(t, `
listen: `+anyPort+`
store: {commit_interval: 1h}
devices:
  - {id: 1, driver: sim-env, interval: 100ms}
rules:
  - {name: warm, metric: temperature, above: 0, severity: critical, title: High Temperature Alert}
`, nil, func(a *Agent) { a.ackCommitTimeout = time.Nanosecond })
	id := activeAlert(t, r).Alert.ID
	ws := dialHub(t, r, "/ws/alerts")
	if m := readMsg(t, ws); m["initial"] != true || m["acknowledged"] != nil {
		t.Fatalf("before the ack: %v", m)
	}
	_, err := r.a.AckAlert(context.Background(), id, "op", "")
	al := activeAlert(t, r)
	switch {
	case err == nil && (al.Ack == nil || al.Ack.By != "op"):
		t.Fatalf("answered but not shown: %+v", al)
	case err != nil && al.Ack != nil:
		t.Fatalf("shown although the commit failed (%v): %+v", err, al)
	case err != nil && !errors.Is(err, context.DeadlineExceeded):
		t.Fatalf("AckAlert: %v, want a commit timeout", err)
	case err != nil:
		// The dashboard got nothing: the next alert message it reads is
		// the successful retry's.
		r.a.mu.Lock()
		r.a.ackCommitTimeout = 0
		r.a.mu.Unlock()
		if _, err := r.a.AckAlert(context.Background(), id, "op2", ""); err != nil {
			t.Fatalf("retry after a failed commit: %v", err)
		}
		m := readType(t, ws, "alert")
		if m["acknowledged"] == nil && m["state"] == "active" && m["seq"] == float64(id) {
			m = readType(t, ws, "alert") // the raise, live too
		}
		if m["acknowledged_by"] != "op2" {
			t.Fatalf("the dashboard's first acknowledgement: %v, want the retry's", m)
		}
	default:
		t.Log("the commit beat the 1 ns timeout; answered and shown")
	}
}
