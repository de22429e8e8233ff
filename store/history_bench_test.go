package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkHistory24h is the dashboard's 24 h chart: one metric of one of
// 10 devices read every second (864,000 records in the window, after 2 h
// of older records), downsampled to 500 points.
//
//	seek:     Store.History (binary search by TS, other devices skipped
//	          by their header, one metric decoded)
//	fullscan: the baseline, Read from the start decoding every record and
//	          aggregating those of the device and window
//
// Each reports ms per query and the records it looked at.
func BenchmarkHistory24h(b *testing.B) {
	const devices, before, window = 10, 2 * 3600, 24 * 3600
	s := openT(b, filepath.Join(b.TempDir(), "h.db"), &Options{CommitInterval: time.Hour, MaxBatch: 1 << 16})
	start := time.Now()
	for i := range before + window {
		ts := t0.Add(time.Duration(i) * time.Second)
		for dev := 1; dev <= devices; dev++ {
			r := Record{Kind: KindTelemetry, DeviceID: dev, TS: ts.Add(time.Duration(dev) * 10 * time.Millisecond),
				BootID: "0c6ab1a6-1d5e-4b0a-9a52-3c1e1f0e2b7d", Mono: int64(i) * 1e9, ClockSynced: true,
				Metrics: []Metric{{Name: "temperature", Value: 21 + float64(i%600)/100, Unit: "°C"},
					{Name: "humidity", Value: 45, Unit: "%"}, {Name: "pressure", Value: 1013.2, Unit: "hPa"}}}
			if _, err := s.Append(r); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d records appended in %v", devices*(before+window), time.Since(start).Round(time.Millisecond))
	q := HistoryQuery{DeviceID: 7, Metric: "temperature", From: t0.Add(before * time.Second),
		To: t0.Add((before + window) * time.Second), Buckets: 500}
	b.Run("seek", func(b *testing.B) {
		var h History
		for b.Loop() {
			var err error
			if h, err = s.History(context.Background(), q); err != nil {
				b.Fatal(err)
			}
		}
		if h.Matched != window {
			b.Fatalf("matched %d, want %d", h.Matched, window)
		}
		b.ReportMetric(float64(h.Scanned), "scanned")
	})
	b.Run("fullscan", func(b *testing.B) {
		var scanned int
		var h History
		for b.Loop() {
			scanned = 0
			h = naiveHistory(b, s, q)
			scanned = devices * (before + window)
		}
		if h.Matched != window {
			b.Fatalf("matched %d, want %d", h.Matched, window)
		}
		b.ReportMetric(float64(scanned), "scanned")
	})
}
