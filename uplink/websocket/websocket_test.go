package websocket

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"

	"github.com/floorhub/floorhub/aether"
	"github.com/floorhub/floorhub/command"
	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/store"
	"github.com/floorhub/floorhub/uplink/backoff"
)

// central is a test central server speaking Aether V3: it records every
// seq it receives and acknowledges according to its policy. It survives
// restarts of its HTTP server, like a real center's database would.
type central struct {
	t *testing.T

	mu        sync.Mutex
	got       map[uint64]int // seq -> times received
	conns     int            // connections accepted so far
	recMsgs   int            // record messages on the current connection
	lastSeq   uint64         // last seq of the latest record message on the current connection
	ackEvery  int            // ack after every n record messages (0: only on heartbeats)
	noAck     bool           // never ack
	dropAfter int            // first connection only: drop after n record messages
	hellos    []Hello
	previews  []uint64                  // seqs of LIVE previews, in arrival order
	chats     []string                  // chat records' messages, in arrival order
	acks      []string                  // alert_ack records: "<alert_id> <by>", in arrival order
	beats     int                       // heartbeats received
	live      map[*gws.Conn]*sync.Mutex // open connections and their write locks
	inbox     chan aether.Message       // everything but records, heartbeats and HELLO
	token     string                    // required bearer token, if set
	handlers  sync.WaitGroup

	srv    *httptest.Server
	addr   string
	secure bool // serve wss
}

func newCentral(t *testing.T) *central { return newCentralTLS(t, false) }

func newCentralTLS(t *testing.T, secure bool) *central {
	c := &central{t: t, got: map[uint64]int{}, live: map[*gws.Conn]*sync.Mutex{}, inbox: make(chan aether.Message, 64), secure: secure}
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(c.serve))
	if secure {
		c.srv.StartTLS()
	} else {
		c.srv.Start()
	}
	c.addr = c.srv.Listener.Addr().String()
	t.Cleanup(func() {
		c.stop()
		c.handlers.Wait()
	})
	return c
}

// stop closes the server and every connection, like a crashed center.
func (c *central) stop() {
	c.srv.Close()
	c.dropAll()
}

// dropAll closes every connection.
func (c *central) dropAll() {
	c.srv.CloseClientConnections()
	c.mu.Lock()
	for ws := range c.live {
		ws.NetConn().Close()
	}
	c.mu.Unlock()
}

// restart is a center that crashes and comes back at once: every
// connection drops. It keeps its listening socket (a restart that gave the
// port up could lose it to another process), so a client sees the crash
// only as its connection dropping.
func (c *central) restart() {
	c.dropAll()
}

func (c *central) url() string {
	scheme := "ws://"
	if c.secure {
		scheme = "wss://"
	}
	return scheme + c.addr + "/v3/ws/group/site-1/client/gw-1"
}

var upgrader = gws.Upgrader{}

func (c *central) serve(w http.ResponseWriter, r *http.Request) {
	if c.token != "" && r.Header.Get("Authorization") != "Bearer "+c.token {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	c.handlers.Add(1)
	defer c.handlers.Done()
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer ws.Close()
	wmu := &sync.Mutex{}
	c.mu.Lock()
	c.conns++
	first := c.conns == 1
	c.recMsgs = 0
	c.live[ws] = wmu
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.live, ws)
		c.mu.Unlock()
	}()
	write := func(m aether.Message) {
		m.Stamp(time.Now())
		b, err := m.Encode()
		if err != nil {
			c.t.Errorf("central: encode: %v", err)
			return
		}
		wmu.Lock()
		defer wmu.Unlock()
		ws.WriteMessage(gws.TextMessage, b)
	}
	ack := func(seq uint64) {
		write(aether.Message{MsgType: aether.TypeCmd, Target: aether.TargetDirect, ToID: "gw-1", Cmd: aether.CmdAck,
			Payload: json.RawMessage(fmt.Sprintf(`{"seq":%d}`, seq))})
	}
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		m, err := aether.Decode(data)
		if err != nil {
			c.t.Errorf("central: uplink sent an invalid envelope %s: %v", data, err)
			return
		}
		var b batch
		switch {
		case m.Cmd == aether.CmdRecords:
			if err := json.Unmarshal(m.Payload, &b); err != nil || b.GatewayID != "gw-1" || len(b.Records) == 0 {
				c.t.Errorf("central: bad records payload %.200s: %v", m.Payload, err)
				return
			}
			if m.Msg != b.Records[0].Kind || m.Target != aether.TargetGroup || m.MsgType != aether.TypeMsg {
				c.t.Errorf("central: records envelope %s", data)
			}
			c.mu.Lock()
			for _, r := range b.Records {
				c.got[r.Seq]++
				if r.Chat != nil {
					c.chats = append(c.chats, r.Chat.Message)
				}
				if r.Ack != nil && r.Alert != nil && r.Kind == "alert_ack" {
					c.acks = append(c.acks, fmt.Sprintf("%d %s", r.Alert.ID, r.Ack.By))
				}
			}
			c.recMsgs++
			c.lastSeq = b.Records[len(b.Records)-1].Seq
			n, last, drop := c.recMsgs, c.lastSeq, first && c.dropAfter > 0 && c.recMsgs >= c.dropAfter
			doAck := !c.noAck && c.ackEvery > 0 && n%c.ackEvery == 0
			c.mu.Unlock()
			if drop {
				ws.NetConn().Close() // mid-stream, without a close frame
				return
			}
			if doAck {
				ack(last)
			}
		case m.Cmd == aether.CmdLive:
			// A preview: never acknowledged, never counted as received.
			if err := json.Unmarshal(m.Payload, &b); err != nil || b.GatewayID != "gw-1" || len(b.Records) != 1 ||
				m.Msg != b.Records[0].Kind || b.Records[0].Kind == "telemetry" {
				c.t.Errorf("central: bad LIVE %s: %v", data, err)
				return
			}
			c.mu.Lock()
			c.previews = append(c.previews, b.Records[0].Seq)
			c.mu.Unlock()
		case m.MsgType == aether.TypeHeartbeat:
			var h Heartbeat
			if err := json.Unmarshal(m.Payload, &h); err != nil || h.BootID != "boot-1" || h.RunID != "run-1" {
				c.t.Errorf("central: heartbeat without the boot's and the run's ids: %s", m.Payload)
			}
			// Late acks: whatever was not acked yet is acked now.
			c.mu.Lock()
			c.beats++
			last, noAck := c.lastSeq, c.noAck
			c.mu.Unlock()
			if last > 0 && !noAck {
				ack(last)
			}
			write(aether.Message{MsgType: aether.TypeHeartbeat, Target: aether.TargetEcho})
		case m.Cmd == aether.CmdHello:
			var h Hello
			if err := json.Unmarshal(m.Payload, &h); err != nil {
				c.t.Errorf("central: bad HELLO %s: %v", m.Payload, err)
			}
			c.mu.Lock()
			c.hellos = append(c.hellos, h)
			c.mu.Unlock()
		default:
			c.inbox <- m
		}
	}
}

// batch is what central reads of a RECORDS or LIVE payload.
type batch struct {
	GatewayID string `json:"gateway_id"`
	Records   []struct {
		Seq  uint64 `json:"seq"`
		Kind string `json:"kind"`
		Chat *struct {
			Message string `json:"message"`
		} `json:"chat"`
		Alert *struct {
			ID uint64 `json:"alert_id"`
		} `json:"alert"`
		Ack *struct {
			By string `json:"acknowledged_by"`
		} `json:"ack"`
	} `json:"records"`
}

// command sends a command to the gateway on every open connection.
func (c *central) command(m aether.Message) {
	m.Stamp(time.Now())
	b, err := m.Encode()
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for ws, wmu := range c.live {
		wmu.Lock()
		ws.WriteMessage(gws.TextMessage, b)
		wmu.Unlock()
	}
}

// missing returns the seqs in 1..last not received.
func (c *central) missing(last uint64) []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var miss []uint64
	for s := uint64(1); s <= last; s++ {
		if c.got[s] == 0 {
			miss = append(miss, s)
		}
	}
	return miss
}

// set changes central's policy under its lock.
func (c *central) set(f func(c *central)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c)
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(t.TempDir()+"/fh.db", &store.Options{CommitInterval: 5 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// appendRecords appends n records (telemetry, with an alert every 50) and
// returns the last seq.
func appendRecords(t *testing.T, s *store.Store, n int) uint64 {
	t.Helper()
	var last uint64
	for i := 0; i < n; i++ {
		r := store.Record{Kind: store.KindTelemetry, DeviceID: 1 + i%3, TS: time.Now(), BootID: "b", ClockSynced: true,
			Metrics: []store.Metric{{Name: "temperature", Value: float64(i), Unit: "°C"}}}
		if i%50 == 49 {
			r = store.Record{Kind: store.KindAlert, DeviceID: 1, TS: time.Now(), BootID: "b", ClockSynced: true,
				Alert: &store.Alert{Rule: "hot", Severity: "warning", Title: "hot", State: store.AlertActive, Metric: "temperature"}}
		}
		got, err := s.Append(r)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		last = got.Seq
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	return last
}

func testOptions(url string) Options {
	return Options{
		URL:            url,
		BatchSize:      20,
		CursorInterval: 10 * time.Millisecond,
		Logger:         quiet(),
		Version:        "test",
		BootID:         "boot-1",
		RunID:          "run-1",
		Backoff:        backoff.Options{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond},
		heartbeat:      50 * time.Millisecond,
	}
}

// run starts u.Run and returns a function that stops it and checks that it
// returned promptly.
func run(t *testing.T, u *Uplink) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v, want nil after cancel", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// Floor chat messages are records like the others: RECORDS messages of
// kind chat, in seq order, behind the cursor.
func TestChatRecords(t *testing.T) {
	c := newCentral(t)
	c.set(func(c *central) { c.ackEvery = 1 })
	s := openStore(t)
	ch, _, err := s.CreateChat([]int64{1, 2}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	appendRecords(t, s, 10)
	for _, text := range []string{"belt replaced", "line running"} {
		if _, err := s.AppendChat(context.Background(), store.Record{Kind: store.KindChat, TS: time.Now(), ClockSynced: true,
			Chat: &store.ChatMessage{ChatID: ch.ID, From: 1, FromName: "alice", To: 2, Text: text}}); err != nil {
			t.Fatal(err)
		}
	}
	u, err := New(s, nil, testOptions(c.url()))
	if err != nil {
		t.Fatal(err)
	}
	run(t, u)
	testkit.Eventually(t, "both chat messages at the central side", 10*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.chats) == 2
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.chats[0] != "belt replaced" || c.chats[1] != "line running" {
		t.Fatalf("chat records %q", c.chats)
	}
}

// An alert acknowledgement reaches the central side as a RECORDS message
// of kind alert_ack, with the alert and the ack.
func TestAlertAckRecords(t *testing.T) {
	c := newCentral(t)
	c.set(func(c *central) { c.ackEvery = 1 })
	s := openStore(t)
	appendRecords(t, s, 10)
	raised, err := s.Append(store.Record{Kind: store.KindAlert, DeviceID: 2, TS: time.Now(), ClockSynced: true,
		Alert: &store.Alert{Rule: "hot", Severity: "critical", Title: "hot", State: store.AlertActive}})
	if err != nil {
		t.Fatal(err)
	}
	al := *raised.Alert
	if _, err := s.Append(store.Record{Kind: store.KindAlertAck, DeviceID: 2, TS: time.Now(), ClockSynced: true,
		Alert: &al, Ack: &store.AlertAck{By: "alice", Raised: raised.TS}}); err != nil {
		t.Fatal(err)
	}
	u, err := New(s, nil, testOptions(c.url()))
	if err != nil {
		t.Fatal(err)
	}
	run(t, u)
	testkit.Eventually(t, "the acknowledgement at the central side", 10*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.acks) == 1
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	if want := fmt.Sprintf("%d alice", raised.Seq); c.acks[0] != want {
		t.Fatalf("alert_ack records %q, want %q", c.acks, want)
	}
}

func TestDeliveryAcrossDropsRestartsAndLateAcks(t *testing.T) {
	c := newCentral(t)
	c.set(func(c *central) { c.ackEvery, c.dropAfter = 3, 7 })
	s := openStore(t)
	last := appendRecords(t, s, 400)

	o := testOptions(c.url())
	u, err := New(s, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, u)

	// The first connection is dropped mid-stream after 7 messages.
	testkit.Eventually(t, "the second connection", 20*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.conns >= 2
	})
	// Then the center crashes and comes back while records keep coming.
	c.restart()
	last = appendRecords(t, s, 300)
	testkit.Eventually(t, "every record delivered and acknowledged", 30*time.Second, func() bool {
		cur, err := s.Cursor(Cursor)
		return err == nil && cur >= last && len(c.missing(last)) == 0
	})
	if miss := c.missing(last); len(miss) > 0 {
		t.Fatalf("lost seqs: %v", miss)
	}
	c.mu.Lock()
	conns, hellos := c.conns, append([]Hello(nil), c.hellos...)
	resent := 0
	for _, n := range c.got {
		if n > 1 {
			resent++
		}
	}
	c.mu.Unlock()
	if resent == 0 {
		t.Errorf("no record was sent twice: the drop did not hit unacknowledged records")
	}
	if conns < 3 {
		t.Errorf("connections = %d, want at least 3 (drop, restart)", conns)
	}
	// A connection killed by the restart may die before its HELLO is read.
	if len(hellos) < 2 || hellos[0].GatewayID != "gw-1" || hellos[0].BootID != "boot-1" || hellos[0].RunID != "run-1" || hellos[0].SkippedSeq == nil {
		t.Errorf("HELLOs = %+v", hellos)
	}
	for i := 1; i < len(hellos); i++ {
		if hellos[i].AckedSeq < hellos[i-1].AckedSeq {
			t.Errorf("HELLO acked_seq went back: %+v", hellos)
		}
	}
	stop()
	if u.Connected() {
		t.Errorf("Connected after Run returned")
	}
}

func TestCursorAdvancesOnlyOnAck(t *testing.T) {
	c := newCentral(t)
	c.set(func(c *central) { c.noAck = true })
	s := openStore(t)
	last := appendRecords(t, s, 60) // 3 messages of 20: within the window
	o := testOptions(c.url())
	o.AckTimeout = time.Hour // this test acks by hand
	u, err := New(s, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	run(t, u)
	testkit.Eventually(t, "every record received", 10*time.Second, func() bool { return len(c.missing(last)) == 0 })
	// Two heartbeats (and many cursor intervals) pass with nothing acked.
	c.mu.Lock()
	beats := c.beats
	c.mu.Unlock()
	testkit.Eventually(t, "two more heartbeats", 10*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.beats >= beats+2
	})
	if cur, _ := s.Cursor(Cursor); cur != 0 || u.Acked() != 0 {
		t.Fatalf("cursor %d, acked %d before any ACK; want 0", cur, u.Acked())
	}
	// Ack the first message only: the cursor moves to its last seq.
	c.command(aether.Message{MsgType: aether.TypeCmd, Target: aether.TargetDirect, ToID: "gw-1", Cmd: "ACK", Payload: json.RawMessage(`{"seq":20}`)})
	testkit.Eventually(t, "cursor at 20", 10*time.Second, func() bool { cur, _ := s.Cursor(Cursor); return cur == 20 })
	c.command(aether.Message{MsgType: aether.TypeCmd, Target: aether.TargetDirect, ToID: "gw-1", Cmd: "ack", Payload: json.RawMessage(fmt.Sprintf(`{"seq":%d}`, last))})
	testkit.Eventually(t, "cursor at the last seq", 10*time.Second, func() bool { cur, _ := s.Cursor(Cursor); return cur == last })
}

// While a backlog drains, a new alert goes out at once as a LIVE preview,
// then again in order in RECORDS; once caught up, no preview is sent.
func TestLiveAlertsOvertakeTheBacklog(t *testing.T) {
	c := newCentral(t)
	c.set(func(c *central) { c.noAck = true })
	s := openStore(t)
	backlog := appendRecords(t, s, 1000)
	o := testOptions(c.url())
	o.AckTimeout = time.Hour // acked by hand
	u, err := New(s, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	run(t, u)
	// The stream stops at MaxInFlight unacknowledged messages.
	var window uint64
	testkit.Eventually(t, "the first window of the backlog", 10*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		window = c.lastSeq
		return c.recMsgs == u.o.MaxInFlight
	})

	alert := func() store.Record {
		r, err := s.Append(store.Record{Kind: store.KindAlert, DeviceID: 2, TS: time.Now(), BootID: "b", ClockSynced: true,
			Alert: &store.Alert{Rule: "hot", Severity: "critical", Title: "hot", State: store.AlertActive, Metric: "temperature"}})
		if err != nil {
			t.Fatal(err)
		}
		u.Publish(r)
		return r
	}
	a := alert()
	testkit.Eventually(t, "the alert's preview", 10*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return slices.Contains(c.previews, a.Seq)
	})
	c.mu.Lock()
	for seq := range c.got {
		if seq > window {
			t.Errorf("seq %d received before the window was acknowledged", seq)
		}
	}
	c.mu.Unlock()

	// Acknowledged as it goes, the backlog drains and the alert comes in
	// RECORDS as well, in its place.
	c.set(func(c *central) { c.noAck, c.ackEvery = false, 1 })
	c.command(aether.Message{MsgType: aether.TypeCmd, Target: aether.TargetDirect, ToID: "gw-1", Cmd: aether.CmdAck,
		Payload: json.RawMessage(fmt.Sprintf(`{"seq":%d}`, window))})
	testkit.Eventually(t, "every record, the alert included", 10*time.Second, func() bool { return len(c.missing(a.Seq)) == 0 })
	testkit.Eventually(t, "the cursor at the alert", 10*time.Second, func() bool { cur, _ := s.Cursor(Cursor); return cur == a.Seq })
	if a.Seq <= backlog {
		t.Fatalf("alert seq %d within the backlog (%d)", a.Seq, backlog)
	}

	// Caught up: the next alert goes in RECORDS only.
	b := alert()
	testkit.Eventually(t, "the second alert in RECORDS", 10*time.Second, func() bool { return len(c.missing(b.Seq)) == 0 })
	c.mu.Lock()
	defer c.mu.Unlock()
	if slices.Contains(c.previews, b.Seq) || len(c.previews) != 1 {
		t.Fatalf("previews %v: want only seq %d", c.previews, a.Seq)
	}
}

func TestAckTimeoutReconnectsAndResends(t *testing.T) {
	c := newCentral(t)
	c.set(func(c *central) { c.noAck = true })
	s := openStore(t)
	last := appendRecords(t, s, 20)
	o := testOptions(c.url())
	o.AckTimeout = 100 * time.Millisecond
	u, err := New(s, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	run(t, u)
	testkit.Eventually(t, "a resend on a new connection", 20*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.conns >= 2 && c.got[last] >= 2
	})
	if cur, _ := s.Cursor(Cursor); cur != 0 {
		t.Fatalf("cursor = %d without any ACK", cur)
	}
}

type commander struct{}

func (commander) Command(ctx context.Context, name string, args json.RawMessage) (any, error) {
	switch name {
	case "ping":
		if len(args) > 0 {
			return nil, fmt.Errorf("%w: ping takes no arguments", command.ErrBadArgs)
		}
		return map[string]bool{"pong": true}, nil
	}
	return nil, fmt.Errorf("%w: %q", command.ErrUnknownCommand, name)
}

func TestCommands(t *testing.T) {
	c := newCentral(t)
	c.token = "secret-token"
	s := openStore(t)
	o := testOptions(c.url())
	o.Token = "secret-token"
	u, err := New(s, commander{}, o)
	if err != nil {
		t.Fatal(err)
	}
	run(t, u)
	testkit.Eventually(t, "connected", 10*time.Second, u.Connected)
	// The gateway is connected once it has read the upgrade's answer,
	// which may be before central's handler has listed the connection:
	// a command sent then reaches nobody.
	testkit.Eventually(t, "central lists the connection", 10*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.live) > 0
	})
	next := func() aether.Message {
		t.Helper()
		for {
			select {
			case m := <-c.inbox:
				if m.Cmd == aether.CmdResult {
					return m
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no RESULT")
			}
		}
	}
	// A group command nobody here runs gets no answer; the direct ping
	// that follows is the first answer.
	c.command(aether.Message{MsgType: aether.TypeCmd, Target: aether.TargetGroup, Cmd: "RELOAD_UI", FromID: "ui-1"})
	c.command(aether.Message{MsgType: aether.TypeCmd, Target: aether.TargetDirect, ToID: "gw-1", FromID: "op-7", Cmd: "PING", Payload: json.RawMessage(`{"request_id":"r1"}`)})
	r := next()
	if r.Target != aether.TargetDirect || r.ToID != "op-7" || r.Msg != "PING" ||
		!strings.Contains(string(r.Payload), `"ok":true`) || !strings.Contains(string(r.Payload), `"pong":true`) || !strings.Contains(string(r.Payload), `"request_id":"r1"`) {
		t.Errorf("ping reply = %+v payload %s", r, r.Payload)
	}
	c.command(aether.Message{MsgType: aether.TypeCmd, Target: aether.TargetDirect, ToID: "gw-1", FromID: "op-7", Cmd: "reboot"})
	r = next()
	if !strings.Contains(string(r.Payload), `"error":"unknown_command"`) {
		t.Errorf("unknown command reply payload %s", r.Payload)
	}
	c.command(aether.Message{MsgType: aether.TypeCmd, Target: aether.TargetDirect, ToID: "gw-1", FromID: "op-7", Cmd: "ping", Payload: json.RawMessage(`{"x":1}`)})
	r = next()
	if !strings.Contains(string(r.Payload), `"error":"bad_args"`) {
		t.Errorf("bad args reply payload %s", r.Payload)
	}
}

func TestBackoffAndCancel(t *testing.T) {
	// Every dial is refused at once.
	addr := testkit.RefusedAddr(t)
	s := openStore(t)
	o := testOptions("ws://" + addr + "/v3/ws/group/site-1/client/gw-1")
	var mu sync.Mutex
	var delays []time.Duration
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o.Backoff = backoff.Options{
		Initial: time.Second, Max: 8 * time.Second,
		Rand: func(n int64) int64 { return n - 1 }, // the ceiling: shows the growth
		After: func(d time.Duration) <-chan time.Time {
			mu.Lock()
			delays = append(delays, d)
			if len(delays) == 6 {
				cancel()
			}
			mu.Unlock()
			ch := make(chan time.Time, 1)
			ch <- time.Now() // no real waiting in the test
			return ch
		},
	}
	u, err := New(s, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	mu.Lock()
	defer mu.Unlock()
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second}
	for i, w := range want {
		if delays[i] != w {
			t.Fatalf("delays = %v, want %v...", delays, want)
		}
	}
	if err := u.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
}

func TestNewValidates(t *testing.T) {
	s := openStore(t)
	good := "wss://central.example/v3/ws/group/site-1/client/gw-1"
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{}, "URL is required"},
		{Options{URL: "http://x/v3/ws/group/a/client/b"}, "scheme"},
		{Options{URL: "ws://x/v3/ws/client/b"}, "path must end"},
		{Options{URL: "ws://x/v3/ws/group/a b/client/b"}, "group id"},
		{Options{URL: "ws://x/v3/ws/group/a/client/" + strings.Repeat("b", 65)}, "client id"},
		{Options{URL: good, GatewayID: "gw-2"}, "differs"},
		{Options{URL: good, HeartbeatInterval: 10 * time.Second}, "between"},
		{Options{URL: good, HeartbeatInterval: 61 * time.Second}, "between"},
		{Options{URL: good, BatchSize: -1}, "negative"},
		{Options{URL: good, AckTimeout: -1}, "negative"},
		{Options{URL: good, CAFile: "/nonexistent/ca.pem"}, "CAFile"},
		{Options{URL: good, CertFile: "/x.pem"}, "go together"},
		{Options{URL: "ws://x/v3/ws/group/a/client/b", CAFile: "/x.pem"}, "wss"},
	} {
		_, err := New(s, nil, tc.o)
		if !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want ErrOptions containing %q", tc.o, err, tc.want)
		}
		// New refuses with exactly Validate's error, a *FieldError (the
		// agent's config check runs Validate and maps the field to a key).
		var fe *FieldError
		if verr := tc.o.Validate(); verr == nil || err == nil || verr.Error() != err.Error() || !errors.As(verr, &fe) || fe.Field == "" {
			t.Errorf("New(%+v): Validate = %v, New = %v; want the same *FieldError", tc.o, verr, err)
		}
	}
	u, err := New(s, nil, Options{URL: good, HeartbeatInterval: 45 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if u.o.GatewayID != "gw-1" || u.group != "site-1" || u.o.AckTimeout != 90*time.Second || u.o.BatchSize != 100 {
		t.Errorf("defaults: %+v group %q", u.o, u.group)
	}
	if u.Connected() {
		t.Error("Connected before Run")
	}
}

func TestTLSWithCAFile(t *testing.T) {
	c := newCentralTLS(t, true)
	c.set(func(c *central) { c.ackEvery = 1 })
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	last := appendRecords(t, s, 30)

	// Without the CA the server's certificate is refused.
	o := testOptions(c.url())
	u, err := New(s, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err = u.session(ctx, backoff.New(backoff.Options{}))
	cancel()
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("session without the CA = %v, want a certificate error", err)
	}

	o.CAFile = ca
	u, err = New(s, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	run(t, u)
	testkit.Eventually(t, "delivery over wss", 10*time.Second, func() bool {
		cur, _ := s.Cursor(Cursor)
		return cur == last
	})
}

// crashedStore is a real store that reports seq ranges skipped by a crash
// (a real crash needs kill -9; the store's own tests cover that).
type crashedStore struct{ *store.Store }

func (crashedStore) Skipped() [][2]uint64 { return [][2]uint64{{5, 9}, {40, 41}} }

func TestHelloTellsSkippedSeqs(t *testing.T) {
	c := newCentral(t)
	s := openStore(t)
	o := testOptions(c.url())
	o.Clock = func() (bool, int64) { return true, 42 }
	u, err := New(crashedStore{s}, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	run(t, u)
	testkit.Eventually(t, "a HELLO", 10*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.hellos) > 0
	})
	c.mu.Lock()
	h := c.hellos[0]
	c.mu.Unlock()
	if fmt.Sprint(h.SkippedSeq) != "[[5 9] [40 41]]" || h.GatewayID != "gw-1" || h.Version != "test" ||
		!h.ClockSynced || h.MonoOffsetNS == nil || *h.MonoOffsetNS != 42 {
		t.Errorf("HELLO = %+v", h)
	}
}

func TestRunLeavesNoGoroutines(t *testing.T) {
	c := newCentral(t)
	c.set(func(c *central) { c.ackEvery = 1 })
	s := openStore(t)
	last := appendRecords(t, s, 50)
	before := runtime.NumGoroutine()
	u, err := New(s, commander{}, testOptions(c.url()))
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, u)
	testkit.Eventually(t, "delivery", 10*time.Second, func() bool { cur, _ := s.Cursor(Cursor); return cur == last })
	c.command(aether.Message{MsgType: aether.TypeCmd, Target: aether.TargetDirect, ToID: "gw-1", Cmd: "ping"})
	stop()
	c.stop()
	c.handlers.Wait()
	testkit.Eventually(t, "the uplink's goroutines to exit", 5*time.Second, func() bool { return runtime.NumGoroutine() <= before })
}
