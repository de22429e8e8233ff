package store

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// longMetric is longer than a dictionary entry may be: stored inline.
var longMetric = strings.Repeat("flow_rate_", 8)

// fillHistory appends n seconds of readings of three devices, with the
// quirks the history scan must survive, and commits them.
func fillHistory(t testing.TB, s *Store, n int) {
	t.Helper()
	for i := range n {
		ts := t0.Add(time.Duration(i) * time.Second)
		for dev := 1; dev <= 3; dev++ {
			r := tele(dev, 20+float64(i%97)/10+float64(dev))
			r.TS = ts.Add(time.Duration(dev-1) * 300 * time.Millisecond)
			switch {
			case dev == 2 && i%50 == 0:
				r.Metrics[0].Value = math.NaN() // left out of the aggregates, still matched
			case dev == 3:
				r.Metrics = append([]Metric{{Name: longMetric, Value: float64(i), Unit: "l/min"}}, r.Metrics...)
			}
			if i == 1800 && dev == 1 {
				r.TS = ts.Add(-30 * time.Second) // a clock stepped back a little
			}
			if _, err := s.Append(r); err != nil {
				t.Fatal(err)
			}
		}
		if i%600 == 0 {
			if _, err := s.Append(raise(1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// naiveHistory decodes every record: what History must agree with.
func naiveHistory(t testing.TB, s *Store, q HistoryQuery) History {
	t.Helper()
	var h History
	for after := uint64(0); ; {
		recs, err := s.Read(after, 4096, KindTelemetry)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return h
		}
		h = aggregate(recs, q, h)
		after = recs[len(recs)-1].Seq
	}
}

// aggregate adds the records to h (which it makes if it has no buckets
// yet), the plain way.
func aggregate(recs []Record, q HistoryQuery, h History) History {
	from, to := q.From.UnixNano(), q.To.UnixNano()
	step := (to - from + int64(q.Buckets) - 1) / int64(q.Buckets)
	h.Step = time.Duration(step)
	bs := make([]Bucket, q.Buckets)
	for _, b := range h.Buckets {
		bs[(b.Start.UnixNano()-from)/step] = b
	}
	h.Buckets = nil
	for _, r := range recs {
		ts := r.TS.UnixNano()
		if r.DeviceID != q.DeviceID || ts < from || ts >= to {
			continue
		}
		for _, m := range r.Metrics {
			if m.Name != q.Metric {
				continue
			}
			h.Matched++
			h.Unit = m.Unit
			if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
				break
			}
			b := &bs[(ts-from)/step]
			if b.Count == 0 || m.Value < b.Min {
				b.Min = m.Value
			}
			if b.Count == 0 || m.Value > b.Max {
				b.Max = m.Value
			}
			b.Sum += m.Value
			b.Count++
			break
		}
	}
	for i := range bs {
		if bs[i].Count > 0 {
			bs[i].Start = time.Unix(0, from+int64(i)*step).UTC()
			h.Buckets = append(h.Buckets, bs[i])
		}
	}
	return h
}

// readAllT returns every telemetry record.
func readAllT(t testing.TB, s *Store) []Record {
	t.Helper()
	recs, err := s.Read(0, 1<<20, KindTelemetry)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestHistory(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "h.db"), &Options{CommitInterval: time.Hour})
	const n = 2 * 3600
	fillHistory(t, s, n)
	all := readAllT(t, s)
	for _, q := range []HistoryQuery{
		{DeviceID: 1, Metric: "temperature", From: t0, To: t0.Add(n * time.Second), Buckets: 100},
		{DeviceID: 1, Metric: "temperature", From: t0.Add(1780 * time.Second), To: t0.Add(1800 * time.Second), Buckets: 20}, // the stepped-back record
		{DeviceID: 2, Metric: "temperature", From: t0.Add(time.Hour), To: t0.Add(time.Hour + 15*time.Minute), Buckets: 7},
		{DeviceID: 3, Metric: longMetric, From: t0.Add(-time.Hour), To: t0.Add(time.Hour), Buckets: 1},
		{DeviceID: 3, Metric: "humidity", From: t0.Add(time.Hour), To: t0.Add(5 * time.Hour), Buckets: 1000},
		{DeviceID: 1, Metric: "pressure", From: t0, To: t0.Add(time.Hour), Buckets: 10},    // no such metric
		{DeviceID: 9, Metric: "temperature", From: t0, To: t0.Add(time.Hour), Buckets: 10}, // no such device
		{DeviceID: 1, Metric: "temperature", From: t0.Add(-48 * time.Hour), To: t0.Add(-47 * time.Hour), Buckets: 10},
		{DeviceID: 1, Metric: "temperature", From: t0.Add(48 * time.Hour), To: t0.Add(49 * time.Hour), Buckets: 10},
	} {
		got, err := s.History(context.Background(), q)
		if err != nil {
			t.Fatalf("%+v: %v", q, err)
		}
		want := aggregate(all, q, History{})
		scanned := got.Scanned
		got.Scanned = 0
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%+v:\n got %+v\nwant %+v", q, got, want)
		}
		// The scan reads the window (and its slack), not the whole log.
		if window := int(q.To.Sub(q.From)/time.Second+2*60+2) * 3; scanned > window+window/10 {
			t.Errorf("%+v: %d records scanned, the window holds about %d", q, scanned, window)
		}
	}
	// The stepped-back record is found, in its own bucket.
	h, _ := s.History(context.Background(), HistoryQuery{DeviceID: 1, Metric: "temperature", From: t0.Add(1770 * time.Second), To: t0.Add(1771 * time.Second), Buckets: 1})
	if h.Matched != 2 || h.Unit != "°C" {
		t.Fatalf("at 1770 s: %+v, want the reading of 1770 s and the one of 1800 s stamped 30 s early", h)
	}

	for _, q := range []HistoryQuery{
		{DeviceID: 1, Metric: "temperature", From: t0, To: t0, Buckets: 10},
		{DeviceID: 1, Metric: "temperature", From: t0, To: t0.Add(-time.Second), Buckets: 10},
		{DeviceID: 1, Metric: "temperature", From: t0, To: t0.Add(time.Hour), Buckets: 0},
		{DeviceID: 1, Metric: "temperature", From: t0, To: t0.Add(time.Hour), Buckets: MaxBuckets + 1},
		{DeviceID: 1, Metric: "temperature", From: time.Unix(0, math.MinInt64+1), To: time.Unix(0, math.MaxInt64), Buckets: 1},
		{DeviceID: 1, Metric: "temperature", From: time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), To: t0, Buckets: 1},
	} {
		if _, err := s.History(context.Background(), q); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", q, err)
		}
	}
}

// An empty store, and one closed: no panic, a clear answer.
func TestHistoryEmptyAndClosed(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "h.db"), nil)
	q := HistoryQuery{DeviceID: 1, Metric: "temperature", From: t0, To: t0.Add(time.Hour), Buckets: 10}
	if h, err := s.History(context.Background(), q); err != nil || len(h.Buckets) != 0 || h.Scanned != 0 {
		t.Fatalf("empty store: %+v %v", h, err)
	}
	s.Close()
	if _, err := s.History(context.Background(), q); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed store: %v", err)
	}
}

// cancelAfter is a context whose Err reports Canceled from its n-th call
// on: the scan's looks at it, counted.
type cancelAfter struct {
	context.Context
	n, calls int
}

func (c *cancelAfter) Err() error {
	c.calls++
	if c.calls >= c.n {
		return context.Canceled
	}
	return nil
}

// A cancelled context stops the scan where it next looks (every
// historyCheckEvery records), with ctx.Err().
func TestHistoryCancelled(t *testing.T) {
	defer func(n int) { historyCheckEvery = n }(historyCheckEvery)
	historyCheckEvery = 16
	s := openT(t, filepath.Join(t.TempDir(), "h.db"), &Options{CommitInterval: time.Hour})
	fillHistory(t, s, 600)
	q := HistoryQuery{DeviceID: 1, Metric: "temperature", From: t0, To: t0.Add(600 * time.Second), Buckets: 10}

	whole := &cancelAfter{Context: context.Background(), n: math.MaxInt}
	h, err := s.History(whole, q)
	if err != nil || h.Scanned < 10*historyCheckEvery {
		t.Fatalf("not cancelled: %d scanned, %v", h.Scanned, err)
	}
	if want := 1 + h.Scanned/historyCheckEvery; whole.calls != want {
		t.Fatalf("the context was looked at %d times over %d records, want %d", whole.calls, h.Scanned, want)
	}
	for _, n := range []int{1, 2, 5} { // before the scan, after 16 records, after 64
		ctx := &cancelAfter{Context: context.Background(), n: n}
		if h, err := s.History(ctx, q); !errors.Is(err, context.Canceled) || len(h.Buckets) != 0 {
			t.Fatalf("cancelled at look %d: %+v %v", n, h, err)
		}
		if ctx.calls != n {
			t.Fatalf("cancelled at look %d: the scan went on to look %d", n, ctx.calls)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.History(ctx, q); !errors.Is(err, context.Canceled) {
		t.Fatalf("a context cancelled before: %v", err)
	}
}
