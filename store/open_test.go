package store

import (
	"context"
	"errors"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/floorhub/floorhub/internal/testkit"
)

func TestOpenTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	openT(t, path, nil)
	const timeout = 300 * time.Millisecond
	start := time.Now()
	s, err := Open(path, &Options{OpenTimeout: timeout, Logger: quiet})
	took := time.Since(start)
	if err == nil {
		s.Close()
		t.Fatal("second Open of a held file succeeded")
	}
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), path) {
		t.Fatalf("err %v, want ErrTimeout naming %s", err, path)
	}
	// bbolt retries the lock every 50 ms and gives up one retry early.
	if took < timeout-100*time.Millisecond || took > timeout+3*time.Second {
		t.Fatalf("gave up after %v, timeout %v", took, timeout)
	}
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 0 {
		t.Fatal("a locked file was moved aside")
	}
}

func TestOpenCreatesWithModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "db")
	openT(t, path, nil)
	for p, want := range map[string]os.FileMode{dir: 0o750 | os.ModeDir, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		// The umask can only remove bits.
		if fi.Mode()&^want != 0 {
			t.Errorf("%s mode %v, want at most %v", p, fi.Mode(), want)
		}
	}
}

// openCorrupt opens a corrupt file at path and checks it was moved aside,
// logged and replaced, with seqs continuing after wantSeqAfter.
func openCorrupt(t *testing.T, path string, wantSeqAfter uint64) {
	t.Helper()
	var logs testkit.Buffer
	s, err := Open(path, &Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("Open of a corrupt file: %v", err)
	}
	defer s.Close()
	matches, _ := filepath.Glob(path + ".corrupt-*")
	if len(matches) != 1 {
		t.Fatalf("moved-aside files: %v", matches)
	}
	out := logs.String()
	if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, path) || !strings.Contains(out, matches[0]) {
		t.Fatalf("log does not name both paths:\n%s", out)
	}
	r := mustAppend(t, s, tele(1, 1))
	if r.Seq <= wantSeqAfter {
		t.Fatalf("seq %d after replacing a corrupt file, want > %d", r.Seq, wantSeqAfter)
	}
	flush(t, s)
	if got, _ := s.Read(0, 10); len(got) != 1 {
		t.Fatalf("new store holds %d records", len(got))
	}
	for _, m := range matches {
		os.Remove(m)
	}
}

func TestOpenGarbage(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, size := range []int{1, 100, 4096, 1 << 16, -(16 << 10)} {
		path := filepath.Join(t.TempDir(), "db")
		b := make([]byte, max(size, -size))
		if size > 0 {
			rng.Read(b) // else zeros
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		openCorrupt(t, path, 0)
	}
}

// makeDB fills a store at path with n records and closes it cleanly.
func makeDB(t *testing.T, path string, n int) uint64 {
	t.Helper()
	s := openT(t, path, &Options{MaxBatch: 512})
	var last Record
	for i := 0; i < n; i++ {
		last = mustAppend(t, s, tele(i%8, float64(i)))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return last.Seq
}

func TestOpenTruncated(t *testing.T) {
	for _, frac := range []float64{0.02, 0.5, 0.99} {
		path := filepath.Join(t.TempDir(), "db")
		last := makeDB(t, path, 20000)
		// Cut into the pages in use (the file's tail may be preallocated).
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		var hwm int64
		db.View(func(tx *bolt.Tx) error { hwm = tx.Size(); return nil })
		db.Close()
		if err := os.Truncate(path, int64(float64(hwm)*frac)); err != nil {
			t.Fatal(err)
		}
		// The sidecar hint lets the new store continue after the old seqs.
		openCorrupt(t, path, last)
	}
}

func TestOpenDamagedPages(t *testing.T) {
	// Overwrite pages in the middle of a real file with garbage: the
	// bounded check or a guarded panic must catch it, never crash.
	rng := rand.New(rand.NewSource(2))
	for i := 0; i < 6; i++ {
		path := filepath.Join(t.TempDir(), "db")
		last := makeDB(t, path, 20000)
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		junk := make([]byte, 64<<10)
		rng.Read(junk)
		if _, err := f.WriteAt(junk, 2*4096+rng.Int63n(fi.Size()-int64(len(junk))-2*4096)); err != nil {
			t.Fatal(err)
		}
		f.Close()
		var logs testkit.Buffer
		s, err := Open(path, &Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatalf("case %d: Open: %v", i, err)
		}
		t.Logf("case %d: %s", i, logs.String())
		r := mustAppend(t, s, tele(1, 1))
		if r.Seq <= last {
			t.Fatalf("case %d: seq %d reused (old file had up to %d)", i, r.Seq, last)
		}
		// Whatever survived must read without a crash.
		if _, err := s.Read(0, 1<<20); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("case %d: Read: %v", i, err)
		}
		s.Close()
	}
}

func TestOpenMissingWithHint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	last := makeDB(t, path, 100)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	s := openT(t, path, nil)
	if r := mustAppend(t, s, tele(1, 1)); r.Seq <= last {
		t.Fatalf("seq %d after the file was deleted, old file had %d", r.Seq, last)
	}
}

func TestOpenNotOurs(t *testing.T) {
	// A valid bbolt file that is not a store is moved aside.
	path := filepath.Join(t.TempDir(), "db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err })
	db.Close()
	openCorrupt(t, path, 0)
}

func TestOpenFutureLayout(t *testing.T) {
	// A file from a newer layout is refused and left alone.
	path := filepath.Join(t.TempDir(), "db")
	s := openT(t, path, nil)
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bMeta).Put(mLayout, []byte{99}) })
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, &Options{Logger: quiet}); err == nil || errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("future layout: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal("future layout file was moved")
	}
}

// A record that cannot be decoded, where the bounded check does not look,
// is skipped by Read (and marks the file); the next Open checks every
// record and moves the file aside.
func TestDamageMarkerFullCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	last := makeDB(t, path, 20000)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad := uint64(10007) // not at an end, not on a probe
	err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bTelemetry).Put(seqKey(bad), []byte{formatV1, 1, 0}) })
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	var logs testkit.Buffer
	s, err := Open(path, &Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("bounded check should not see seq %d: %v", bad, err)
	}
	recs, err := s.Read(bad-1, 2)
	if err != nil || len(recs) != 2 || recs[0].Seq != bad+1 {
		t.Fatalf("Read across a bad record: %v %v", recs, err)
	}
	if !strings.Contains(logs.String(), "cannot be decoded") {
		t.Fatalf("bad record not logged:\n%s", logs.String())
	}
	s.Close()
	if _, err := os.Stat(damagedPath(path)); err != nil {
		t.Fatalf("no damage marker: %v", err)
	}
	openCorrupt(t, path, last)
	if _, err := os.Stat(damagedPath(path)); err == nil {
		t.Fatal("damage marker left behind")
	}
}

// Commits that keep failing make Flush and a full queue report the error
// instead of blocking forever.
func TestCommitFailure(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"), &Options{MaxBatch: 4, CommitInterval: time.Hour, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, tele(1, 1))
	flush(t, s)
	s.db.Close() // every later transaction fails
	mustAppend(t, s, tele(1, 2))
	if err := s.Flush(context.Background()); err == nil || !errors.Is(err, bolt.ErrDatabaseNotOpen) {
		t.Fatalf("Flush with failing commits: %v", err)
	}
	if st := s.Stats(); !st.Failing || st.Pending != 1 {
		t.Fatalf("Stats with failing commits: Failing %v, Pending %d; want true, 1", st.Failing, st.Pending)
	}
	var aerr error
	for i := 0; i < 100 && aerr == nil; i++ {
		_, aerr = s.Append(tele(1, 3))
	}
	if aerr == nil || !errors.Is(aerr, bolt.ErrDatabaseNotOpen) {
		t.Fatalf("Append with a full queue and failing commits: %v", aerr)
	}
	if err := s.Close(); err == nil {
		t.Fatal("Close reported no lost records")
	}
}

// Two corrupt files met in the same second keep both copies.
func TestOpenCorruptTwiceKeepsBoth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	for i := 0; i < 2; i++ {
		if err := os.WriteFile(path, []byte("not a database, take "+string(rune('1'+i))), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path, &Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 2 {
		t.Fatalf("moved-aside files: %v", m)
	}
}
