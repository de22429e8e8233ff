package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func TestRestampFixesOnlyThisBootsUnsyncedRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s, err := Open(path, &Options{CommitInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tele := func(boot string, ts time.Time, mono int64, synced bool) Record {
		r, err := s.Append(Record{Kind: KindTelemetry, DeviceID: 1, TS: ts, BootID: boot, Mono: mono, ClockSynced: synced,
			Metrics: []Metric{{Name: "temperature", Value: 20, Unit: "°C"}}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	epoch := time.Unix(60, 0) // a Pi without RTC
	old := tele("boot-a", epoch, 1e9, false)
	a := tele("boot-b", epoch.Add(time.Second), 5e9, false)
	st, err := s.Append(Record{Kind: KindDeviceStatus, DeviceID: 1, TS: epoch.Add(2 * time.Second), BootID: "boot-b", Mono: 6e9,
		Status: &DeviceStatus{Old: StatusOffline, New: StatusOnline}})
	if err != nil {
		t.Fatal(err)
	}
	synced := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	b := tele("boot-b", synced, 7e9, true)

	offset := synced.UnixNano() - 7e9
	n, err := s.Restamp(context.Background(), "boot-b", offset)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("restamped %d records, want 2", n)
	}
	recs, err := s.Read(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint64]Record{}
	for _, r := range recs {
		got[r.Seq] = r
	}
	if r := got[old.Seq]; !r.TS.Equal(epoch) || r.Restamped {
		t.Fatalf("another boot's record changed: %+v", r)
	}
	if r := got[a.Seq]; !r.TS.Equal(synced.Add(-2*time.Second)) || !r.Restamped || r.ClockSynced {
		t.Fatalf("telemetry not restamped: %+v", r)
	}
	if r := got[st.Seq]; !r.TS.Equal(synced.Add(-time.Second)) || !r.Restamped || r.Status.New != StatusOnline {
		t.Fatalf("status not restamped: %+v", r)
	}
	if r := got[b.Seq]; !r.TS.Equal(synced) || r.Restamped {
		t.Fatalf("synced record changed: %+v", r)
	}
	if n, _ := s.Restamp(context.Background(), "boot-b", offset); n != 0 {
		t.Fatalf("second restamp changed %d records", n)
	}
}
