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
