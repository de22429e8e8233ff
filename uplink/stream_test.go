package uplink

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/store"
)

// memSource is an in-memory Source for testing the drain loop's ordering
// logic on its own; the transports' tests use the real store.
type memSource struct {
	mu      sync.Mutex
	recs    []store.Record
	cursors map[string]uint64
	commit  chan struct{}
	writes  int
}

func newMemSource() *memSource {
	return &memSource{cursors: map[string]uint64{}, commit: make(chan struct{})}
}

func (m *memSource) add(k store.Kind, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := 0; i < n; i++ {
		m.recs = append(m.recs, store.Record{Seq: uint64(len(m.recs) + 1), Kind: k, DeviceID: 1, TS: time.Unix(1, 0)})
	}
	close(m.commit)
	m.commit = make(chan struct{})
}

func (m *memSource) Read(after uint64, max int, kinds ...store.Kind) ([]store.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.Record
	for _, r := range m.recs {
		if r.Seq <= after || len(out) == max {
			continue
		}
		ok := len(kinds) == 0
		for _, k := range kinds {
			ok = ok || k == r.Kind
		}
		if ok {
			out = append(out, r)
		}
	}
	return out, nil
}

func (m *memSource) Cursor(c string) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cursors[c], nil
}

func (m *memSource) SetCursor(c string, seq uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes++
	if seq > m.cursors[c] {
		m.cursors[c] = seq
	}
	return nil
}

func (m *memSource) Committed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.commit
}

func (m *memSource) Backlog(after uint64) (int, time.Time, error) { return 0, time.Time{}, nil }
func (m *memSource) Skipped() [][2]uint64                         { return nil }
func (m *memSource) Stats() store.Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return store.Stats{CommittedSeq: uint64(len(m.recs)), LastSeq: uint64(len(m.recs))}
}

// manualAck is acknowledged when the test says so.
type manualAck struct {
	done chan struct{}
	err  error
}

func (a *manualAck) Done() <-chan struct{} { return a.done }
func (a *manualAck) Error() error          { return a.err }

type sentMsg struct {
	kind store.Kind
	seqs []uint64
	ack  *manualAck
}

// chanSender hands every sent message to the test.
type chanSender chan sentMsg

func (c chanSender) Send(k store.Kind, payload []byte) Ack {
	var b struct{ Records []struct{ Seq uint64 } }
	if err := json.Unmarshal(payload, &b); err != nil {
		panic(err)
	}
	m := sentMsg{kind: k, ack: &manualAck{done: make(chan struct{})}}
	for _, r := range b.Records {
		m.seqs = append(m.seqs, r.Seq)
	}
	c <- m
	return m.ack
}

func recv(t *testing.T, c chanSender) sentMsg {
	t.Helper()
	select {
	case m := <-c:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message sent")
	}
	return sentMsg{}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, what, 10*time.Second, cond)
}

func TestStreamAdvancesOnlyToContiguousAcks(t *testing.T) {
	src := newMemSource()
	src.add(store.KindTelemetry, 10)
	s, err := NewStream(src, StreamOptions{Consumer: "t", Kinds: []store.Kind{store.KindTelemetry},
		BatchSize: 3, MaxInFlight: 4, CursorInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	snd := make(chanSender, 16)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, snd, nil) }()

	var msgs []sentMsg
	for i := 0; i < 4; i++ { // 1-3, 4-6, 7-9, 10
		msgs = append(msgs, recv(t, snd))
	}
	if got := msgs[3].seqs; len(got) != 1 || got[0] != 10 {
		t.Fatalf("4th message: %v", got)
	}
	close(msgs[1].ack.done) // out of order: nothing may move
	close(msgs[2].ack.done)
	if a := s.Acked(); a != 0 {
		t.Fatalf("acked %d before the first message was", a)
	}
	close(msgs[0].ack.done)
	waitFor(t, "acked 9", func() bool { return s.Acked() == 9 })
	close(msgs[3].ack.done)
	waitFor(t, "durable cursor 10", func() bool { c, _ := src.Cursor("t"); return c == 10 })

	src.add(store.KindTelemetry, 2) // live records wake the stream
	m := recv(t, snd)
	if len(m.seqs) != 2 || m.seqs[0] != 11 {
		t.Fatalf("live message: %v", m.seqs)
	}
	m.ack.err = errors.New("connection lost")
	close(m.ack.done)
	if err := <-done; !errors.Is(err, ErrNotAcked) {
		t.Fatalf("Run after a failed ack: %v", err)
	}
	cancel()
	if c, _ := src.Cursor("t"); c != 10 {
		t.Fatalf("cursor %d after a failed ack, want 10", c)
	}

	// The next connection resends what was not acknowledged.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go func() { done <- s.Run(ctx, snd, nil) }()
	m = recv(t, snd)
	if len(m.seqs) != 2 || m.seqs[0] != 11 {
		t.Fatalf("resend: %v", m.seqs)
	}
	close(m.ack.done)
	waitFor(t, "cursor 12", func() bool { c, _ := src.Cursor("t"); return c == 12 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
}

func TestStreamSkipsOtherKindsAndSplitsByKind(t *testing.T) {
	src := newMemSource()
	src.add(store.KindTelemetry, 5)
	src.add(store.KindAlert, 2)        // 6, 7
	src.add(store.KindDeviceStatus, 1) // 8
	src.add(store.KindTelemetry, 5)    // 9..13
	s, _ := NewStream(src, StreamOptions{Consumer: "ev", Kinds: []store.Kind{store.KindAlert, store.KindDeviceStatus},
		CursorInterval: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	snd := make(chanSender, 16)
	caught := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, snd, func() { close(caught) }) }()
	a, d := recv(t, snd), recv(t, snd)
	if a.kind != store.KindAlert || len(a.seqs) != 2 || d.kind != store.KindDeviceStatus || d.seqs[0] != 8 {
		t.Fatalf("got %v %v, %v %v", a.kind, a.seqs, d.kind, d.seqs)
	}
	<-caught
	close(a.ack.done)
	close(d.ack.done)
	// The events cursor moves past the telemetry after them, so the next
	// read does not scan it again.
	waitFor(t, "cursor 13", func() bool { c, _ := src.Cursor("ev"); return c == 13 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestStreamShutdownWaitsForOutstandingAcks(t *testing.T) {
	src := newMemSource()
	src.add(store.KindTelemetry, 4)
	s, _ := NewStream(src, StreamOptions{Consumer: "t", BatchSize: 2, CursorInterval: time.Hour, ShutdownGrace: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	snd := make(chanSender, 16)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, snd, nil) }()
	m1, m2 := recv(t, snd), recv(t, snd)
	cancel()
	close(m1.ack.done)
	close(m2.ack.done)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The final write ignores CursorInterval.
	if c, _ := src.Cursor("t"); c != 4 {
		t.Fatalf("cursor after shutdown %d, want 4", c)
	}
}

func TestNewStreamRejectsBadOptions(t *testing.T) {
	src := newMemSource()
	for _, o := range []StreamOptions{{}, {Consumer: "x", BatchSize: -1}, {Consumer: "x", Kinds: []store.Kind{9}}} {
		if _, err := NewStream(src, o); err == nil {
			t.Fatalf("%+v accepted", o)
		}
	}
	if _, err := NewStream(nil, StreamOptions{Consumer: "x"}); err == nil {
		t.Fatal("nil source accepted")
	}
}

func TestStreamHalvesTheBatchWhenNothingIsAcknowledged(t *testing.T) {
	src := newMemSource()
	src.add(store.KindTelemetry, 100)
	s, _ := NewStream(src, StreamOptions{Consumer: "t", BatchSize: 40, MaxInFlight: 1, CursorInterval: time.Millisecond})
	snd := make(chanSender, 16)
	run := func() (chan error, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx, snd, nil) }()
		return done, cancel
	}
	fail := func(m sentMsg) {
		m.ack.err = errors.New("disconnected: packet too large")
		close(m.ack.done)
	}
	for _, want := range []int{40, 20, 10} {
		done, cancel := run()
		m := recv(t, snd)
		if len(m.seqs) != want {
			t.Fatalf("message of %d records, want %d", len(m.seqs), want)
		}
		if want > 10 {
			fail(m) // a broker refusing messages this big
			if err := <-done; !errors.Is(err, ErrNotAcked) {
				t.Fatal(err)
			}
			cancel()
			continue
		}
		close(m.ack.done) // 10 fits
		for i := 0; i < 9; i++ {
			m = recv(t, snd)
			if len(m.seqs) != 10 {
				t.Fatalf("message of %d records at batch 10", len(m.seqs))
			}
			close(m.ack.done)
		}
		waitFor(t, "everything acknowledged", func() bool { return s.Acked() == 100 })
		// A failure after progress does not shrink the batch further.
		src.add(store.KindTelemetry, 5)
		fail(recv(t, snd))
		if err := <-done; !errors.Is(err, ErrNotAcked) {
			t.Fatal(err)
		}
		cancel()
	}
	if b := s.BatchSize(); b != 10 {
		t.Fatalf("batch size %d, want 10", b)
	}
}

// recordSender is a RecordSender that makes as many messages of a run as
// the run's first record's DeviceID says (0 to 3) and hands their acks to
// the test.
type recordSender struct {
	chanSender
	acks chan []*manualAck
}

func (r recordSender) SendRecords(recs []store.Record) []Ack {
	var acks []Ack
	var manual []*manualAck
	for i := 0; i < recs[0].DeviceID; i++ {
		a := &manualAck{done: make(chan struct{})}
		acks, manual = append(acks, a), append(manual, a)
	}
	r.acks <- manual
	return acks
}

func TestStreamRecordSenderAdvancesOnceEveryMessageOfARunIsAcked(t *testing.T) {
	src := newMemSource()
	s, err := NewStream(src, StreamOptions{Consumer: "t", BatchSize: 1, MaxInFlight: 2, CursorInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	snd := recordSender{make(chanSender), make(chan []*manualAck, 16)}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, snd, nil) }()
	next := func() []*manualAck {
		t.Helper()
		select {
		case a := <-snd.acks:
			return a
		case <-time.After(10 * time.Second):
			t.Fatal("no run sent")
		}
		return nil
	}
	add := func(dev int) {
		src.mu.Lock()
		src.recs = append(src.recs, store.Record{Seq: uint64(len(src.recs) + 1), Kind: store.KindTelemetry, DeviceID: dev})
		close(src.commit)
		src.commit = make(chan struct{})
		src.mu.Unlock()
	}

	add(3) // three messages, more than MaxInFlight
	acks := next()
	close(acks[0].done)
	close(acks[2].done)
	if a := s.Acked(); a != 0 {
		t.Fatalf("acked %d with a message of the run unacknowledged", a)
	}
	close(acks[1].done)
	waitFor(t, "acked 1", func() bool { return s.Acked() == 1 })
	add(0) // no message: the cursor passes it at once
	if a := next(); len(a) != 0 {
		t.Fatalf("%d acks", len(a))
	}
	waitFor(t, "acked 2", func() bool { return s.Acked() == 2 })
	add(1)
	acks = next()
	close(acks[0].done)
	waitFor(t, "cursor 3", func() bool { c, _ := src.Cursor("t"); return c == 3 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
