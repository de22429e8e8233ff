package store

import (
	"path/filepath"
	"testing"
	"time"
)

// TestCursorsRideTheGroupCommit: SetCursor writes nothing of its own; the
// cursor is committed with the next commit, and a crash before it loses
// only the cursor's move (a resend), never a record.
func TestCursorsRideTheGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s := openT(t, path, &Options{CommitInterval: time.Hour})
	for i := 0; i < 10; i++ {
		mustAppend(t, s, tele(1, float64(i)))
	}
	flush(t, s)
	commits := s.Stats().Commits
	if err := s.SetCursor("mqtt", 4); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCursor("ws", 2); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().Commits; got != commits {
		t.Fatalf("SetCursor committed: %d commits, want %d", got, commits)
	}
	if c, _ := s.Cursor("mqtt"); c != 4 {
		t.Fatalf("pending cursor reads %d, want 4", c)
	}
	// Flush makes pending cursors durable even with no record queued.
	flush(t, s)
	if got := s.Stats().Commits; got != commits+1 {
		t.Fatalf("Flush of cursors alone: %d commits, want %d", got, commits+1)
	}
	if err := s.SetCursor("mqtt", 3); err != nil { // backwards: no-op
		t.Fatal(err)
	}
	flush(t, s)
	if got := s.Stats().Commits; got != commits+1 {
		t.Fatal("a cursor that did not move was committed")
	}

	// A cursor set after the last commit dies with the process.
	if err := s.SetCursor("mqtt", 9); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "db")
	copyFile(t, path, dst) // the file as a kill -9 now would leave it
	s.abandon()
	s2 := openT(t, dst, nil)
	if c, _ := s2.Cursor("mqtt"); c != 4 {
		t.Fatalf("cursor after the crash: %d, want the committed 4", c)
	}
	if c, _ := s2.Cursor("ws"); c != 2 {
		t.Fatalf("other cursor after the crash: %d, want 2", c)
	}
	if recs, _ := s2.Read(0, 100); len(recs) != 10 {
		t.Fatalf("%d records after the crash, want 10", len(recs))
	}
	// Close commits pending cursors.
	if err := s2.SetCursor("mqtt", 10); err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	s3 := openT(t, dst, nil)
	if c, _ := s3.Cursor("mqtt"); c != 10 {
		t.Fatalf("cursor after Close: %d, want 10", c)
	}
}

// TestEventsCommitAtOnce: telemetry waits for the interval, an alert or a
// status change is committed at once, with the telemetry queued before it.
func TestEventsCommitAtOnce(t *testing.T) {
	for _, ev := range []Record{raise(1), status(2)} {
		t.Run(ev.Kind.String(), func(t *testing.T) {
			s := openT(t, filepath.Join(t.TempDir(), "db"), &Options{CommitInterval: time.Hour})
			ch := s.Committed()
			mustAppend(t, s, tele(1, 1))
			select {
			case <-ch:
				t.Fatal("telemetry committed before the interval")
			default:
			}
			e := mustAppend(t, s, ev)
			select {
			case <-ch:
			case <-time.After(30 * time.Second):
				t.Fatal("the event was not committed at once")
			}
			if st := s.Stats(); st.CommittedSeq != e.Seq {
				t.Fatalf("committed up to %d, want the event's %d", st.CommittedSeq, e.Seq)
			}
			if recs, _ := s.Read(0, 10); len(recs) != 2 {
				t.Fatalf("%d records readable, want the telemetry and the event", len(recs))
			}
		})
	}
}
