package websocket

import (
	"testing"
	"time"

	"github.com/floorhub/floorhub/store"
	"github.com/floorhub/floorhub/uplink"
)

// BenchmarkBatchOverhead measures what this package adds per record
// message (finding the last seq, wrapping the envelope) against encoding
// the batch itself (uplink.AppendBatch), for 100 telemetry records:
//
//	go test -run '^$' -bench BatchOverhead ./uplink/websocket
func BenchmarkBatchOverhead(b *testing.B) {
	recs := make([]store.Record, 100)
	for i := range recs {
		recs[i] = store.Record{Seq: uint64(1000 + i), Kind: store.KindTelemetry, DeviceID: 1 + i%4, TS: time.Now(),
			BootID: "0f6c1f7e", Mono: int64(i) * 1e9, ClockSynced: true,
			Metrics: []store.Metric{{Name: "temperature", Value: 21.5, Unit: "°C"}, {Name: "humidity", Value: 40.25, Unit: "%"}}}
	}
	payload := uplink.AppendBatch(nil, "gw-1", recs)
	b.Run("baseline-AppendBatch", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		buf := make([]byte, 0, len(payload))
		for b.Loop() {
			buf = uplink.AppendBatch(buf[:0], "gw-1", recs)
		}
	})
	b.Run("lastSeq+envelope", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			if _, err := lastSeq(payload); err != nil {
				b.Fatal(err)
			}
			frame := make([]byte, 0, len(payload)+128)
			frame = append(frame, `{"version":"3","msg_type":"msg","target":"group","cmd":"RECORDS","msg":"telemetry","payload":`...)
			frame = append(frame, payload...)
			_ = append(frame, '}')
		}
	})
}

func TestLastSeq(t *testing.T) {
	ts := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	recs := []store.Record{
		{Seq: 7, Kind: store.KindTelemetry, TS: ts, BootID: `{"seq":99`, Metrics: []store.Metric{{Name: "seq", Value: 3, Unit: `{"seq":98,`}}},
		{Seq: 12, Kind: store.KindTelemetry, TS: ts, Metrics: []store.Metric{{Name: "seq", Value: 1}, {Name: `x{"seq":97`, Value: 2}}},
	}
	for n := 1; n <= len(recs); n++ {
		got, err := lastSeq(uplink.AppendBatch(nil, "gw", recs[:n]))
		if err != nil || got != recs[n-1].Seq {
			t.Errorf("lastSeq of %d records = %d, %v; want %d", n, got, err, recs[n-1].Seq)
		}
	}
	if _, err := lastSeq(uplink.AppendBatch(nil, "gw", nil)); err == nil {
		t.Error("lastSeq of an empty batch: no error")
	}
	if _, err := lastSeq([]byte("garbage")); err == nil {
		t.Error("lastSeq of garbage: no error")
	}
}
