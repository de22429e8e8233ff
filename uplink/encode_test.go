package uplink

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/floorhub/floorhub/store"
)

func TestAppendBatchIsTheDocumentedJSON(t *testing.T) {
	ts := time.Date(2026, 11, 23, 9, 0, 0, 123000000, time.FixedZone("CET", 3600))
	recs := []store.Record{
		{Seq: 7, Kind: store.KindTelemetry, DeviceID: 3, TS: ts, BootID: "b1", Mono: 42, ClockSynced: true,
			Metrics: []store.Metric{{Name: "temperature", Value: 23.5, Unit: "°C"}, {Name: "humidity", Value: math.NaN(), Unit: "%"}}},
		{Seq: 8, Kind: store.KindAlert, DeviceID: 3, TS: ts, BootID: "b1", Mono: 43,
			Alert: &store.Alert{ID: 8, Rule: "high_temp", Severity: "critical", Title: "Hot", Message: "too \"hot\"\n",
				State: store.AlertActive, Threshold: 30, Actual: 32.5, Metric: "temperature"}},
		{Seq: 9, Kind: store.KindDeviceStatus, DeviceID: 4, TS: ts, BootID: "b1", Mono: 44, Restamped: true,
			Status: &store.DeviceStatus{Old: "online", New: "offline", Reason: "no answer"}},
		{Seq: 10, Kind: store.KindChat, TS: ts, BootID: "b1", Mono: 45, ClockSynced: true,
			Chat: &store.ChatMessage{ChatID: 2, From: -1, FromName: "control room", To: 0, Text: "line 3: \"stop\""}},
	}
	b := AppendBatch(nil, "gw-1", recs)
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	want := map[string]any{
		"gateway_id": "gw-1",
		"records": []any{
			map[string]any{"seq": 7.0, "kind": "telemetry", "device_id": 3.0, "ts": "2026-11-23T08:00:00.123Z",
				"boot_id": "b1", "mono_ns": 42.0, "clock_synced": true,
				"metrics": map[string]any{
					"temperature": map[string]any{"value": 23.5, "unit": "°C"},
					"humidity":    map[string]any{"value": nil, "unit": "%"},
				}},
			map[string]any{"seq": 8.0, "kind": "alert", "device_id": 3.0, "ts": "2026-11-23T08:00:00.123Z",
				"boot_id": "b1", "mono_ns": 43.0, "clock_synced": false,
				"alert": map[string]any{"alert_id": 8.0, "alert_type": "high_temp", "severity": "critical",
					"title": "Hot", "message": "too \"hot\"\n", "state": "active", "metric": "temperature",
					"metadata": map[string]any{"threshold_value": 30.0, "actual_value": 32.5}}},
			map[string]any{"seq": 9.0, "kind": "device_status", "device_id": 4.0, "ts": "2026-11-23T08:00:00.123Z",
				"boot_id": "b1", "mono_ns": 44.0, "clock_synced": false, "restamped": true,
				"status": map[string]any{"old_status": "online", "new_status": "offline", "reason": "no answer", "last_seen": nil}},
			map[string]any{"seq": 10.0, "kind": "chat", "device_id": 0.0, "ts": "2026-11-23T08:00:00.123Z",
				"boot_id": "b1", "mono_ns": 45.0, "clock_synced": true,
				"chat": map[string]any{"chat_id": 2.0, "sender_id": -1.0, "sender_name": "control room", "receiver_id": 0.0, "message": "line 3: \"stop\""}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %#v\nwant %#v", got, want)
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\" back\\slash", "ctl\x00\x01\x1f\t\r\n", "°C µs 温度",
		"bad\xffutf8\xc3", "line\u2028sep\u2029", "<html>&"} {
		b := appendString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q -> %s: not JSON: %v", s, b, err)
		}
		std, _ := json.Marshal(s)
		var stdBack string
		json.Unmarshal(std, &stdBack)
		if back != stdBack {
			t.Fatalf("%q: decodes to %q, encoding/json's to %q", s, back, stdBack)
		}
	}
}

func TestAppendFloat(t *testing.T) {
	for _, f := range []float64{0, -0.5, 1e-7, 123456789.25, 1e21, -3e300, math.SmallestNonzeroFloat64} {
		b := appendFloat(nil, f)
		var back float64
		if err := json.Unmarshal(b, &back); err != nil || back != f {
			t.Fatalf("%v -> %s -> %v, %v", f, b, back, err)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if b := appendFloat(nil, f); string(b) != "null" {
			t.Fatalf("%v -> %s, want null", f, b)
		}
	}
}

func BenchmarkAppendBatch(b *testing.B) {
	recs := make([]store.Record, 500)
	for i := range recs {
		recs[i] = store.Record{Seq: uint64(i + 1), Kind: store.KindTelemetry, DeviceID: i % 8, TS: time.Now(),
			BootID: "6b1f2c9e", Mono: int64(i) * 1e6, ClockSynced: true,
			Metrics: []store.Metric{{Name: "temperature", Value: 21.25, Unit: "°C"}}}
	}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendBatch(buf[:0], "gw-1", recs)
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
}

// FuzzAppendRecord: whatever the strings and numbers, the message is valid
// JSON that reads back to the same values.
func FuzzAppendRecord(f *testing.F) {
	f.Add("temperature", "°C", "boot", 21.5, int64(7))
	f.Add("a\"b\\c\x00\x1f", "\xff\xfe", "\u2028", math.Inf(1), int64(-1))
	f.Fuzz(func(t *testing.T, name, unit, boot string, v float64, mono int64) {
		r := store.Record{Seq: 1, Kind: store.KindTelemetry, DeviceID: 2, TS: time.Unix(0, mono), BootID: boot, Mono: mono,
			Metrics: []store.Metric{{Name: name, Value: v, Unit: unit}}}
		b := AppendRecord(nil, &r)
		var back struct {
			BootID  string `json:"boot_id"`
			Mono    int64  `json:"mono_ns"`
			Metrics map[string]struct {
				Value *float64
				Unit  string
			}
		}
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, b)
		}
		valid := func(s string) string { // what encoding/json makes of s
			var out string
			raw, _ := json.Marshal(s)
			json.Unmarshal(raw, &out)
			return out
		}
		m, ok := back.Metrics[valid(name)]
		if back.BootID != valid(boot) || back.Mono != mono || !ok || m.Unit != valid(unit) {
			t.Fatalf("read back %+v from %s", back, b)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			if m.Value != nil {
				t.Fatalf("%v encoded as %v", v, *m.Value)
			}
		} else if m.Value == nil || *m.Value != v {
			t.Fatalf("%v read back as %v", v, m.Value)
		}
	})
}
