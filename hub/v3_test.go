package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/floorhub/floorhub/aether"
	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/command"
	"github.com/floorhub/floorhub/internal/testkit"
)

var v3Secret = []byte("v3-test-secret-0123456789abcdef")

// v3env is a running hub with the V3 endpoint on a real socket.
type v3env struct {
	t     testing.TB
	hub   *Hub
	v3    *V3
	srv   *httptest.Server
	clock *testkit.Clock
	tick  chan time.Time
	stop  func()
}

type v3commander struct{}

func (v3commander) Command(ctx context.Context, name string, args json.RawMessage) (any, error) {
	switch name {
	case "ping":
		if len(args) > 0 {
			return nil, fmt.Errorf("%w: ping takes no arguments", command.ErrBadArgs)
		}
		return map[string]bool{"pong": true}, nil
	case "fail":
		return nil, errors.New("sensor bus error")
	}
	return nil, fmt.Errorf("%w: %q", command.ErrUnknownCommand, name)
}

func newV3Env(t testing.TB, edit func(*Options, *V3Options)) *v3env {
	t.Helper()
	return startV3Env(t, false, edit)
}

func startV3Env(t testing.TB, smallBuf bool, edit func(*Options, *V3Options)) *v3env {
	t.Helper()
	ver, err := auth.NewVerifier(auth.VerifierOptions{Secret: v3Secret})
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	o := Options{Verifier: ver, Logger: quiet}
	o.Conn.ConnectsPerMinute = -1
	e := &v3env{t: t, clock: testkit.NewClock(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)), tick: make(chan time.Time)}
	vo := V3Options{GatewayID: "gw", Group: "plant", Commander: v3commander{}, HeartbeatInterval: 30 * time.Second, Now: e.clock.Now, tick: e.tick}
	if edit != nil {
		edit(&o, &vo)
	}
	e.hub, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.v3, err = NewV3(e.hub, vo)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v3/ws/", e.v3.Handler())
	mux.Handle("/ws", e.hub.Handler())
	mux.Handle("/ws/", e.hub.Handler())
	e.srv = httptest.NewUnstartedServer(mux)
	if smallBuf {
		e.srv.Listener = smallBufListener{e.srv.Listener}
	}
	e.srv.Start()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); e.hub.Run(ctx) }()
	go func() { defer wg.Done(); e.v3.Run(ctx) }()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			e.srv.Close()
		})
	}
	t.Cleanup(e.stop)
	return e
}

func v3token(t testing.TB, user string, extra auth.Claims) string {
	t.Helper()
	tok, err := auth.Mint(v3Secret, user, time.Hour, extra)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// v3client is one real WebSocket client of the endpoint.
type v3client struct {
	t    testing.TB
	id   string
	ws   *websocket.Conn
	msgs chan aether.Message
	done chan struct{}
	code int    // close code, once done
	why  string // close reason, once done
}

func (e *v3env) url(group, id string) string {
	return "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/v3/ws/group/" + group + "/client/" + id
}

// dial connects; a nil claims means an unrestricted token for user "u-<id>".
func (e *v3env) dial(group, id string, claims *auth.Claims) *v3client {
	e.t.Helper()
	var c auth.Claims
	if claims != nil {
		c = *claims
	}
	hdr := http.Header{"Authorization": {"Bearer " + v3token(e.t, "u-"+id, c)}}
	ws, resp, err := websocket.DefaultDialer.Dial(e.url(group, id), hdr)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		e.t.Fatalf("dial %s/%s: %v (HTTP %d)", group, id, err, status)
	}
	cl := &v3client{t: e.t, id: id, ws: ws, msgs: make(chan aether.Message, 1024), done: make(chan struct{})}
	go cl.readLoop()
	e.t.Cleanup(func() { ws.Close(); <-cl.done })
	return cl
}

// dialStatus tries to connect and returns the HTTP status of the refusal.
func (e *v3env) dialStatus(url string, hdr http.Header) (int, string) {
	e.t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(url, hdr)
	if err == nil {
		ws.Close()
		return http.StatusSwitchingProtocols, ""
	}
	if resp == nil {
		e.t.Fatalf("dial %s: %v", url, err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (c *v3client) readLoop() {
	defer close(c.done)
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				c.code, c.why = ce.Code, ce.Text
			}
			return
		}
		m, err := aether.Decode(data)
		if err != nil {
			c.t.Errorf("%s: the server sent an invalid envelope %s: %v", c.id, data, err)
			return
		}
		if m.Version != "3" || m.SentAt == "" {
			c.t.Errorf("%s: envelope not stamped: %s", c.id, data)
		}
		c.msgs <- m
	}
}

func (c *v3client) send(s string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatalf("%s: write: %v", c.id, err)
	}
}

// next returns the next message that is not presence.
func (c *v3client) next() aether.Message {
	c.t.Helper()
	for {
		m := c.nextAny()
		if m.MsgType != aether.TypePresence {
			return m
		}
	}
}

func (c *v3client) nextAny() aether.Message {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-c.done:
		select { // what arrived before the close comes first
		case m := <-c.msgs:
			return m
		default:
		}
		c.t.Fatalf("%s: connection closed (%d %q) while waiting for a message", c.id, c.code, c.why)
	case <-time.After(10 * time.Second):
		c.t.Fatalf("%s: no message in 10 s", c.id)
	}
	panic("unreachable")
}

// presence waits for a presence message matching event and client id.
func (c *v3client) presence(event, who string) PresencePayload {
	c.t.Helper()
	for {
		m := c.nextAny()
		if m.MsgType != aether.TypePresence {
			continue
		}
		var p PresencePayload
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			c.t.Fatalf("presence payload %s: %v", m.Payload, err)
		}
		if p.Event == event && p.ClientID == who {
			if m.FromID != who || m.Target != aether.TargetGroup || m.GroupID == "" {
				c.t.Errorf("presence envelope %+v", m)
			}
			return p
		}
	}
}

// quiet checks that nothing but presence arrived before an echo probe.
func (c *v3client) quiet() {
	c.t.Helper()
	c.send(`{"msg_type":"msg","target":"echo","msg":"probe"}`)
	if m := c.next(); m.Msg != "probe" || m.Target != aether.TargetEcho {
		c.t.Fatalf("%s: got %+v before the probe's echo", c.id, m)
	}
}

// closed waits for the connection to end and returns the close frame.
func (c *v3client) closed() (int, string) {
	c.t.Helper()
	select {
	case <-c.done:
		return c.code, c.why
	case <-time.After(10 * time.Second):
		c.t.Fatalf("%s: still open after 10 s", c.id)
	}
	return 0, ""
}

// v3ErrorOf asserts that m is an error envelope and returns its payload.
func v3ErrorOf(t *testing.T, m aether.Message) aether.ErrorPayload {
	t.Helper()
	var p aether.ErrorPayload
	if m.Cmd != aether.CmdError || m.Target != aether.TargetEcho || json.Unmarshal(m.Payload, &p) != nil {
		t.Fatalf("want an error envelope, got %+v (%s)", m, m.Payload)
	}
	return p
}

// v3JoinGroups connects a1, a2 to group A and b1 to group B and consumes
// their presence messages.
func v3JoinGroups(e *v3env) (a1, a2, b1 *v3client) {
	a1 = e.dial("A", "a1", nil)
	a1.presence(PresenceJoin, "a1")
	a2 = e.dial("A", "a2", nil)
	a2.presence(PresenceJoin, "a2")
	if p := a1.presence(PresenceJoin, "a2"); strings.Join(p.Members, ",") != "a1,a2" {
		e.t.Fatalf("members = %v", p.Members)
	}
	b1 = e.dial("B", "b1", nil)
	if p := b1.presence(PresenceJoin, "b1"); strings.Join(p.Members, ",") != "b1" {
		e.t.Fatalf("B members = %v", p.Members)
	}
	return a1, a2, b1
}

func TestV3Routing(t *testing.T) {
	e := newV3Env(t, nil)
	a1, a2, b1 := v3JoinGroups(e)

	// group: every member of the sender's group, sender included; a forged
	// from_id is overridden.
	a1.send(`{"msg_type":"msg","target":"group","msg":"hello team","from_id":"a2","payload":{"n":1}}`)
	for _, c := range []*v3client{a1, a2} {
		m := c.next()
		if m.Msg != "hello team" || m.FromID != "a1" || m.GroupID != "A" || m.Target != "group" || string(m.Payload) != `{"n":1}` {
			t.Errorf("%s got %+v", c.id, m)
		}
	}
	b1.quiet() // nothing crossed into group B

	// direct across groups reaches one client only.
	a1.send(`{"msg_type":"msg","target":"direct","to_id":"b1","msg":"psst"}`)
	if m := b1.next(); m.Msg != "psst" || m.FromID != "a1" || m.GroupID != "A" || m.ToID != "b1" {
		t.Errorf("b1 got %+v", m)
	}
	a2.quiet()
	a1.quiet()

	// direct to a client that is not connected: an error naming to_id.
	a1.send(`{"msg_type":"msg","target":"direct","to_id":"nobody","msg":"?"}`)
	if p := v3ErrorOf(t, a1.next()); p.Code != aether.CodeNotConnected || p.Field != "to_id" {
		t.Errorf("error = %+v", p)
	}

	// echo: the sender only.
	b1.send(`{"msg_type":"msg","target":"echo","msg":"ping!"}`)
	if m := b1.next(); m.Msg != "ping!" || m.FromID != "b1" || m.Target != "echo" {
		t.Errorf("echo = %+v", m)
	}
	a1.quiet()

	// broadcast without the claim: refused.
	a2.send(`{"msg_type":"cmd","target":"broadcast","cmd":"MAINTENANCE_WARNING"}`)
	if p := v3ErrorOf(t, a2.next()); p.Code != aether.CodeForbidden || p.Field != "target" {
		t.Errorf("error = %+v", p)
	}
	a1.quiet()
	b1.quiet()

	// broadcast with the claim: everyone, every group.
	ops := e.dial("C", "ops", &auth.Claims{Broadcast: true})
	ops.presence(PresenceJoin, "ops")
	ops.send(`{"msg_type":"cmd","target":"broadcast","cmd":"MAINTENANCE_WARNING","msg":"down at noon"}`)
	for _, c := range []*v3client{a1, a2, b1, ops} {
		if m := c.next(); m.Cmd != "MAINTENANCE_WARNING" || m.FromID != "ops" || m.Target != "broadcast" {
			t.Errorf("%s got %+v", c.id, m)
		}
	}

	// heartbeat: answered to the sender.
	a1.send(`{"msg_type":"heartbeat","target":"echo"}`)
	if m := a1.next(); m.MsgType != aether.TypeHeartbeat || m.FromID != "a1" {
		t.Errorf("heartbeat answer = %+v", m)
	}
}

func TestV3InvalidEnvelopes(t *testing.T) {
	e := newV3Env(t, nil)
	a1, _, _ := v3JoinGroups(e)
	for _, tc := range []struct {
		in, field, reason string
	}{
		{`{"msg_type":"msg","target":"direct","msg":"x"}`, "to_id", "required for target direct"},
		{`{"msg_type":"shout","target":"group"}`, "msg_type", "must be msg, cmd"},
		{`{"msg_type":"msg","target":"all"}`, "target", "must be direct"},
		{`{"msg_type":"msg"}`, "target", "required"},
		{`not json`, "", "not valid JSON"},
		{`{"msg_type":"msg","target":"group","colour":"red"}`, "colour", "unknown field"},
		{`{"msg_type":"msg","target":"group","payload":[1]}`, "payload", "JSON object"},
		{`{"msg_type":"cmd","target":"group"}`, "cmd", "required"},
		{`{"msg_type":"msg","target":"direct","to_id":"x y"}`, "to_id", "only letters"},
		{`{"msg_type":"presence","target":"group"}`, "msg_type", "server only"},
		{`{"msg_type":"msg","target":"group","group_id":"B"}`, "group_id", "not your group"},
		{`{"msg_type":"heartbeat","target":"group"}`, "target", "echo"},
	} {
		a1.send(tc.in)
		p := v3ErrorOf(t, a1.next())
		if p.Code != aether.CodeInvalidMessage || p.Field != tc.field || !strings.Contains(p.Error, tc.reason) {
			t.Errorf("%s: error %+v, want field %q reason containing %q", tc.in, p, tc.field, tc.reason)
		}
	}
	a1.quiet() // still connected and working
}

func TestV3AuthAndGroupRestriction(t *testing.T) {
	e := newV3Env(t, nil)
	_, _, b1 := v3JoinGroups(e)
	onlyA := &auth.Claims{Groups: []string{"A"}}
	bearer := func(c auth.Claims) http.Header {
		return http.Header{"Authorization": {"Bearer " + v3token(t, "tenant-a", c)}}
	}
	for _, tc := range []struct {
		url  string
		hdr  http.Header
		code int
		body string
	}{
		{e.url("B", "x1"), bearer(*onlyA), http.StatusForbidden, `does not allow group "B"`},
		{e.url("A", "x1"), nil, http.StatusUnauthorized, "no token"},
		{e.url("A", "x1") + "?token=garbage", nil, http.StatusUnauthorized, "invalid token"},
		{e.url("A", "x.1"), bearer(auth.Claims{}), http.StatusBadRequest, "client_id"},
		{e.url("A"+strings.Repeat("g", 64), "x1"), bearer(auth.Claims{}), http.StatusBadRequest, "group_id"},
		{e.url("plant", "gw"), bearer(auth.Claims{}), http.StatusConflict, "gateway"},
		{strings.Replace(e.url("A", "x1"), "/client/", "/cli/", 1), bearer(auth.Claims{}), http.StatusNotFound, "path"},
	} {
		code, body := e.dialStatus(tc.url, tc.hdr)
		if code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("dial %s: %d %q, want %d containing %q", tc.url, code, body, tc.code, tc.body)
		}
	}
	// A restricted token cannot take over (and so disconnect) a client id
	// connected in a group it may not join.
	if code, body := e.dialStatus(e.url("A", "b1"), bearer(*onlyA)); code != http.StatusConflict || !strings.Contains(body, "in use") {
		t.Errorf("taking over b1 from group A: %d %q", code, body)
	}
	// ?token= works like the header.
	if code, _ := e.dialStatus(e.url("A", "q1")+"?token="+v3token(t, "q", auth.Claims{}), nil); code != http.StatusSwitchingProtocols {
		t.Errorf("?token= refused: %d", code)
	}

	// In its own group, a restricted client cannot reach group B at all.
	x := e.dial("A", "x1", onlyA)
	x.presence(PresenceJoin, "x1")
	x.send(`{"msg_type":"msg","target":"group","group_id":"B","msg":"hi B"}`)
	if p := v3ErrorOf(t, x.next()); p.Field != "group_id" {
		t.Errorf("error = %+v", p)
	}
	x.send(`{"msg_type":"msg","target":"direct","to_id":"b1","msg":"hi b1"}`)
	if p := v3ErrorOf(t, x.next()); p.Code != aether.CodeNotConnected || p.Field != "to_id" {
		t.Errorf("error = %+v", p)
	}
	x.send(`{"msg_type":"msg","target":"broadcast","msg":"hi all"}`)
	if p := v3ErrorOf(t, x.next()); p.Code != aether.CodeForbidden {
		t.Errorf("error = %+v", p)
	}
	b1.quiet()
}

func TestV3ReplaceSameClientID(t *testing.T) {
	e := newV3Env(t, nil)
	a1, a2, _ := v3JoinGroups(e)
	again := e.dial("A", "a1", nil)
	code, why := a1.closed()
	if code != CloseReplaced || !strings.Contains(why, "replaced") {
		t.Errorf("first a1 closed with %d %q", code, why)
	}
	if p := again.presence(PresenceJoin, "a1"); strings.Join(p.Members, ",") != "a1,a2" {
		t.Errorf("members = %v", p.Members)
	}
	// The replaced connection's end is not announced as a leave: a2 sees
	// a1 join again and nothing else; a1 is reachable on the new one.
	a2.presence(PresenceJoin, "a1")
	a2.send(`{"msg_type":"msg","target":"direct","to_id":"a1","msg":"still there?"}`)
	if m := again.next(); m.Msg != "still there?" {
		t.Errorf("new a1 got %+v", m)
	}
	if got := e.v3.Members("A"); strings.Join(got, ",") != "a1,a2" {
		t.Errorf("Members(A) = %v", got)
	}
	// Replacing across groups: leave in the old group, join in the new.
	moved := e.dial("B", "a2", nil)
	moved.presence(PresenceJoin, "a2")
	if p := again.presence(PresenceLeave, "a2"); strings.Join(p.Members, ",") != "a1" {
		t.Errorf("A members after a2 moved = %v", p.Members)
	}
}

func TestV3PresenceLeaveAndTimeout(t *testing.T) {
	e := newV3Env(t, nil)
	a1, a2, b1 := v3JoinGroups(e)
	a3 := e.dial("A", "a3", nil)
	a3.presence(PresenceJoin, "a3")
	a1.presence(PresenceJoin, "a3")

	// leave: a clean close is announced with the remaining members.
	a3.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"))
	a3.closed()
	if p := a1.presence(PresenceLeave, "a3"); strings.Join(p.Members, ",") != "a1,a2" {
		t.Errorf("members after leave = %v", p.Members)
	}

	// timeout: a2 stays silent, a1 and b1 keep sending heartbeats.
	e.clock.Advance(40 * time.Second)
	for _, c := range []*v3client{a1, b1} {
		c.send(`{"msg_type":"heartbeat","target":"echo"}`)
		c.next()
	}
	e.clock.Advance(21 * time.Second) // a2 silent for 61 s > 2 x 30 s
	e.tick <- e.clock.Now()
	code, why := a2.closed()
	if code != ClosePresenceTimeout || !strings.Contains(why, "presence timeout") {
		t.Errorf("a2 closed with %d %q", code, why)
	}
	if p := a1.presence(PresenceTimeout, "a2"); strings.Join(p.Members, ",") != "a1" {
		t.Errorf("members after timeout = %v", p.Members)
	}
	a1.quiet()
	b1.quiet()
}

func TestV3AgentCommands(t *testing.T) {
	e := newV3Env(t, nil)
	op := e.dial("plant", "op1", nil)
	if p := op.presence(PresenceJoin, "op1"); strings.Join(p.Members, ",") != "gw,op1" {
		t.Errorf("plant members = %v (the agent is a member)", p.Members)
	}
	hmi := e.dial("plant", "hmi", nil)
	hmi.presence(PresenceJoin, "hmi")

	result := func(c *v3client) aether.ResultPayload {
		t.Helper()
		for {
			m := c.next()
			if m.Cmd != aether.CmdResult {
				continue
			}
			if m.FromID != "gw" || m.GroupID != "plant" || m.ToID != c.id || m.Target != aether.TargetDirect {
				t.Errorf("RESULT envelope %+v", m)
			}
			var p aether.ResultPayload
			if err := json.Unmarshal(m.Payload, &p); err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
	op.send(`{"msg_type":"cmd","target":"direct","to_id":"gw","cmd":"PING","payload":{"request_id":"r1"}}`)
	if p := result(op); !p.OK || p.Cmd != "PING" || string(p.RequestID) != `"r1"` || fmt.Sprint(p.Result) != "map[pong:true]" {
		t.Errorf("ping result %+v", p)
	}
	op.send(`{"msg_type":"cmd","target":"direct","to_id":"gw","cmd":"reboot"}`)
	if p := result(op); p.OK || p.Error != "unknown_command" {
		t.Errorf("unknown command result %+v", p)
	}
	op.send(`{"msg_type":"cmd","target":"direct","to_id":"gw","cmd":"ping","payload":{"x":1}}`)
	if p := result(op); p.Error != "bad_args" {
		t.Errorf("bad args result %+v", p)
	}
	op.send(`{"msg_type":"cmd","target":"direct","to_id":"gw","cmd":"fail"}`)
	if p := result(op); p.Error != "failed" || !strings.Contains(p.Message, "sensor bus error") {
		t.Errorf("failing command result %+v", p)
	}
	// A group command the agent does not run reaches the members, and
	// the agent stays quiet; one it runs is answered to the sender.
	op.send(`{"msg_type":"cmd","target":"group","cmd":"RELOAD_UI"}`)
	if m := hmi.next(); m.Cmd != "RELOAD_UI" {
		t.Errorf("hmi got %+v", m)
	}
	if m := op.next(); m.Cmd != "RELOAD_UI" {
		t.Errorf("op got %+v", m)
	}
	op.send(`{"msg_type":"cmd","target":"group","cmd":"ping"}`)
	hmi.next() // the command itself
	op.next()
	if p := result(op); !p.OK {
		t.Errorf("group ping result %+v", p)
	}
	hmi.quiet()
}

func TestV3Shutdown(t *testing.T) {
	before := runtime.NumGoroutine()
	e := newV3Env(t, nil)
	a1, _, b1 := v3JoinGroups(e)
	// A command in the agent's queue when shutdown comes.
	op := e.dial("plant", "op", nil)
	op.send(`{"msg_type":"cmd","target":"direct","to_id":"gw","cmd":"ping"}`)
	e.stop()
	for _, c := range []*v3client{a1, b1} {
		if code, _ := c.closed(); code != websocket.CloseGoingAway {
			t.Errorf("%s closed with %d, want 1001", c.id, code)
		}
	}
	op.closed()
	if !testkit.WaitTrue(5*time.Second, func() bool { return runtime.NumGoroutine() <= before }) {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines left behind (%d before):\n%s", runtime.NumGoroutine()-before, before, buf[:runtime.Stack(buf, true)])
	}
}

func TestNewV3Validates(t *testing.T) {
	ver, _ := auth.NewVerifier(auth.VerifierOptions{Secret: v3Secret})
	h, err := New(Options{Verifier: ver})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []V3Options{{GatewayID: "g w"}, {Group: strings.Repeat("x", 65)}, {HeartbeatInterval: -1}} {
		if _, err := NewV3(h, o); err == nil || !strings.HasPrefix(err.Error(), "hub: ") {
			t.Errorf("NewV3(%+v) = %v", o, err)
		}
	}
	if _, err := NewV3(nil, V3Options{}); err == nil {
		t.Error("NewV3(nil) accepted")
	}
}

func TestV3SharedLimits(t *testing.T) {
	e := newV3Env(t, func(o *Options, vo *V3Options) {
		o.Conn.MessagesPerSecond = 3
		o.Conn.RateGrace = 100
		// The core's rate clock is the test's: no tokens come back while
		// the clock stands still.
		o.Conn.Now = vo.Now
	})
	a1, _, _ := v3JoinGroups(e)
	for i := 0; i < 5; i++ {
		a1.send(`{"msg_type":"msg","target":"echo","msg":"m"}`)
	}
	got := map[string]int{}
	for i := 0; i < 4; i++ { // 3 echoes and one rate_limited error
		m := a1.next()
		if m.Cmd == aether.CmdError {
			got[v3ErrorOf(t, m).Code]++
		} else {
			got[m.Msg]++
		}
	}
	if got["m"] != 3 || got[aether.CodeRateLimited] != 1 {
		t.Errorf("got %v, want 3 echoes and one rate_limited error", got)
	}
	// A message over the size limit closes with 1009, like the first API.
	b1 := e.dial("B", "big", nil)
	b1.send(`{"msg_type":"msg","target":"echo","msg":"` + strings.Repeat("x", 2000) + `"}`)
	if code, _ := b1.closed(); code != websocket.CloseMessageTooBig {
		t.Errorf("oversized message closed with %d, want 1009", code)
	}
}

func TestV3TokenExpiry(t *testing.T) {
	e := newV3Env(t, nil)
	a1, a2, _ := v3JoinGroups(e)
	// Tokens last an hour from now (the real clock); the endpoint's clock
	// goes past that while a1 and a2 keep heartbeating.
	e.clock.Advance(time.Since(e.clock.Now())) // to the real now
	e.clock.Advance(2 * time.Hour)
	for _, c := range []*v3client{a1, a2} {
		c.send(`{"msg_type":"heartbeat","target":"echo"}`)
		c.next()
	}
	e.tick <- e.clock.Now()
	for _, c := range []*v3client{a1, a2} {
		if p := v3ErrorOf(t, c.next()); p.Code != aether.CodeTokenExpired {
			t.Errorf("%s: error %+v", c.id, p)
		}
		if code, why := c.closed(); code != websocket.ClosePolicyViolation || why != "token expired" {
			t.Errorf("%s closed with %d %q", c.id, code, why)
		}
	}
	// A member leaves when its connection has finished, which may be a
	// moment after its close frame reached the client.
	testkit.Eventually(t, "group A empty after the expiry", 5*time.Second, func() bool {
		return len(e.v3.Members("A")) == 0
	})
}

// A member that stops reading costs the others nothing: they get every
// message while its queue fills, and it is dropped (1013) once its writes
// made no progress for the stall time, measured on the test's clock, so
// that no scheduling delay of a healthy member's writer can get it dropped.
func TestV3SlowMemberDoesNotSlowOthers(t *testing.T) {
	e := startV3Env(t, true, func(o *Options, vo *V3Options) {
		o.Conn.MessagesPerSecond = 1 << 20
		o.Conn.QueueLen = 32
		o.Conn.QueueMax = 1 << 20 // only a stall makes a member slow here
		o.Conn.Now = vo.Now       // the stall time passes when the test says
	})
	fast := e.dial("A", "fast", nil)
	fast.presence(PresenceJoin, "fast")
	// slow connects with a small receive buffer and never reads again.
	hdr := http.Header{"Authorization": {"Bearer " + v3token(t, "u-slow", auth.Claims{})}}
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetReadBuffer(4 << 10)
		}
		return c, err
	}}
	slow, _, err := d.Dial(e.url("A", "slow"), hdr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast.presence(PresenceJoin, "slow")
	sender := e.dial("A", "sender", nil)
	sender.presence(PresenceJoin, "sender")
	fast.presence(PresenceJoin, "sender")
	e.v3.mu.RLock()
	slowConn := e.v3.clients["slow"].conn
	e.v3.mu.RUnlock()

	// Far more 900-byte messages than the slow member's socket and queue
	// hold, window by window: each window reaches both members that read
	// (the sender gets its own group messages too) before the next is
	// sent, so their queues never fill, however the goroutines are
	// scheduled.
	const n, window = 400, 8
	msg := []byte(`{"msg_type":"msg","target":"group","msg":"` + strings.Repeat("x", 800) + `"}`)
	left := false
	receive := func(c *v3client, k int) {
		t.Helper()
		for got := 0; got < k; {
			switch m := c.nextAny(); {
			case m.MsgType == aether.TypeMsg && m.FromID == "sender":
				got++
			case m.MsgType == aether.TypePresence && strings.Contains(string(m.Payload), `"event":"leave","client_id":"slow"`):
				left = true
			case m.MsgType == aether.TypePresence:
			default:
				t.Fatalf("%s got %+v", c.id, m)
			}
		}
	}
	sendWindow := func(k int) {
		t.Helper()
		for range k {
			sender.send(string(msg))
		}
		receive(fast, k)
		receive(sender, k)
	}
	for sent := 0; sent < n; sent += window {
		sendWindow(window)
	}
	// However long that took, the slow member was not dropped: the
	// clock has not moved. Once StallTimeout passes without a write it
	// is slow at its next message. (Its writer may complete one last
	// write after the clock moved, so allow a second round.) Two
	// messages a round: the second is routed after the first reached
	// every member.
	for i := 0; slowConn.Context().Err() == nil; i++ {
		if i == 3 {
			t.Fatal("the slow member's writes made no progress for 3 stall times and it is still connected")
		}
		e.clock.Advance(e.hub.srv.Options().StallTimeout)
		sendWindow(2)
	}
	for !left {
		if m := fast.nextAny(); m.MsgType == aether.TypePresence && strings.Contains(string(m.Payload), `"event":"leave","client_id":"slow"`) {
			left = true
		}
	}
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := slow.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			// 1013 if the close frame got through the full socket, else
			// the connection was just dropped (1006).
			if errors.As(err, &ce) && ce.Code != websocket.CloseTryAgainLater && ce.Code != websocket.CloseAbnormalClosure {
				t.Errorf("slow member closed with %d %q, want 1013 or 1006", ce.Code, ce.Text)
			}
			break
		}
	}
}
