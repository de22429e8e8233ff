package uplink

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/floorhub/floorhub/store"
)

// An alert_ack record carries the alert as raised and the ack.
func TestAppendRecordAlertAck(t *testing.T) {
	raised := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	at := raised.Add(90 * time.Second)
	r := store.Record{Seq: 12, Kind: store.KindAlertAck, DeviceID: 3, TS: at, BootID: "b1", Mono: 45, ClockSynced: true,
		Alert: &store.Alert{ID: 8, Rule: "high_temp", Severity: "critical", Title: "Hot", Message: "too hot",
			State: store.AlertActive, Threshold: 30, Actual: 32.5, Metric: "temperature"},
		Ack: &store.AlertAck{By: "alice", Note: "fan \"replaced\"\n", At: at, Raised: raised}}
	var got map[string]any
	if err := json.Unmarshal(AppendRecord(nil, &r), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"seq": 12.0, "kind": "alert_ack", "device_id": 3.0, "ts": "2026-11-23T09:01:30Z",
		"boot_id": "b1", "mono_ns": 45.0, "clock_synced": true,
		"alert": map[string]any{"alert_id": 8.0, "alert_type": "high_temp", "severity": "critical",
			"title": "Hot", "message": "too hot", "state": "active", "metric": "temperature",
			"metadata": map[string]any{"threshold_value": 30.0, "actual_value": 32.5}},
		"ack": map[string]any{"acknowledged_by": "alice", "acknowledged_at": "2026-11-23T09:01:30Z",
			"note": "fan \"replaced\"\n", "raised_at": "2026-11-23T09:00:00Z"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %#v\nwant %#v", got, want)
	}
}
