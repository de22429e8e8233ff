package store

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/floorhub/floorhub/internal/testkit"
)

func TestByteCap(t *testing.T) {
	const capBytes = 512 << 10
	path := filepath.Join(t.TempDir(), "db")
	var logs testkit.Buffer
	s := openT(t, path, &Options{MaxBytes: capBytes, MaxBatch: 512, CommitInterval: time.Hour,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	// Two active alerts and a cleared one, early, so they are the oldest.
	a1 := mustAppend(t, s, raise(1))
	a2 := mustAppend(t, s, raise(2))
	a3 := mustAppend(t, s, raise(3))
	mustAppend(t, s, clearing(3, a3.Alert.ID))
	mustAppend(t, s, status(1))
	events := 5
	appended := 5

	// Far more telemetry than fits: ~60 bytes each in use, 8 x the cap.
	var maxBytes int64
	for i := 0; i < 70000; i++ {
		mustAppend(t, s, tele(i%16, float64(i)))
		appended++
		if i%5000 == 4999 {
			flush(t, s)
			st := s.Stats()
			maxBytes = max(maxBytes, st.Bytes)
			if st.Evicted > 0 {
				// Telemetry is evicted first: every event is still there.
				ev, _ := s.Read(0, 100, KindAlert, KindDeviceStatus)
				if len(ev) != events {
					t.Fatalf("after %d records, %d evicted: %d events left, want %d", appended, st.Evicted, len(ev), events)
				}
			}
		}
	}
	flush(t, s)
	st := s.Stats()
	t.Logf("after %d records: %+v, max bytes seen %d", appended, st, maxBytes)
	if st.Evicted == 0 {
		t.Fatal("nothing evicted")
	}
	if int(st.Evicted)+st.Records != appended {
		t.Fatalf("evicted %d + stored %d != appended %d", st.Evicted, st.Records, appended)
	}
	// Bytes in use stay within the cap plus one batch of slack.
	if maxBytes > capBytes+capBytes/4 {
		t.Fatalf("bytes in use reached %d, cap %d", maxBytes, capBytes)
	}
	fi, _ := os.Stat(path)
	if fi.Size() > 4*capBytes {
		t.Fatalf("file grew to %d bytes with a cap of %d", fi.Size(), capBytes)
	}
	// The oldest telemetry went first: what is left is a contiguous tail.
	tel, _ := s.Read(0, 1<<20, KindTelemetry)
	if len(tel) == 0 || tel[len(tel)-1].Seq != st.LastSeq {
		t.Fatal("newest telemetry missing")
	}
	for i := 1; i < len(tel); i++ {
		if tel[i].Seq != tel[i-1].Seq+1 {
			t.Fatalf("hole in the telemetry tail at %d", tel[i-1].Seq)
		}
	}

	// Now only events: telemetry runs out and the oldest events go, but
	// never the active alerts' raising records.
	for i := 0; i < 20000; i++ {
		mustAppend(t, s, status(i%16))
		appended++
		if i%5000 == 4999 {
			flush(t, s)
		}
	}
	flush(t, s)
	st = s.Stats()
	if tel, _ := s.Read(0, 10, KindTelemetry); len(tel) != 0 {
		t.Fatalf("telemetry left while events were evicted: %d", len(tel))
	}
	act, err := s.ActiveAlerts()
	if err != nil || len(act) != 2 || act[0].Seq != a1.Seq || act[1].Seq != a2.Seq {
		t.Fatalf("active alerts after eviction: %+v %v", act, err)
	}
	all, _ := s.Read(0, 1<<20)
	if int(st.Evicted)+len(all) != appended || st.Records != len(all) {
		t.Fatalf("evicted %d + read %d (Records %d) != appended %d", st.Evicted, len(all), st.Records, appended)
	}
	if all[0].Seq != a1.Seq || all[1].Seq != a2.Seq || all[2].Kind != KindDeviceStatus {
		t.Fatalf("oldest records: %d %d %v", all[0].Seq, all[1].Seq, all[2].Kind)
	}
	if st.FirstSeq != a1.Seq {
		t.Fatalf("FirstSeq %d, want %d", st.FirstSeq, a1.Seq)
	}
	// Thousands of records evicted over dozens of commits: one summary
	// line, since the writer logs at most once a minute.
	if n := strings.Count(logs.String(), "evicted records"); n != 1 {
		t.Fatalf("%d eviction log lines:\n%s", n, logs.String())
	}
	// Backlog agrees with Read, and the eviction count survives a restart.
	if n, _, _ := s.Backlog(0); n != len(all) {
		t.Fatalf("Backlog %d, Read %d", n, len(all))
	}
	s.Close()
	s = openT(t, path, &Options{MaxBytes: capBytes})
	if st2 := s.Stats(); st2.Evicted != st.Evicted || st2.Records != st.Records {
		t.Fatalf("after reopen: %+v, before %+v", st2, st)
	}
}

// A backlog remembered across commits that evict records it counted stays exact.
func TestBacklogAcrossEviction(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "db"), &Options{MaxBytes: 256 << 10, MaxBatch: 256, CommitInterval: time.Hour})
	var after uint64
	for round := 0; round < 30; round++ {
		for i := 0; i < 1000; i++ {
			mustAppend(t, s, tele(1, 1))
		}
		flush(t, s)
		n, _, err := s.Backlog(after)
		if err != nil {
			t.Fatal(err)
		}
		all, _ := s.Read(after, 1<<20)
		if n != len(all) {
			t.Fatalf("round %d: Backlog(%d) = %d, Read finds %d", round, after, n, len(all))
		}
		if round%3 == 0 && len(all) > 0 {
			after = all[len(all)/2].Seq // a consumer that acks half
		}
	}
	if s.Stats().Evicted == 0 {
		t.Fatal("nothing evicted: the test tests nothing")
	}
}

func TestMaxAge(t *testing.T) {
	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := openT(t, filepath.Join(t.TempDir(), "db"), &Options{MaxAge: time.Hour, Now: clock, CommitInterval: time.Hour})
	at := func(min int, synced bool) Record {
		r := tele(1, float64(min))
		r.TS = t0.Add(time.Duration(min) * time.Minute)
		r.ClockSynced = synced
		return r
	}
	act := mustAppend(t, s, raise(1)) // TS t0, active: never evicted
	mustAppend(t, s, at(0, true))
	mustAppend(t, s, at(-10000, false)) // 1970-ish stamp, before the sync
	mustAppend(t, s, at(10, true))
	mustAppend(t, s, at(30, true))
	mustAppend(t, s, at(-10000, false)) // unsynced, followed only by fresh records
	mustAppend(t, s, at(90, true))
	st := mustAppend(t, s, status(1)) // TS t0
	flush(t, s)
	if got := s.Stats().Records; got != 8 {
		t.Fatalf("evicted too early: %d records", got)
	}

	mu.Lock()
	now = t0.Add(time.Hour + 20*time.Minute) // cutoff t0+20m
	mu.Unlock()
	mustAppend(t, s, at(80, true))
	flush(t, s)
	recs, _ := s.Read(0, 100)
	var seqs []uint64
	for _, r := range recs {
		seqs = append(seqs, r.Seq)
	}
	// Gone: 2 (t0), 3 (unsynced, before an expired one), 4 (10m), 8 (status, t0).
	want := []uint64{act.Seq, 5, 6, 7, 9}
	if len(seqs) != len(want) {
		t.Fatalf("after age eviction: %v, want %v", seqs, want)
	}
	for i := range want {
		if seqs[i] != want[i] {
			t.Fatalf("after age eviction: %v, want %v", seqs, want)
		}
	}
	if ev := s.Stats().Evicted; ev != 4 {
		t.Fatalf("Evicted %d, want 4 (status %d)", ev, st.Seq)
	}
}

// Backlog called all the time while commits evict: once ingest stops, the
// remembered answer is still exact.
func TestBacklogConcurrentEviction(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "db"), &Options{MaxBytes: 256 << 10, MaxBatch: 128, CommitInterval: time.Millisecond})
	stop := make(chan struct{})
	done := make(chan struct{})
	var after uint64 = 5000 // overtaken by the evictions half-way
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, _, err := s.Backlog(after); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; i < 40000; i++ {
		mustAppend(t, s, tele(1, 1))
	}
	flush(t, s)
	close(stop)
	<-done
	for _, a := range []uint64{after, 0, 39000, after} {
		n, _, _ := s.Backlog(a)
		all, _ := s.Read(a, 1<<20)
		if n != len(all) {
			t.Fatalf("Backlog(%d) = %d, Read finds %d", a, n, len(all))
		}
	}
	if s.Stats().Evicted == 0 {
		t.Fatal("nothing evicted")
	}
}
