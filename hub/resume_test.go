package hub

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/floorhub/floorhub/store"
)

// openStore opens a real bbolt store in a temporary directory, committing
// often so that tests do not wait.
func openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(filepath.Join(t.TempDir(), "floorhub.db"), &store.Options{CommitInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// appendPublish does what the agent does: Append, then Publish at once
// (before the commit).
func appendPublish(t *testing.T, s *store.Store, h *Hub, r store.Record) uint64 {
	r, err := s.Append(r)
	if err != nil {
		t.Error(err)
		return 0
	}
	h.Publish(r)
	return r.Seq
}

// readSeqs reads messages of type typ until one carries seq last, and
// checks that their seqs are exactly first..last.
func readSeqs(t *testing.T, c *tclient, typ string, first, last uint64) {
	t.Helper()
	want := first
	for want <= last {
		m := c.read()
		if m["type"] != typ {
			continue
		}
		if s := seqOf(m); s != want {
			t.Fatalf("got seq %d, want %d (a gap or a duplicate)", s, want)
		}
		want++
	}
}

// Clients that resume while records are being appended and published get
// every record after since exactly once: replay from the store, then live,
// with no gap and no duplicate at the seam.
func TestResumeSeamUnderLoad(t *testing.T) {
	st := openStore(t)
	th := newTestHub(t, limitless, func(o *Options) { o.Replay = st; o.Conn.QueueLen = 4096 })
	const total = 1500
	var mu sync.Mutex
	published := uint64(0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < total; i++ {
			r := alert(0, 1+i%3, "critical", "temp_high")
			r.Alert.ID = 0
			s := appendPublish(t, st, th.Hub, r)
			mu.Lock()
			published = s
			mu.Unlock()
		}
	}()
	pub := func() uint64 { mu.Lock(); defer mu.Unlock(); return published }

	// Resume at several moments of the stream, from several points back.
	type resumer struct {
		c     *tclient
		since uint64
	}
	var rs []resumer
	for i, at := range []uint64{50, 300, 700, 1100} {
		eventually(t, fmt.Sprintf("seq %d to be published", at), func() bool { return pub() >= at })
		since := at - uint64(10+i*40)
		var c *tclient
		switch i {
		case 0, 2:
			c = th.dial(t, fmt.Sprintf("/ws/alerts?since=%d&token=%s", since, token(t, "u")), nil)
			c.readType("auth_response")
			c.readType("subscribed")
		case 1:
			c = th.login(t, "/ws", "u")
			c.send(map[string]any{"type": "subscribe", "channel": "alerts", "since": since})
			c.readType("subscribed")
		default: // nested, as the seed's Python client nests its filters
			c = th.login(t, "/ws", "u")
			c.send(map[string]any{"type": "subscribe", "channel": "alerts", "filters": map[string]any{"since": since}})
			c.readType("subscribed")
		}
		rs = append(rs, resumer{c, since})
	}
	<-done
	for _, r := range rs {
		readSeqs(t, r.c, "alert", r.since+1, total)
	}
}

// A client dropped for a full queue resumes with since and misses nothing.
func TestOverflowThenResume(t *testing.T) {
	st := openStore(t)
	th := newSmallBufHub(t, limitless, func(o *Options) { o.Replay = st; o.Conn.QueueLen = 16 })
	slow := th.dialSlow(t, "/ws/alerts?token="+token(t, "slow"))
	eventually(t, "the subscription", func() bool { return len(*th.snap[chAlerts].Load()) == 1 })
	pad := strings.Repeat("x", 400)
	for range 800 {
		r := alert(0, 1, "warning", "vibration")
		r.Alert.ID, r.Alert.Message = 0, pad
		appendPublish(t, st, th.Hub, r)
	}
	eventually(t, "the fan-out", func() bool { return th.lastSeq.Load() == 800 })
	last := uint64(0)
	for {
		m, err := slow.next()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseTryAgainLater {
				t.Fatalf("ended with %v, want 1013", err)
			}
			break
		}
		if m["type"] == "alert" {
			last = seqOf(m)
		}
	}
	c := th.dial(t, fmt.Sprintf("/ws/alerts?since=%d", last), nil)
	c.send(map[string]any{"type": "auth", "token": token(t, "slow")})
	c.readType("auth_response")
	c.readType("subscribed")
	go func() {
		for range 50 {
			r := alert(0, 1, "warning", "vibration")
			r.Alert.ID = 0
			appendPublish(t, st, th.Hub, r)
		}
	}()
	readSeqs(t, c, "alert", last+1, 850)
}

// Resume with the filters of the subscription, and only for the channel
// asked: telemetry of other devices and other kinds are not replayed.
func TestResumeFilters(t *testing.T) {
	st := openStore(t)
	th := newTestHub(t, func(o *Options) { o.Replay = st })
	for i := range 30 {
		appendPublish(t, st, th.Hub, telemetry(0, i%3, float64(i), 1))
		if i%10 == 0 {
			appendPublish(t, st, th.Hub, status(0, 1, "online", "warning"))
		}
	}
	if err := st.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := th.login(t, "/ws", "alice")
	c.send(map[string]any{"type": "subscribe", "channel": "telemetry", "device_id": 2,
		"filters": map[string]any{"metrics": []string{"temperature"}}, "since": 0})
	c.readType("subscribed")
	n := 0
	for n < 10 {
		m := c.readType("telemetry_update")
		if m["device_id"] != 2.0 || len(m["telemetry"].(map[string]any)) != 1 {
			t.Fatalf("replayed %v", m)
		}
		n++
	}
	c.send(map[string]any{"type": "ping"})
	c.readType("pong")
	// A since ahead of everything: nothing replayed, live data after it.
	c.send(map[string]any{"type": "subscribe", "channel": "devices", "since": 99999})
	c.readType("subscribed")
	appendPublish(t, st, th.Hub, status(0, 1, "warning", "online"))
	c.send(map[string]any{"type": "ping"})
	c.readType("pong")
}

// Without a Replayer, since is answered with replay_unavailable.
func TestResumeUnavailable(t *testing.T) {
	th := newTestHub(t)
	c := th.login(t, "/ws?since=5", "alice")
	c.send(map[string]any{"type": "subscribe", "channel": "alerts"})
	if m := c.read(); m["error"] != "replay_unavailable" {
		t.Fatalf("%v", m)
	}
	c.readType("subscribed")
}

// memReplayer is a store whose oldest records were evicted.
type memReplayer struct{ recs []store.Record }

func (m *memReplayer) Read(after uint64, max int, kinds ...store.Kind) ([]store.Record, error) {
	var out []store.Record
	for _, r := range m.recs {
		if r.Seq > after && (len(kinds) == 0 || kinds[0] == r.Kind) && len(out) < max {
			out = append(out, r)
		}
	}
	return out, nil
}

func TestResumeAfterEviction(t *testing.T) {
	mr := &memReplayer{}
	for s := uint64(100); s <= 110; s++ {
		mr.recs = append(mr.recs, alert(s, 1, "info", "r"))
	}
	th := newTestHub(t, func(o *Options) { o.Replay = mr })
	c := th.login(t, "/ws", "alice")
	c.send(map[string]any{"type": "subscribe", "channel": "alerts", "since": 42})
	c.readType("subscribed")
	if m := c.read(); m["error"] != "replay_incomplete" || !strings.Contains(m["message"].(string), "43 to 99") {
		t.Fatalf("evicted records: %v", m)
	}
	readSeqs(t, c, "alert", 100, 110)
}

// Resumes cannot force the store to commit more than once per
// forcedCommitGap, however many there are: every resume below finds its
// records not committed yet (one is appended before each subscribe; the
// store's own commit interval is an hour), and the hub's clock stands
// still during a round, then moves by the gap. Each client still gets
// every record after its since, exactly once, once the round's forced
// commit is made.
func TestResumeForcedCommitsBounded(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "floorhub.db"), &store.Options{CommitInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var th *testHub
	th = newTestHub(t, limitless, func(o *Options) {
		o.Replay = st
		o.Now = func() time.Time { return th.now.Now() }
	})
	const rounds, perRound = 4, 15
	before := st.Stats().Commits
	last := uint64(0)
	for r := 0; r < rounds; r++ {
		type resumer struct {
			c     *tclient
			since uint64
		}
		var rs []resumer
		for i := 0; i < perRound; i++ {
			since := last
			last = appendPublish(t, st, th.Hub, telemetry(0, 1+i%3, float64(i)))
			// A reconnect loop: subscribe, then hang up at once.
			gone := th.dial(t, fmt.Sprintf("/ws/telemetry?since=%d&token=%s", since, token(t, "loop")), nil)
			gone.readType("auth_response")
			gone.readType("subscribed")
			gone.ws.Close()
			c := th.dial(t, fmt.Sprintf("/ws/telemetry?since=%d&token=%s", since, token(t, "u")), nil)
			c.readType("auth_response")
			c.readType("subscribed")
			rs = append(rs, resumer{c, since})
		}
		// Waiting replays force the next commit once the gap is over.
		th.now.Advance(forcedCommitGap)
		for _, x := range rs {
			readSeqs(t, x.c, "telemetry_update", x.since+1, last)
			x.c.ws.Close()
		}
	}
	// One forced commit at the first resume, then one per round.
	got := st.Stats().Commits - before
	if got > rounds+1 {
		t.Fatalf("%d resumes in %d rounds made %d commits, want at most %d (one per %v of the hub's clock)",
			2*rounds*perRound, rounds, got, rounds+1, forcedCommitGap)
	}
	t.Logf("%d resumes in %d rounds: %d commits", 2*rounds*perRound, rounds, got)
}
