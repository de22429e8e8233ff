package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/floorhub/floorhub/internal/testkit"
)

const helperEnv = "FLOORHUB_STORE_HELPER_DB"

// TestHelperProcess is the child of TestCrash: it appends records as fast
// as it can and prints "A <seq>" for every seq assigned, "D <seq>" each
// time a commit makes everything up to seq durable, and "C <seq>" once its
// cursor is set there, until it is killed.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper process for TestCrash")
	}
	s, err := Open(path, &Options{CommitInterval: 5 * time.Millisecond, MaxBatch: 256, Logger: quiet})
	if err != nil {
		fmt.Printf("E %v\n", err)
		os.Exit(2)
	}
	var mu sync.Mutex // one line at a time on stdout
	say := func(tag byte, seq uint64) {
		mu.Lock()
		fmt.Fprintf(os.Stdout, "%c %d\n", tag, seq)
		mu.Unlock()
	}
	go func() {
		for {
			<-s.Committed()
			c := s.Stats().CommittedSeq
			say('D', c)
			// An uplink acking what it has: durable with the next
			// commit, which Flush waits for.
			if err := s.SetCursor("uplink", c); err != nil {
				fmt.Printf("E %v\n", err)
				os.Exit(2)
			}
			if err := s.Flush(context.Background()); err != nil {
				fmt.Printf("E %v\n", err)
				os.Exit(2)
			}
			say('C', c)
		}
	}()
	for i := 0; ; i++ {
		r, err := s.Append(tele(i%8, float64(i)))
		if err != nil {
			fmt.Printf("E %v\n", err)
			os.Exit(2)
		}
		say('A', r.Seq)
	}
}

// runChild starts the helper on path, reads its lines until it has
// reported `commits` durable commits, kills it with SIGKILL, and returns
// the highest seq it reported assigned and durable.
func runChild(t *testing.T, path string, commits int) (maxAssigned, maxDurable, maxCursor uint64, assigned []uint64) {
	t.Helper()
	cmd := testkit.Reexec(t, "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	deadline := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	sc := bufio.NewScanner(out)
	seen := 0
	for sc.Scan() {
		line := sc.Text()
		if len(line) < 3 || line[1] != ' ' {
			continue
		}
		if line[0] == 'E' {
			t.Fatalf("child: %s", line)
		}
		n, err := strconv.ParseUint(line[2:], 10, 64)
		if err != nil {
			continue // a line torn by the kill
		}
		switch line[0] {
		case 'A':
			maxAssigned = max(maxAssigned, n)
			assigned = append(assigned, n)
		case 'C':
			maxCursor = max(maxCursor, n)
		case 'D':
			maxDurable = max(maxDurable, n)
			if n > 0 {
				seen++
			}
		}
		if seen >= commits && !killed {
			killed = true
			if err := cmd.Process.Kill(); err != nil { // SIGKILL: no deferred code runs
				t.Fatal(err)
			}
		}
	}
	cmd.Wait()
	if !killed {
		t.Fatalf("child ended before %d commits (saw %d)", commits, seen)
	}
	return maxAssigned, maxDurable, maxCursor, assigned
}

func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	path := filepath.Join(t.TempDir(), "db")
	var allAssigned uint64
	var durable []uint64
	var cursor uint64
	for round := 0; round < 2; round++ {
		maxA, maxD, maxC, assigned := runChild(t, path, 10)
		cursor = max(cursor, maxC)
		t.Logf("round %d: child assigned up to %d, reported durable up to %d", round, maxA, maxD)
		if maxA <= allAssigned {
			t.Fatalf("child reused seqs: assigned up to %d, earlier runs up to %d", maxA, allAssigned)
		}
		for _, a := range assigned {
			if a <= allAssigned {
				t.Fatalf("child assigned seq %d again", a)
			}
			if a <= maxD {
				durable = append(durable, a)
			}
		}
		allAssigned = maxA
	}

	s := openT(t, path, nil)
	recs, err := s.Read(0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	have := make(map[uint64]bool, len(recs))
	for _, r := range recs {
		have[r.Seq] = true
	}
	for _, d := range durable {
		if !have[d] {
			t.Fatalf("seq %d was reported durable but is gone", d)
		}
	}
	if c, err := s.Cursor("uplink"); err != nil || c < cursor {
		t.Fatalf("cursor %d after the crash (%v), the child had set %d", c, err, cursor)
	}
	st := s.Stats()
	next := mustAppend(t, s, tele(1, 1))
	if next.Seq <= allAssigned {
		t.Fatalf("seq %d after the crash, but the child had assigned %d", next.Seq, allAssigned)
	}
	sk := s.Skipped()
	if len(sk) != 2 {
		t.Fatalf("Skipped %v, want one range per crash", sk)
	}
	last := sk[len(sk)-1]
	if last[0] != st.CommittedSeq+1 || last[1] != next.Seq-1 {
		t.Fatalf("Skipped %v does not cover the gap between committed %d and next %d", last, st.CommittedSeq, next.Seq)
	}
	// Every stored record is outside every skipped range.
	for _, r := range recs {
		for _, g := range sk {
			if r.Seq >= g[0] && r.Seq <= g[1] {
				t.Fatalf("record %d stored inside skipped range %v", r.Seq, g)
			}
		}
	}
	flush(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A clean restart skips nothing more.
	s = openT(t, path, nil)
	if got := s.Skipped(); len(got) != len(sk) {
		t.Fatalf("clean restart added skipped ranges: %v", got)
	}
	if r := mustAppend(t, s, tele(1, 1)); r.Seq != next.Seq+1 {
		t.Fatalf("after a clean restart seq %d, want %d", r.Seq, next.Seq+1)
	}
}

func TestSkippedBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s := openT(t, path, &Options{MaxBatch: 1})
	mustAppend(t, s, tele(1, 1))
	flush(t, s)
	// Simulate 105 crashes: reopen without Close, the way a kill would
	// leave the file (bbolt's lock dies with the process, so use a copy).
	src := path
	for i := 0; i < 105; i++ {
		dst := filepath.Join(t.TempDir(), "db")
		copyFile(t, src, dst)
		s2 := openT(t, dst, &Options{MaxBatch: 1})
		mustAppend(t, s2, tele(1, 1))
		flush(t, s2) // a commit between crashes: a new range each time
		s2.abandon()
		src = dst
	}
	s3 := openT(t, src, &Options{MaxBatch: 1})
	sk := s3.Skipped()
	if len(sk) != maxSkipped {
		t.Fatalf("%d skipped ranges, want %d", len(sk), maxSkipped)
	}
	for i := 1; i < len(sk); i++ {
		if sk[i][0] <= sk[i-1][1] {
			t.Fatalf("ranges not increasing: %v %v", sk[i-1], sk[i])
		}
	}
	next := mustAppend(t, s3, tele(1, 1))
	if sk[len(sk)-1][1] != next.Seq-1 {
		t.Fatalf("last range %v, next seq %d", sk[len(sk)-1], next.Seq)
	}

	// Two crashes with no commit between them widen one range.
	flush(t, s3)
	s3.abandon()
	s4 := openT(t, src, &Options{MaxBatch: 1})
	s4.abandon()
	s5 := openT(t, src, &Options{MaxBatch: 1})
	sk5 := s5.Skipped()
	if len(sk5) != maxSkipped || sk5[len(sk5)-2] != sk[len(sk)-1] {
		t.Fatalf("after two crashes without a commit: ...%v", sk5[len(sk5)-3:])
	}
	if n := mustAppend(t, s5, tele(1, 1)); sk5[len(sk5)-1][0] != next.Seq+1 || sk5[len(sk5)-1][1] != n.Seq-1 {
		t.Fatalf("widened range %v, committed %d, next %d", sk5[len(sk5)-1], next.Seq, n.Seq)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// At every instant the durable ceiling covers every seq handed out, even
// with a tiny reserve that Appends keep running into.
func TestCeilingCoversAssigned(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "db"), &Options{MaxBatch: 4, CommitInterval: time.Millisecond})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Append(tele(1, 1)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.Stats().LastSeq < 2000 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d appended in 30 s: the ceiling stalls Append", s.Stats().LastSeq)
		}
		last := s.Stats().LastSeq
		var ceiling uint64
		if err := s.db.View(func(tx *bolt.Tx) error {
			ceiling = u64(tx.Bucket(bMeta).Get(mCeiling))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if last > ceiling {
			t.Fatalf("seq %d handed out above the durable ceiling %d", last, ceiling)
		}
	}
	close(stop)
	wg.Wait()
}
