package mqtt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/store"
	"github.com/floorhub/floorhub/uplink/backoff"
)

// produce appends n telemetry records from index from, a chunk at a time,
// so that the uplink streams while records keep coming.
func produce(ctx context.Context, t testing.TB, st *store.Store, from, n int) (last uint64) {
	for i := from; i < from+n; i++ {
		r, err := st.Append(telemetry(i))
		if err != nil {
			t.Errorf("Append: %v", err)
			return last
		}
		last = r.Seq
		if i%200 == 199 {
			// Pace the producer like sensors would (this is the load, not
			// a wait for a condition).
			select {
			case <-time.After(2 * time.Millisecond):
			case <-ctx.Done():
				return last
			}
		}
	}
	return last
}

// checkNoLoss fails the test unless every seq from 1 to last arrived, and
// the uplink resent at most maxResends records (what was in flight at the
// outages). brokerDups tells whether the subscriber may also see the
// broker's own redeliveries (after a broker restart, QoS 1 messages in
// flight to the subscriber are delivered again); otherwise every duplicate
// must be one of the uplink's resends.
func checkNoLoss(t *testing.T, col *collector, u *Uplink, last uint64, maxResends int, brokerDups bool) {
	t.Helper()
	col.waitUntil(fmt.Sprintf("every seq 1..%d", last), 60*time.Second, func() bool { return col.haveAll(last, nil) })
	resends := int(u.telemetry.Sent()) - int(last)
	dups := col.duplicates()
	t.Logf("every seq 1..%d arrived; the uplink resent %d records; the subscriber saw %d duplicates", last, resends, len(dups))
	if resends > maxResends {
		t.Errorf("the uplink resent %d records; at most %d (the in-flight window per outage) expected", resends, maxResends)
	}
	if !brokerDups && len(dups) > resends {
		t.Errorf("%d duplicates but only %d resends: %v...", len(dups), resends, dups[:min(20, len(dups))])
	}
}

func TestBrokerRestartMidStream(t *testing.T) {
	b := startBroker(t)
	col := newCollector(t, b, "central", "floorhub/gw1/#")
	st := openStore(t, filepath.Join(t.TempDir(), "fh.db"))
	u, err := New(st, nil, testOptions(t, b))
	if err != nil {
		t.Fatal(err)
	}
	runUplink(t, u)

	const total = 30000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lastc := make(chan uint64, 1)
	go func() { lastc <- produce(ctx, t, st, 0, total) }()

	col.waitUntil("the stream to start", 30*time.Second, func() bool { return len(col.seqs) >= 3000 })
	b.stop()
	testkit.Eventually(t, "the uplink to notice", 30*time.Second, func() bool { return !u.Connected() })
	col.mu.Lock()
	seen := len(col.seqs)
	col.mu.Unlock()
	b.start() // same port, same state
	last := <-lastc
	checkNoLoss(t, col, u, last, 2*u.o.MaxInFlight*u.o.BatchSize, true)
	if seen >= int(last) {
		t.Errorf("the outage came too late to test anything: %d of %d seen before it", seen, last)
	}
}

// proxy is a TCP proxy that the test can cut, or take down for a while.
type proxy struct {
	t      testing.TB
	target string
	addr   string

	mu     sync.Mutex
	isDown bool // new connections are closed at once
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

// startProxy listens until the test ends: a link that is down refuses
// connections (closes them at once) instead of giving its port up, which
// another process could take before the link came back.
func startProxy(t testing.TB, target string) *proxy {
	p := &proxy{t: t, target: target, conns: map[net.Conn]bool{}}
	ln, addr := testkit.ListenAddr(t)
	p.addr = addr
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			down := p.isDown
			p.mu.Unlock()
			if down {
				c.Close()
				continue
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[s] = true, true
			p.mu.Unlock()
			p.wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer p.wg.Done()
				io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			go pipe(s, c)
			go pipe(c, s)
		}
	}()
	t.Cleanup(func() { ln.Close(); p.down(); p.wg.Wait() })
	return p
}

// cut closes every proxied connection, like a link that drops.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// down cuts and refuses new connections until up.
func (p *proxy) down() {
	p.mu.Lock()
	p.isDown = true
	p.mu.Unlock()
	p.cut()
}

func (p *proxy) up() {
	p.mu.Lock()
	p.isDown = false
	p.mu.Unlock()
}

func TestTCPCutMidStream(t *testing.T) {
	b := startBroker(t)
	col := newCollector(t, b, "central", "floorhub/gw1/#")
	px := startProxy(t, b.Addr())
	st := openStore(t, filepath.Join(t.TempDir(), "fh.db"))
	o := testOptions(t, b)
	o.URL = "tcp://" + px.addr
	u, err := New(st, testCommander{}, o)
	if err != nil {
		t.Fatal(err)
	}
	runUplink(t, u)

	const total = 30000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lastc := make(chan uint64, 1)
	go func() { lastc <- produce(ctx, t, st, 0, total) }()

	// A retained command runs once, live, and is refused when the broker
	// replays it to the new subscription after a reconnect. A result is
	// not retried (a result published just before a cut is lost), so the
	// test waits for each before it cuts the link again.
	var outcomes []string
	results := func(n int) func() bool {
		return func() bool { // col.mu held
			outcomes = outcomes[:0]
			for _, r := range col.results {
				var res CommandResult
				json.Unmarshal(r, &res)
				if string(res.RequestID) == `"retained"` {
					outcomes = append(outcomes, fmt.Sprint(res.OK, " ", res.Error))
				}
			}
			return len(outcomes) >= n
		}
	}
	// The first heartbeat comes after the command subscription.
	col.waitUntil("connected and subscribed", 30*time.Second, func() bool { return len(col.heartbeat) > 0 })
	col.client.Publish("floorhub/gw1/cmd/ping", 1, true, []byte(`{"request_id":"retained"}`)).Wait()
	defer func() { col.client.Publish("floorhub/gw1/cmd/ping", 1, true, []byte{}).Wait() }()
	col.waitUntil("the retained command's live result", 30*time.Second, results(1))

	col.waitUntil("the stream to start", 30*time.Second, func() bool { return len(col.seqs) >= 3000 })
	px.cut() // the link drops; reconnect at once works
	col.waitUntil("more records", 30*time.Second, func() bool { return len(col.seqs) >= 8000 })
	col.waitUntil("the retained command's result after the reconnect", 30*time.Second, results(2))
	px.down() // the link stays down a while
	testkit.Eventually(t, "the uplink to notice", 30*time.Second, func() bool { return !u.Connected() })
	px.up()
	last := <-lastc
	checkNoLoss(t, col, u, last, 3*u.o.MaxInFlight*u.o.BatchSize, false)

	col.mu.Lock()
	results(0)()
	col.mu.Unlock()
	t.Logf("retained command outcomes: %q", outcomes)
	if outcomes[0] != "true " || outcomes[1] != "false refused" {
		t.Errorf("retained command outcomes %q; want it run once live, then refused on replay", outcomes)
	}
}

// TestHelperProcess is the agent in the kill -9 test: a store, the uplink
// and a producer in a child process. It is not a test on its own.
func TestHelperProcess(t *testing.T) {
	if os.Getenv("FH_HELPER") != "1" {
		t.Skip("helper process for TestKill9")
	}
	st, err := store.Open(os.Getenv("FH_STORE"), &store.Options{CommitInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := New(st, nil, Options{URL: os.Getenv("FH_BROKER"), GatewayID: "gw1", BootID: os.Getenv("FH_BOOT"),
		BatchSize: 100, CursorInterval: 20 * time.Millisecond, HeartbeatInterval: time.Hour,
		Backoff: backoff.Options{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	// Each run appends FH_COUNT records (the first is killed on the way),
	// then waits until everything committed is acknowledged and durable.
	count, _ := strconv.Atoi(os.Getenv("FH_COUNT"))
	pace := time.NewTicker(time.Millisecond) // 100 records per tick: a steady producer
	defer pace.Stop()
	for i := 0; i < count; i++ {
		if _, err := st.Append(telemetry(i)); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			<-pace.C
		}
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	last := st.Stats().CommittedSeq
	testkit.Eventually(t, "the telemetry cursor to reach the last committed seq", time.Minute, func() bool {
		c, _ := st.Cursor(CursorTelemetry)
		return c >= last
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestKill9MidStream(t *testing.T) {
	b := startBroker(t)
	col := newCollector(t, b, "central", "floorhub/gw1/#")
	col.countOnly = true
	path := filepath.Join(t.TempDir(), "fh.db")
	start := func(boot string, count int) (*exec.Cmd, *bytes.Buffer) {
		cmd := testkit.Reexec(t, "-test.run=^TestHelperProcess$", "-test.v")
		cmd.Env = append(os.Environ(), "FH_HELPER=1", "FH_STORE="+path, "FH_BROKER="+b.URL(),
			"FH_COUNT="+strconv.Itoa(count), "FH_BOOT="+boot)
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, out
	}

	child, out := start("boot-1", 40000)
	col.waitUntil("the stream to start", 60*time.Second, func() bool { return len(col.seqs) >= 5000 })
	child.Process.Signal(syscall.SIGKILL)
	err := child.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended by %v, not by kill -9:\n%s", err, out)
	}
	col.mu.Lock()
	var seenMax uint64
	for s := range col.seqs {
		seenMax = max(seenMax, s)
	}
	col.mu.Unlock()

	// What the store says was durably delivered at the kill.
	st, err := store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	cursorAtKill, err := st.Cursor(CursorTelemetry)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if cursorAtKill >= 40000 {
		t.Fatalf("the kill came after the end (cursor %d)", cursorAtKill)
	}

	child, out = start("boot-2", 5000)
	waitErr := make(chan error, 1)
	go func() { waitErr <- child.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Fatalf("restarted child: %v\n%s", err, out)
		}
	case <-time.After(90 * time.Second):
		child.Process.Kill()
		<-waitErr
		t.Fatalf("restarted child did not finish:\n%s", out)
	}

	st, err = store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	last := st.Stats().CommittedSeq
	st.Close()

	// The receiver's view: the skipped ranges come from the retained birth.
	col.waitUntil("the second birth", 10*time.Second, func() bool {
		for _, s := range col.status {
			if bytes.Contains(s.Payload, []byte(`"boot-2"`)) && bytes.Contains(s.Payload, []byte(`"online"`)) {
				return true
			}
		}
		return false
	})
	var skipped [][2]uint64
	col.mu.Lock()
	for _, s := range col.status {
		var st Status
		json.Unmarshal(s.Payload, &st)
		if st.BootID == "boot-2" && st.State == "online" {
			skipped = st.SkippedSeq
		}
	}
	col.mu.Unlock()
	col.waitUntil(fmt.Sprintf("received ∪ skipped = 1..%d", last), 60*time.Second, func() bool { return col.haveAll(last, skipped) })
	// Duplicates: only records sent by the first run and not durably
	// acknowledged: above the cursor at the kill, below what it skipped.
	dups := col.duplicates()
	firstSkipped := uint64(1<<64 - 1)
	if len(skipped) > 0 {
		firstSkipped = skipped[0][0]
	}
	for _, d := range dups {
		if d <= cursorAtKill || d >= firstSkipped {
			t.Errorf("duplicate seq %d outside what was in flight at the kill (%d, %d)", d, cursorAtKill, firstSkipped)
			break
		}
	}
	t.Logf("last seq %d, skipped %v, cursor at kill %d, seen by the subscriber at the kill: up to %d; %d duplicates",
		last, skipped, cursorAtKill, seenMax, len(dups))
}

// silentServer accepts TCP connections and never answers: a broker that
// hangs during CONNECT. accepted gets a value per connection.
func silentServer(t *testing.T) (addr string, accepted <-chan struct{}) {
	ln := testkit.Listen(t)
	acc := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case acc <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), acc
}

func TestBackoffNeverGivesUpAndStopsOnCancel(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "fh.db"))
	dead := testkit.RefusedAddr(t) // a broker that is down
	delays := make(chan time.Duration)
	fire := make(chan time.Time)
	u, err := New(st, nil, Options{URL: "tcp://" + dead, GatewayID: "gw1",
		Backoff: backoff.Options{
			Rand: func(n int64) int64 { return n - 1 }, // the ceiling, to see the growth
			After: func(d time.Duration) <-chan time.Time {
				delays <- d
				return fire
			},
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60}
	for i, w := range want {
		select {
		case d := <-delays:
			if d != w*time.Second {
				t.Fatalf("attempt %d: delay %v, want %v", i+1, d, w*time.Second)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("attempt %d: no retry: the uplink gave up", i+1)
		}
		if i < len(want)-1 {
			fire <- time.Time{} // the delay is over
		}
	}
	// Cancel during a backoff wait.
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return promptly when cancelled during a backoff wait")
	}

	// Cancel during a connection attempt that hangs.
	addr, accepted := silentServer(t)
	u, err = New(st, nil, Options{URL: "tcp://" + addr, GatewayID: "gw1", ConnectTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	go func() { done <- u.Run(ctx) }()
	select {
	case <-accepted: // the uplink is now waiting for a CONNACK that never comes
	case <-time.After(10 * time.Second):
		t.Fatal("the uplink did not connect to the silent server")
	}
	begin := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		t.Logf("Run returned %v after cancel during CONNECT", time.Since(begin))
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return promptly when cancelled during a connection attempt")
	}
	if err := u.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run: %v", err)
	}
}

func TestBrokerDownAtStart(t *testing.T) {
	b := startBroker(t)
	col := newCollector(t, b, "central", "floorhub/gw1/#")
	b.stop() // the gateway boots before its network
	st := openStore(t, filepath.Join(t.TempDir(), "fh.db"))
	last := appendN(t, st, 0, 2000)
	u, err := New(st, nil, testOptions(t, b))
	if err != nil {
		t.Fatal(err)
	}
	runUplink(t, u) // does not wait for the broker
	if u.Connected() {
		t.Fatal("connected to a stopped broker")
	}
	b.start()
	checkNoLoss(t, col, u, last, 0, false)
}

func TestStoreClosedUnderTheUplink(t *testing.T) {
	b := startBroker(t)
	col := newCollector(t, b, "central", "floorhub/gw1/#")
	st := openStore(t, filepath.Join(t.TempDir(), "fh.db"))
	last := appendN(t, st, 0, 100)
	u, err := New(st, nil, testOptions(t, b))
	if err != nil {
		t.Fatal(err)
	}
	stop := runUplink(t, u)
	col.waitUntil("the records", 30*time.Second, func() bool { return col.haveAll(last, nil) })
	// An agent that closes its store first: the uplink logs the failing
	// reads, keeps its connection, and still stops promptly.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if !u.Connected() {
		t.Error("a closed store dropped the connection")
	}
	stop()
	col.waitUntil("the offline status", 10*time.Second, func() bool {
		return len(col.status) > 0 && bytes.Contains(col.status[len(col.status)-1].Payload, []byte(`"offline"`))
	})
}

func TestBrokerPacketLimitShrinksTheBatch(t *testing.T) {
	// The broker drops a client that sends a packet over 30 KB; a batch
	// of 500 records is about 110 KB.
	b := startBroker(t, "max_packet_size 30000")
	col := newCollector(t, b, "central", "floorhub/gw1/#")
	st := openStore(t, filepath.Join(t.TempDir(), "fh.db"))
	last := appendN(t, st, 0, 5000)
	o := testOptions(t, b)
	o.BatchSize = 500
	u, err := New(st, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	runUplink(t, u)
	col.waitUntil("every record", 60*time.Second, func() bool { return col.haveAll(last, nil) })
	if bs := u.telemetry.BatchSize(); bs > 136 {
		t.Errorf("batch size %d; records of ~220 bytes cannot fit 30 KB at more than ~136", bs)
	} else {
		t.Logf("batch size settled at %d", bs)
	}
}
