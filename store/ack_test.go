package store

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func ackOf(raised Record, by, note string, at time.Time) Record {
	a := *raised.Alert
	return Record{Kind: KindAlertAck, DeviceID: raised.DeviceID, TS: at, ClockSynced: true, Alert: &a,
		Ack: &AlertAck{By: by, Note: note, Raised: raised.TS}}
}

// An acknowledgement is a record of its own, and ActiveAlerts shows it on
// the alert's raising record, also after a reopen; a clear drops it.
func TestAlertAck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s := openT(t, path, nil)
	a := mustAppend(t, s, raise(1))
	b := mustAppend(t, s, raise(2))
	at := t0.Add(time.Minute)
	ack := mustAppend(t, s, ackOf(a, "alice", "fan replaced", at))
	if !ack.Ack.At.Equal(at) {
		t.Fatalf("Append's alert_ack: Ack.At %v, want its TS %v", ack.Ack.At, at)
	}
	mustAppend(t, s, ackOf(a, "bob", "second", at.Add(time.Second))) // the first ack stays
	flush(t, s)

	recs, err := s.Read(b.Seq, 10, KindAlertAck)
	if err != nil || len(recs) != 2 {
		t.Fatalf("Read alert_ack: %v %v", recs, err)
	}
	r := recs[0]
	if r.Seq != ack.Seq || r.Kind.String() != "alert_ack" || r.Alert.ID != a.Seq || r.Ack.By != "alice" ||
		r.Ack.Note != "fan replaced" || !r.Ack.At.Equal(at) || !r.Ack.Raised.Equal(a.TS) || r.Alert.Title != "Hot" {
		t.Fatalf("alert_ack read back: %+v %+v %+v", r, r.Alert, r.Ack)
	}

	check := func(s *Store) {
		t.Helper()
		act, err := s.ActiveAlerts()
		if err != nil || len(act) != 2 {
			t.Fatalf("ActiveAlerts: %v %v", act, err)
		}
		if k := act[0].Ack; k == nil || k.By != "alice" || k.Note != "fan replaced" || !k.At.Equal(at) {
			t.Fatalf("acknowledged alert: %+v", k)
		}
		if act[1].Ack != nil {
			t.Fatalf("alert %d never acknowledged has %+v", act[1].Seq, act[1].Ack)
		}
	}
	check(s)
	s.Close()
	s = openT(t, path, nil)
	check(s)

	mustAppend(t, s, clearing(1, a.Seq))
	mustAppend(t, s, ackOf(a, "carol", "", at)) // after the clear: no effect on the index
	flush(t, s)
	if act, err := s.ActiveAlerts(); err != nil || len(act) != 1 || act[0].Seq != b.Seq {
		t.Fatalf("after clear: %+v %v", act, err)
	}
}

// An active alert's acknowledgement is kept from age eviction like its
// raising record.
func TestAlertAckNotEvicted(t *testing.T) {
	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := openT(t, filepath.Join(t.TempDir(), "db"), &Options{MaxAge: time.Hour, Now: clock, CommitInterval: time.Hour})
	a := mustAppend(t, s, raise(1))
	ack := mustAppend(t, s, ackOf(a, "alice", "", t0))
	mustAppend(t, s, status(1))
	flush(t, s)
	mu.Lock()
	now = t0.Add(2 * time.Hour)
	mu.Unlock()
	mustAppend(t, s, tele(1, 1)) // TS t0: evicted with the status
	flush(t, s)
	recs, _ := s.Read(0, 10)
	if len(recs) != 2 || recs[0].Seq != a.Seq || recs[1].Seq != ack.Seq {
		t.Fatalf("after eviction: %+v", recs)
	}
}

func TestAlertAckInvalid(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "db"), nil)
	a := raise(1)
	a.Alert.ID = 7
	for name, r := range map[string]Record{
		"no ack":   {Kind: KindAlertAck, TS: t0, Alert: a.Alert},
		"no alert": {Kind: KindAlertAck, TS: t0, Ack: &AlertAck{By: "x"}},
		"no id":    ackOf(raise(1), "x", "", t0),
		"no by":    ackOf(a, "", "", t0),
	} {
		if _, err := s.Append(r); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}
