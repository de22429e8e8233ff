package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/floorhub/floorhub/internal/testkit"
)

// quiet discards log lines in tests that expect warnings.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openT(t testing.TB, path string, o *Options) *Store {
	t.Helper()
	if o == nil {
		o = &Options{}
	}
	if o.Logger == nil {
		o.Logger = quiet
	}
	s, err := Open(path, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

func tele(dev int, v float64) Record {
	return Record{
		Kind: KindTelemetry, DeviceID: dev, TS: t0, BootID: "boot-1", Mono: 12345, ClockSynced: true,
		Metrics: []Metric{{Name: "temperature", Value: v, Unit: "°C"}, {Name: "humidity", Value: 40, Unit: "%"}},
	}
}

func raise(dev int) Record {
	return Record{Kind: KindAlert, DeviceID: dev, TS: t0, ClockSynced: true, Alert: &Alert{
		Rule: "high_temp", Severity: "critical", Title: "Hot", Message: "too hot", State: AlertActive,
		Threshold: 30, Actual: 31.5, Metric: "temperature",
	}}
}

func clearing(dev int, id uint64) Record {
	r := raise(dev)
	r.Alert.State = AlertCleared
	r.Alert.ID = id
	return r
}

func status(dev int) Record {
	return Record{Kind: KindDeviceStatus, DeviceID: dev, TS: t0, ClockSynced: true,
		Status: &DeviceStatus{Old: StatusOnline, New: StatusOffline, Reason: "no answer", LastSeen: t0.Add(-time.Minute)}}
}

func mustAppend(t testing.TB, s *Store, r Record) Record {
	t.Helper()
	r, err := s.Append(r)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return r
}

func flush(t testing.TB, s *Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func TestAppendReadRoundTrip(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "sub", "db"), nil)
	in := []Record{tele(1, 21.5), raise(2), status(3), tele(4, -3)}
	var got []Record
	for i, r := range in {
		r = mustAppend(t, s, r)
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d got seq %d, want %d", i, r.Seq, i+1)
		}
		got = append(got, r)
	}
	if got[1].Alert.ID != got[1].Seq {
		t.Fatalf("raising alert ID %d, want its seq %d", got[1].Alert.ID, got[1].Seq)
	}
	if in[1].Alert.ID != 0 {
		t.Fatal("Append wrote through the caller's Alert pointer")
	}
	// Nothing is readable before the commit... unless the ticker already
	// fired, so only check after Flush.
	flush(t, s)
	out, err := s.Read(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, got) {
		t.Fatalf("Read:\n got %+v\nwant %+v", out, got)
	}
	// Kinds filter and merge order.
	out, _ = s.Read(0, 100, KindAlert, KindDeviceStatus)
	if len(out) != 2 || out[0].Seq != 2 || out[1].Seq != 3 {
		t.Fatalf("events: %+v", out)
	}
	out, _ = s.Read(1, 2)
	if len(out) != 2 || out[0].Seq != 2 || out[1].Seq != 3 {
		t.Fatalf("Read(1,2): %+v", out)
	}
	out, _ = s.Read(0, 100, KindTelemetry)
	if len(out) != 2 || out[0].Seq != 1 || out[1].Seq != 4 {
		t.Fatalf("telemetry: %+v", out)
	}
	if _, err := s.Read(0, 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Read max 0: %v", err)
	}
	if _, err := s.Read(0, 1, Kind(9)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Read kind 9: %v", err)
	}
}

func TestBadRecords(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "db"), nil)
	bad := []Record{
		{Kind: 0},
		{Kind: 7},
		{Kind: KindAlert},
		{Kind: KindDeviceStatus},
		clearing(1, 0),
		func() Record { r := raise(1); r.Alert.State = "weird"; return r }(),
		func() Record { r := tele(1, 1); r.TS = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC); return r }(),
		func() Record { r := tele(1, 1); r.BootID = string(make([]byte, maxRecordBytes)); return r }(),
	}
	for i, r := range bad {
		if _, err := s.Append(r); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad record %d: err %v, want ErrInvalid", i, err)
		}
	}
	if r := mustAppend(t, s, tele(1, 1)); r.Seq != 1 {
		t.Fatalf("bad records spent seqs: next is %d", r.Seq)
	}
	// Zero times survive the round trip.
	r := status(1)
	r.TS = time.Time{}
	r.Status.LastSeen = time.Time{}
	r = mustAppend(t, s, r)
	flush(t, s)
	out, _ := s.Read(1, 1)
	if len(out) != 1 || !out[0].TS.IsZero() || !out[0].Status.LastSeen.IsZero() {
		t.Fatalf("zero times: %+v", out)
	}
}

func TestOptionsInvalid(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		o     Options
		field string
	}{
		{Options{CommitInterval: -1}, "CommitInterval"}, {Options{MaxBatch: -1}, "MaxBatch"}, {Options{MaxBytes: -1}, "MaxBytes"},
		{Options{MaxBytes: 1000}, "MaxBytes"}, {Options{MaxBatch: 1<<20 + 1}, "MaxBatch"}, {Options{MaxAge: -1}, "MaxAge"},
		{Options{OpenTimeout: -1}, "OpenTimeout"},
	} {
		// Open refuses with exactly Validate's error, naming the field.
		verr := c.o.Validate()
		_, err := Open(filepath.Join(dir, "db"), &c.o)
		var fe *FieldError
		if !errors.Is(err, ErrInvalid) || !errors.As(err, &fe) || fe.Field != c.field || verr == nil || verr.Error() != err.Error() {
			t.Errorf("Open(%+v): %v; Validate: %v; want a *FieldError on %s from both", c.o, err, verr, c.field)
		}
	}
	if _, err := Open("", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("Open empty path: %v", err)
	}
}

func TestCursors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s := openT(t, path, nil)
	for i := 0; i < 10; i++ {
		mustAppend(t, s, tele(1, float64(i)))
	}
	if c, err := s.Cursor("mqtt"); err != nil || c != 0 {
		t.Fatalf("fresh cursor: %d, %v", c, err)
	}
	if err := s.SetCursor("mqtt", 7); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCursor("mqtt", 3); err != nil {
		t.Fatalf("backwards SetCursor: %v, want nil (no-op)", err)
	}
	if c, _ := s.Cursor("mqtt"); c != 7 {
		t.Fatalf("cursor moved backwards to %d", c)
	}
	if err := s.SetCursor("mqtt", 11); !errors.Is(err, ErrInvalid) {
		t.Fatalf("SetCursor past last: %v", err)
	}
	if err := s.SetCursor("", 1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty name: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, path, nil)
	if c, _ := s.Cursor("mqtt"); c != 7 {
		t.Fatalf("cursor after reopen: %d", c)
	}
	if c, _ := s.Cursor("ws"); c != 0 {
		t.Fatalf("other consumer: %d", c)
	}
}

func TestCommittedBroadcastAndFlush(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "db"), &Options{CommitInterval: time.Hour})
	ch := s.Committed()
	r := mustAppend(t, s, tele(1, 1))
	select {
	case <-ch:
		t.Fatal("Committed closed before any commit")
	default:
	}
	// Several waiters all see the same broadcast.
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ch
		}()
	}
	if out, _ := s.Read(0, 10); len(out) != 0 {
		t.Fatalf("uncommitted record readable: %+v", out)
	}
	flush(t, s)
	wg.Wait()
	if out, _ := s.Read(0, 10); len(out) != 1 || out[0].Seq != r.Seq {
		t.Fatalf("after Flush: %+v", out)
	}
	if s.Committed() == ch {
		t.Fatal("Committed channel not replaced")
	}
	st := s.Stats()
	if st.LastSeq != 1 || st.CommittedSeq != 1 || st.Records != 1 || st.FirstSeq != 1 || !st.OldestTS.Equal(t0) || st.Commits != 1 {
		t.Fatalf("Stats: %+v", st)
	}
	// Flush with nothing pending returns at once.
	flush(t, s)
	if s.Stats().Commits != 1 {
		t.Fatal("empty Flush committed")
	}
	// A cancelled Flush returns the context's error.
	mustAppend(t, s, tele(1, 2))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Flush(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Flush: %v", err)
	}
}

func TestCommitInterval(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "db"), &Options{CommitInterval: 20 * time.Millisecond})
	ch := s.Committed()
	mustAppend(t, s, tele(1, 1))
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no commit within the interval")
	}
	if out, _ := s.Read(0, 10); len(out) != 1 {
		t.Fatalf("after the interval: %d records", len(out))
	}
}

func TestGroupCommitBatches(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "db"), nil)
	const n = 10000
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/4; i++ {
				mustAppend(t, s, tele(w, float64(i)))
			}
		}()
	}
	wg.Wait()
	flush(t, s)
	st := s.Stats()
	if st.CommittedSeq != n || st.Records != n {
		t.Fatalf("Stats: %+v", st)
	}
	if st.Commits > 10 {
		t.Fatalf("%d commits for %d records: not batching", st.Commits, n)
	}
	t.Logf("%d records in %d commits", n, st.Commits)
	out, _ := s.Read(0, 2*n)
	if len(out) != n {
		t.Fatalf("read %d", len(out))
	}
	for i, r := range out {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
	}
}

func TestBacklog(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "db"), nil)
	if n, ts, err := s.Backlog(0); n != 0 || !ts.IsZero() || err != nil {
		t.Fatalf("empty: %d %v %v", n, ts, err)
	}
	for i := 0; i < 100; i++ {
		r := tele(1, float64(i))
		r.TS = t0.Add(time.Duration(i) * time.Second)
		if i%10 == 0 {
			r = status(1)
			r.TS = t0.Add(time.Duration(i) * time.Second)
		}
		mustAppend(t, s, r)
	}
	flush(t, s)
	check := func(after uint64, want int) {
		t.Helper()
		n, ts, err := s.Backlog(after)
		if err != nil || n != want {
			t.Fatalf("Backlog(%d) = %d, %v; want %d", after, n, err, want)
		}
		if want > 0 && !ts.Equal(t0.Add(time.Duration(after)*time.Second)) {
			t.Fatalf("Backlog(%d) oldest %v", after, ts)
		}
	}
	// Moving forwards, backwards, past the end, and after new commits:
	// the remembered answer must stay exact.
	for _, a := range []uint64{0, 5, 50, 49, 10, 99, 100, 150, 3} {
		check(a, max(0, 100-int(a)))
	}
	for i := 0; i < 20; i++ {
		mustAppend(t, s, tele(1, 0))
	}
	flush(t, s)
	for _, a := range []uint64{3, 0, 110, 120, 60} {
		check2 := max(0, 120-int(a))
		n, _, err := s.Backlog(a)
		if err != nil || n != check2 {
			t.Fatalf("Backlog(%d) = %d, %v; want %d", a, n, err, check2)
		}
	}
}

func TestActiveAlerts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s := openT(t, path, nil)
	a := mustAppend(t, s, raise(1))
	b := mustAppend(t, s, raise(2))
	c := mustAppend(t, s, raise(3))
	mustAppend(t, s, clearing(2, b.Alert.ID))
	flush(t, s)
	act, err := s.ActiveAlerts()
	if err != nil {
		t.Fatal(err)
	}
	if len(act) != 2 || act[0].Seq != a.Seq || act[1].Seq != c.Seq || act[0].Alert.ID != a.Seq {
		t.Fatalf("active: %+v", act)
	}
	s.Close()
	s = openT(t, path, nil)
	if act, _ := s.ActiveAlerts(); len(act) != 2 {
		t.Fatalf("active after reopen: %d", len(act))
	}
}

func TestCloseIdempotentAndAfterClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s := openT(t, path, &Options{CommitInterval: time.Hour})
	for i := 0; i < 5; i++ {
		mustAppend(t, s, tele(1, 1))
	}
	ch := s.Committed()
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); s.Close() }()
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	<-ch // the final commit broadcast
	<-s.Committed()
	if _, err := s.Append(tele(1, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if err := s.Flush(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush after Close: %v", err)
	}
	if _, err := s.Read(0, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if err := s.SetCursor("x", 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("SetCursor after Close: %v", err)
	}
	if _, _, err := s.Backlog(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Backlog after Close: %v", err)
	}
	// Close committed the pending records and the exact ceiling.
	s2 := openT(t, path, nil)
	if st := s2.Stats(); st.CommittedSeq != 5 || st.Records != 5 {
		t.Fatalf("after reopen: %+v", st)
	}
	if sk := s2.Skipped(); len(sk) != 0 {
		t.Fatalf("clean restart skipped %v", sk)
	}
	if r := mustAppend(t, s2, tele(1, 1)); r.Seq != 6 {
		t.Fatalf("next seq after clean restart %d, want 6", r.Seq)
	}
}

func TestBackPressure(t *testing.T) {
	// A queue of 4 x MaxBatch with a writer that commits only on the
	// batch size: Append blocks until the writer drains the queue, and
	// nothing is lost.
	s := openT(t, filepath.Join(t.TempDir(), "db"), &Options{MaxBatch: 8, CommitInterval: time.Hour})
	for i := 0; i < 1000; i++ {
		mustAppend(t, s, tele(1, float64(i)))
	}
	flush(t, s)
	if st := s.Stats(); st.Records != 1000 || st.CommittedSeq != 1000 {
		t.Fatalf("Stats: %+v", st)
	}
}

// Short strings go to the dictionary until it is full, long ones and the
// overflow inline; all of it survives a reopen.
func TestDictionary(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s := openT(t, path, &Options{MaxBatch: 1024})
	long := strings.Repeat("x", maxDictString+1)
	var want []Record
	for i := 0; i < maxDict+500; i++ {
		r := tele(1, float64(i))
		r.Metrics[0].Name = fmt.Sprintf("m%d", i)
		if i%1000 == 0 {
			r.BootID = long
		}
		want = append(want, mustAppend(t, s, r))
	}
	flush(t, s)
	if n := len(s.dict.snapshot()); n != maxDict {
		t.Fatalf("dictionary has %d entries, cap %d", n, maxDict)
	}
	s.Close()
	s = openT(t, path, nil)
	got, err := s.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatal("records differ after a reopen")
	}
}

func TestRecordSize(t *testing.T) {
	// The point of the dictionary: a typical record is small.
	r := tele(3, 21.5)
	r.BootID = "0b5e7d4c-3f7a-4b8e-9c1d-2a6f8e4b7c90"
	d := newDict()
	enc, err := d.encode(nil, &r)
	if err != nil {
		t.Fatal(err)
	}
	if len(enc) > 40 {
		t.Fatalf("a two-metric record takes %d bytes", len(enc))
	}
	t.Logf("two-metric telemetry record: %d bytes", len(enc))
}

// Close returns only after the store's goroutines have exited.
func TestNoGoroutineOutlivesClose(t *testing.T) {
	before := runtime.NumGoroutine()
	for i := 0; i < 10; i++ {
		s, err := Open(filepath.Join(t.TempDir(), "db"), &Options{Logger: quiet, CommitInterval: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		mustAppend(t, s, tele(1, 1))
		s.Backlog(0)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Close waited for the writer to finish its work; the runtime may still
	// be tearing the goroutine down for a moment after its last defer.
	testkit.WaitTrue(5*time.Second, func() bool { return runtime.NumGoroutine() <= before })
	if after := runtime.NumGoroutine(); after > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after:\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}

func TestMaxBytesDefaultAndCap(t *testing.T) {
	o, err := (&Options{}).resolve()
	if err != nil || o.MaxBytes != 256<<20 || o.MaxBatch != 4096 || o.CommitInterval != 10*time.Second || o.OpenTimeout != 5*time.Second {
		t.Fatalf("defaults: %+v %v", o, err)
	}
	o, _ = (&Options{MaxBytes: 3 << 30}).resolve()
	want := int64(3 << 30)
	if strconv.IntSize == 32 {
		want = 3 << 29 // bbolt maps the whole file: keep well inside 2 GiB
	}
	if o.MaxBytes != want {
		t.Fatalf("MaxBytes 3 GiB resolved to %d on a %d-bit build, want %d", o.MaxBytes, strconv.IntSize, want)
	}
}

func TestLastTelemetry(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "fh.db"), nil)
	if _, ok, err := s.LastTelemetry(1, 100); ok || err != nil {
		t.Fatalf("empty store: found %v, %v", ok, err)
	}
	mustAppend(t, s, tele(1, 10))
	mustAppend(t, s, tele(2, 20))
	mustAppend(t, s, tele(1, 11))
	for i := range 50 {
		mustAppend(t, s, tele(2, float64(i)))
	}
	mustAppend(t, s, raise(1)) // events are not telemetry
	flush(t, s)
	rec, ok, err := s.LastTelemetry(1, 100)
	if err != nil || !ok || rec.Seq != 3 || rec.DeviceID != 1 || rec.Metrics[0].Value != 11 {
		t.Fatalf("device 1: %+v %v %v", rec, ok, err)
	}
	if _, ok, _ := s.LastTelemetry(1, 50); ok {
		t.Fatal("device 1 found beyond the scan bound")
	}
	if _, ok, _ := s.LastTelemetry(3, 100); ok {
		t.Fatal("device 3 never reported")
	}
}
