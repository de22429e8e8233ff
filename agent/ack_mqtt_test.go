package agent

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/floorhub/floorhub/internal/testkit"
)

// The center acknowledges an alert with the command ack_alert over a real
// mosquitto: the result comes on cmd_result, the alert_ack record on
// alerts/ack (not on alerts), and a dashboard sees the acknowledgement.
func TestAckAlertOverMQTT(t *testing.T) {
	r, c := startOverMQTT(t, `
devices:
  - {id: 1, driver: sim-env, interval: 100ms}
rules:
  - {name: warm, metric: temperature, above: 0, severity: critical, title: High Temperature Alert}
`)
	id := activeAlert(t, r).Alert.ID
	dash := dialHub(t, r, "/ws/alerts")

	var acks []map[string]any
	var alertKinds []string
	type batch struct {
		Records []map[string]any `json:"records"`
	}
	c.subscribe("floorhub/gw-1/alerts/ack", func(m paho.Message) {
		var b batch
		if err := json.Unmarshal(m.Payload(), &b); err != nil {
			t.Errorf("alerts/ack: %v: %s", err, m.Payload())
		}
		acks = append(acks, b.Records...)
	})
	c.subscribe("floorhub/gw-1/alerts", func(m paho.Message) {
		var b batch
		json.Unmarshal(m.Payload(), &b)
		for _, r := range b.Records {
			alertKinds = append(alertKinds, r["kind"].(string))
		}
	})
	idArg := strconv.FormatUint(id, 10)
	for _, p := range []string{
		`{"request_id":"a-1","alert_id":` + idArg + `,"user":"control room","note":"seen from the center"}`,
		`{"request_id":"a-2","alert_id":` + idArg + `,"user":"control room"}`,
		`{"request_id":"a-3","alert_id":999999,"user":"control room"}`,
	} {
		// One at a time: a-2 must find a-1's acknowledgement.
		c.command("ack_alert", p)
		var rid struct {
			RequestID string `json:"request_id"`
		}
		json.Unmarshal([]byte(p), &rid)
		testkit.Eventually(t, "the result of "+rid.RequestID, 20*time.Second, func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.results[rid.RequestID] != nil
		})
	}
	testkit.Eventually(t, "the alert_ack record on alerts/ack", 20*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(acks) >= 1
	})
	c.mu.Lock()
	res := c.results["a-1"]
	out, _ := res["result"].(map[string]any)
	if res["ok"] != true || out["alert_id"] != float64(id) || out["acknowledged_by"] != "control room" || out["note"] != "seen from the center" {
		t.Errorf("a-1: %v", res)
	}
	for rid, code := range map[string]string{"a-2": "already_acknowledged", "a-3": "unknown_alert"} {
		if res := c.results[rid]; res["ok"] != false || res["error"] != code {
			t.Errorf("%s: %v, want %s", rid, res, code)
		}
	}
	ack := acks[0]
	a, _ := ack["ack"].(map[string]any)
	al, _ := ack["alert"].(map[string]any)
	if ack["kind"] != "alert_ack" || ack["seq"] != out["seq"] || a["acknowledged_by"] != "control room" ||
		a["note"] != "seen from the center" || al["alert_id"] != float64(id) || al["state"] != "active" {
		t.Errorf("alerts/ack record: %v", ack)
	}
	for _, k := range alertKinds {
		if k != "alert" {
			t.Errorf("a record of kind %q on the alerts topic", k)
		}
	}
	c.mu.Unlock()

	m := readType(t, dash, "alert")
	for m["acknowledged"] == nil {
		m = readType(t, dash, "alert") // the raise, live as well as in the snapshot
	}
	if m["acknowledged_by"] != "control room" || m["ack_note"] != "seen from the center" {
		t.Fatalf("the center's acknowledgement on the dashboard: %v", m)
	}
}
