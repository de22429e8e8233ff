package hub

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/auth/authtest"
	"github.com/floorhub/floorhub/hub/wsconn"
	"github.com/floorhub/floorhub/store"
)

// The seed's Python client sends auth and reads the very next message,
// expecting auth_response; nothing may come before it.
func TestAuthMessagePythonQuirk(t *testing.T) {
	th := newTestHub(t)
	c := th.dial(t, "/ws", nil)
	c.send(map[string]any{"type": "auth", "token": token(t, "alice")})
	m := c.read()
	if m["type"] != "auth_response" || m["success"] != true || m["message"] == "" {
		t.Fatalf("first message after auth: %v", m)
	}
	if _, has := m["error"]; has {
		t.Fatalf("successful auth_response carries error: %v", m)
	}
	// On a channel endpoint too: auth_response first, then subscribed.
	c = th.dial(t, "/ws/telemetry?device_id=1", nil)
	c.send(map[string]any{"type": "auth", "token": token(t, "alice")})
	if m := c.read(); m["type"] != "auth_response" || m["success"] != true {
		t.Fatalf("first message on /ws/telemetry: %v", m)
	}
	if m := c.read(); m["type"] != "subscribed" || m["channel"] != "telemetry" {
		t.Fatalf("second message on /ws/telemetry: %v", m)
	}
}

func TestAuthHeaderAndQuery(t *testing.T) {
	th := newTestHub(t)
	c := th.dial(t, "/ws", http.Header{"Authorization": {"Bearer " + token(t, "bob")}})
	if m := c.read(); m["type"] != "auth_response" || m["success"] != true || m["user"] != "bob" {
		t.Fatalf("bearer: %v", m)
	}
	c.send(map[string]any{"type": "subscribe", "channel": "alerts"})
	c.readType("subscribed")

	c = th.dial(t, "/ws/alerts?severity=critical&token="+token(t, "carol"), nil)
	if m := c.read(); m["type"] != "auth_response" || m["success"] != true {
		t.Fatalf("query token: %v", m)
	}
	m := c.readType("subscribed")
	if f := m["filters"].(map[string]any); f["severity"].([]any)[0] != "critical" {
		t.Fatalf("query filters: %v", m)
	}
	// A client that also sends the auth message (the seed's JS client
	// does on open) gets a second success.
	c.send(map[string]any{"type": "auth", "token": token(t, "carol")})
	if m := c.read(); m["type"] != "auth_response" || m["success"] != true {
		t.Fatalf("re-auth: %v", m)
	}
	th.Publish(alert(1, 1, "critical", "temp_high"))
	th.Publish(alert(2, 1, "info", "temp_high"))
	th.Publish(alert(3, 2, "critical", "temp_high"))
	if m := c.readType("alert"); seqOf(m) != 1 {
		t.Fatalf("got %v", m)
	}
	if m := c.readType("alert"); seqOf(m) != 3 {
		t.Fatalf("severity filter let through %v", m)
	}
}

func TestBadTokens(t *testing.T) {
	th := newTestHub(t, limitless)
	now := time.Now()
	claims := func(sub string, exp time.Duration) auth.Claims {
		return auth.Claims{RegisteredClaims: auth.RegisteredClaims{Subject: sub, IssuedAt: auth.NewNumericDate(now),
			ExpiresAt: auth.NewNumericDate(now.Add(exp))}}
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	none, _ := authtest.Mint(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("eve", time.Hour))
	rs256, _ := authtest.Mint(jwt.SigningMethodRS256, rsaKey, claims("eve", time.Hour))
	hs512, _ := authtest.Mint(jwt.SigningMethodHS512, testSecret, claims("eve", time.Hour))
	wrongKey, _ := auth.Mint([]byte("another-secret-another-secret!!"), "eve", time.Hour, auth.Claims{})
	expired, _ := authtest.Mint(jwt.SigningMethodHS256, testSecret, claims("eve", -time.Hour))
	noExp, _ := authtest.Mint(jwt.SigningMethodHS256, testSecret, auth.Claims{RegisteredClaims: auth.RegisteredClaims{Subject: "eve"}})
	noSub, _ := authtest.Mint(jwt.SigningMethodHS256, testSecret, claims("", time.Hour))
	cases := []struct {
		name, tok, code string
	}{
		{"none alg", none, "invalid_token"},
		{"wrong alg RS256", rs256, "invalid_token"},
		{"wrong alg HS512", hs512, "invalid_token"},
		{"wrong key", wrongKey, "invalid_token"},
		{"expired", expired, "token_expired"},
		{"no exp", noExp, "invalid_token"},
		{"no sub", noSub, "invalid_token"},
		{"malformed", "not.a.jwt", "invalid_token"},
		{"garbage", "\x00\xff", "invalid_token"},
		{"empty", "", "missing_token"},
		{"too long", strings.Repeat("a", auth.MaxTokenLen+1), "token_too_long"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := th.dial(t, "/ws", nil)
			if len(tc.tok) > 900 {
				// Beyond the 1 KB message limit: the token must come in
				// the query instead, and is refused the same way.
				c = th.dial(t, "/ws?token="+tc.tok, nil)
			} else {
				c.send(map[string]any{"type": "auth", "token": tc.tok})
			}
			m := c.read()
			if m["type"] != "auth_response" || m["success"] != false || m["error"] != tc.code || m["message"] == "" {
				t.Fatalf("got %v, want error %s", m, tc.code)
			}
			if code, _ := c.closeCode(); code != websocket.ClosePolicyViolation {
				t.Fatalf("close code %d, want 1008", code)
			}
		})
	}
	// The Bearer header with a bad token is refused the same way.
	c := th.dial(t, "/ws", http.Header{"Authorization": {"Bearer " + wrongKey}})
	if m := c.read(); m["error"] != "invalid_token" {
		t.Fatalf("bearer: %v", m)
	}
}

func TestBeforeAuth(t *testing.T) {
	th := newTestHub(t, limitless, func(o *Options) { o.Conn.AuthTimeout = 300 * time.Millisecond })
	// Authenticated before the other client's timeout starts: it must
	// still be served after that timeout has passed.
	a := th.login(t, "/ws", "alice")
	c := th.dial(t, "/ws", nil)
	c.send(map[string]any{"type": "ping", "timestamp": "2024-01-01T12:00:00Z"})
	if m := c.read(); m["type"] != "pong" || m["timestamp"] != "2024-01-01T12:00:00Z" {
		t.Fatalf("pong before auth: %v", m)
	}
	c.send(map[string]any{"type": "subscribe", "channel": "telemetry"})
	if m := c.read(); m["type"] != "error" || m["error"] != "not_authenticated" {
		t.Fatalf("subscribe before auth: %v", m)
	}
	c.send(map[string]any{"type": "batch", "messages": []any{map[string]any{"type": "ping"}}})
	if m := c.read(); m["error"] != "not_authenticated" {
		t.Fatalf("batch before auth: %v", m)
	}
	// No auth within the timeout: closed with 1008.
	if code, reason := c.closeCode(); code != websocket.ClosePolicyViolation || !strings.Contains(reason, "authentication") {
		t.Fatalf("close %d %q, want 1008 authentication timeout", code, reason)
	}
	a.send(map[string]any{"type": "ping"})
	a.readType("pong")
}

func TestTelemetryMessageAndFilters(t *testing.T) {
	th := newTestHub(t)
	// The JS client's form: filters at the top level.
	js := th.login(t, "/ws", "alice")
	js.send(map[string]any{"type": "subscribe", "channel": "telemetry", "device_id": 1})
	if m := js.readType("subscribed"); m["filters"].(map[string]any)["device_id"].([]any)[0] != 1.0 {
		t.Fatalf("subscribed: %v", m)
	}
	// The Python client's form: under filters.
	py := th.login(t, "/ws", "bob")
	py.send(map[string]any{"type": "subscribe", "channel": "telemetry",
		"filters": map[string]any{"device_id": []int{2, 3}, "metrics": []string{"humidity"}, "frequency": "real-time"}})
	py.readType("subscribed")
	// The seed's mixed example: device_id on top, metrics under filters.
	mixed := th.login(t, "/ws", "carol")
	mixed.send(map[string]any{"type": "subscribe", "channel": "telemetry", "device_id": 1,
		"filters": map[string]any{"metrics": []string{"temperature", "humidity"}}})
	mixed.readType("subscribed")

	th.Publish(telemetry(10, 1, 23.5, 45.2, 1013))
	th.Publish(telemetry(11, 2, 20, 40, 1000))
	th.Publish(telemetry(12, 3, 21, 41))
	th.Publish(telemetry(13, 4, 22, 42))

	m := js.readType("telemetry_update")
	if m["channel"] != "telemetry" || m["device_id"] != 1.0 || seqOf(m) != 10 || m["clock_synced"] != true {
		t.Fatalf("telemetry_update: %v", m)
	}
	tel := m["telemetry"].(map[string]any)
	temp := tel["temperature"].(map[string]any)
	if len(tel) != 3 || temp["value"] != 23.5 || temp["unit"] != "°C" || temp["timestamp"] != "2026-01-02T03:04:05.01Z" {
		t.Fatalf("telemetry: %v", tel)
	}
	for _, want := range []uint64{11, 12} {
		m := py.readType("telemetry_update")
		tel := m["telemetry"].(map[string]any)
		if seqOf(m) != want || len(tel) != 1 || tel["humidity"] == nil {
			t.Fatalf("py got %v, want seq %d with humidity only", m, want)
		}
	}
	m = mixed.readType("telemetry_update")
	if tel := m["telemetry"].(map[string]any); len(tel) != 2 || tel["pressure"] != nil {
		t.Fatalf("mixed: %v", m)
	}
	// Nothing else arrives for js: a ping's pong is the next message.
	js.send(map[string]any{"type": "ping", "timestamp": 5})
	if m := js.read(); m["type"] != "pong" || m["timestamp"] != 5.0 {
		t.Fatalf("after the updates: %v", m)
	}
}

func TestSubscribeErrors(t *testing.T) {
	th := newTestHub(t)
	c := th.login(t, "/ws", "alice")
	cases := []struct {
		msg  string
		code string
	}{
		{`{"type":"subscribe"}`, "invalid_channel"},
		{`{"type":"subscribe","channel":"weather"}`, "invalid_channel"},
		{`{"type":"subscribe","channel":"telemetry","device_id":"x"}`, "invalid_filter"},
		{`{"type":"subscribe","channel":"telemetry","device_id":1.5}`, "invalid_filter"},
		{`{"type":"subscribe","channel":"telemetry","device_id":-1}`, "invalid_filter"},
		{`{"type":"subscribe","channel":"telemetry","device_id":[]}`, "invalid_filter"},
		{`{"type":"subscribe","channel":"telemetry","frequency":"2ms"}`, "invalid_filter"},
		{`{"type":"subscribe","channel":"telemetry","frequency":5}`, "invalid_filter"},
		{`{"type":"subscribe","channel":"telemetry","severity":"critical"}`, "invalid_filter"},
		{`{"type":"subscribe","channel":"alerts","filters":{"severity":["critical","panic"]}}`, "invalid_filter"},
		{`{"type":"subscribe","channel":"devices","status_types":["online","asleep"]}`, "invalid_filter"},
		{`{"type":"subscribe","channel":"system","metrics":["cpu_usage","mood"]}`, "invalid_filter"},
		{`{"type":"subscribe","channel":"telemetry","device_id":1,"filters":{"device_id":2}}`, "invalid_filter"},
		{`{"type":"subscribe","channel":"telemetry","filters":[1]}`, "invalid_filter"},
		{`{"type":"subscribe","channel":"telemetry","filters":{"devce_id":1}}`, "invalid_filter"},
		{`{"type":"subscribe","channel":"alerts","since":3,"filters":{"since":4}}`, "invalid_filter"},
		{`{"type":"subscribe","channel":"alerts","filters":{"since":"x"}}`, "invalid_since"},
		{`{"type":"subscribe","channel":"alerts","since":-3}`, "invalid_since"},
		{`{"type":"unsubscribe","channel":"alerts"}`, "not_subscribed"},
		{`{"type":"hello"}`, "unknown_type"},
		{`{"type":7}`, "invalid_message"},
		{`{"token":"x"}`, "invalid_message"},
		{`{"type":"batch"}`, "invalid_message"},
		{`{"type":"batch","messages":[{"type":"batch","messages":[]}]}`, "invalid_message"},
		{`not json`, "invalid_json"},
		{`[1,2]`, "invalid_message"},
	}
	for _, tc := range cases {
		c.sendRaw(tc.msg)
		m := c.read()
		if m["type"] != "error" || m["error"] != tc.code || m["message"] == "" {
			t.Errorf("%s: got %v, want error %s", tc.msg, m, tc.code)
		}
	}
	// The same filter at both levels is fine.
	c.sendRaw(`{"type":"subscribe","channel":"telemetry","device_id":1,"filters":{"device_id":1}}`)
	c.readType("subscribed")
}

func TestUnsubscribe(t *testing.T) {
	th := newTestHub(t)
	c := th.login(t, "/ws", "alice")
	c.send(map[string]any{"type": "subscribe", "channel": "alerts", "device_id": []int{1, 2}})
	c.readType("subscribed")
	c.send(map[string]any{"type": "unsubscribe", "channel": "alerts", "device_id": 1})
	if m := c.readType("unsubscribed"); m["channel"] != "alerts" {
		t.Fatalf("%v", m)
	}
	th.Publish(alert(1, 1, "critical", "r"))
	th.Publish(alert(2, 2, "critical", "r"))
	if m := c.readType("alert"); seqOf(m) != 2 {
		t.Fatalf("got %v", m)
	}
	c.send(map[string]any{"type": "unsubscribe", "channel": "alerts"})
	c.readType("unsubscribed")
	th.Publish(alert(3, 2, "critical", "r"))
	c.send(map[string]any{"type": "ping"})
	c.readType("pong")
	eventually(t, "the fan-out of seq 3", func() bool { return th.lastSeq.Load() == 3 })
	c.send(map[string]any{"type": "ping"})
	c.readType("pong") // no alert in between
}

func TestAlertsAndDevices(t *testing.T) {
	st := &fixedState{devs: []DeviceState{{DeviceID: 1, Status: "online", LastSeen: t0}, {DeviceID: 2, Status: "offline", Reason: "no answer"}}}
	th := newTestHub(t, func(o *Options) { o.State = st })
	a := th.login(t, "/ws", "alice")
	a.send(map[string]any{"type": "subscribe", "channel": "alerts",
		"filters": map[string]any{"severity": []string{"critical", "warning"}, "device_id": 1, "alert_type": "temp_high"}})
	a.readType("subscribed")
	d := th.login(t, "/ws", "bob")
	d.send(map[string]any{"type": "subscribe", "channel": "devices",
		"filters": map[string]any{"device_id": []int{1, 2, 3}, "status_types": []string{"online", "offline", "warning"}}})
	d.readType("subscribed")
	// The current state first, without waiting for a change.
	for _, want := range []float64{1, 2} {
		m := d.readType("device_status_update")
		if m["device_id"] != want || m["initial"] != true || m["new_status"] != m["old_status"] {
			t.Fatalf("snapshot: %v", m)
		}
	}
	th.Publish(alert(5, 1, "info", "temp_high"))
	th.Publish(alert(6, 1, "critical", "humidity_high"))
	th.Publish(alert(7, 1, "warning", "temp_high"))
	th.Publish(status(8, 2, "offline", "online"))
	m := a.readType("alert")
	want := map[string]any{"type": "alert", "channel": "alerts", "alert_id": 7.0, "device_id": 1.0, "severity": "warning",
		"title": "High Temperature Alert", "message": "Temperature exceeds safe threshold", "alert_type": "temp_high",
		"state": "active", "seq": 7.0}
	for k, v := range want {
		if m[k] != v {
			t.Fatalf("alert %s = %v, want %v (%v)", k, m[k], v, m)
		}
	}
	md := m["metadata"].(map[string]any)
	if md["threshold_value"] != 30.0 || md["actual_value"] != 32.5 || m["timestamp"] == "" {
		t.Fatalf("alert: %v", m)
	}
	m = d.readType("device_status_update")
	if m["device_id"] != 2.0 || m["old_status"] != "offline" || m["new_status"] != "online" || m["reason"] != "Connection lost" ||
		seqOf(m) != 8 || m["metadata"].(map[string]any)["last_seen"] != "2026-01-02T03:04:05Z" {
		t.Fatalf("device_status_update: %v", m)
	}
}

// The seed's severity filter may be one string as well as a list.
func TestSeverityAsString(t *testing.T) {
	th := newTestHub(t)
	c := th.login(t, "/ws", "alice")
	c.send(map[string]any{"type": "subscribe", "channel": "alerts", "filters": map[string]any{"severity": "critical"}})
	c.readType("subscribed")
	th.Publish(alert(1, 1, "warning", "r"))
	th.Publish(alert(2, 1, "critical", "r"))
	if m := c.readType("alert"); seqOf(m) != 2 {
		t.Fatalf("got %v, want only the critical alert", m)
	}
}

// A status change that races a new subscriber's snapshot is not lost: the
// subscriber's last word on the device is the current status.
func TestDeviceSnapshotRace(t *testing.T) {
	var th *testHub
	st := &racingState{}
	th = newTestHub(t, func(o *Options) { o.State = st })
	// The change lands while the hub reads the state: the snapshot holds
	// the old status, the change is published and fanned out meanwhile.
	st.during = func() {
		th.Publish(status(1, 1, "online", "offline"))
		eventually(t, "the fan-out of seq 1 to start", func() bool { return th.lastSeq.Load() == 1 })
	}
	c := th.login(t, "/ws", "alice")
	c.send(map[string]any{"type": "subscribe", "channel": "devices"})
	c.readType("subscribed")
	if m := c.readType("device_status_update"); m["initial"] != true || m["new_status"] != "online" {
		t.Fatalf("snapshot: %v", m)
	}
	if m := c.readType("device_status_update"); m["new_status"] != "offline" || seqOf(m) != 1 {
		t.Fatalf("after the snapshot: %v, want the change to offline", m)
	}
}

// racingState reports device 1 online and runs during (once) before
// returning, as if the status changed just after it was read.
type racingState struct {
	during func()
	once   sync.Once
}

func (s *racingState) Devices() []DeviceState {
	out := []DeviceState{{DeviceID: 1, Status: "online"}}
	s.once.Do(s.during)
	return out
}
func (s *racingState) System() System { return System{} }

type fixedState struct {
	devs []DeviceState
	sys  System
}

func (s *fixedState) Devices() []DeviceState { return s.devs }
func (s *fixedState) System() System         { return s.sys }

func TestSystemChannelAndFrequency(t *testing.T) {
	var th *testHub
	st := &fixedState{sys: System{CPUUsage: 45.2, MemoryUsage: 67.8, DiskUsage: 23.1, Timestamp: t0}}
	th = newTestHub(t, func(o *Options) { o.State = st; o.Now = func() time.Time { return th.now.Now() } })
	c := th.login(t, "/ws", "alice")
	c.send(map[string]any{"type": "subscribe", "channel": "system",
		"filters": map[string]any{"metrics": []string{"cpu_usage", "memory_usage", "active_connections"}, "frequency": "30s"}})
	c.readType("subscribed")
	m := c.readType("system_status_update")
	met := m["metrics"].(map[string]any)
	if m["channel"] != "system" || len(met) != 3 || met["cpu_usage"] != 45.2 || met["active_connections"] != 1.0 || m["timestamp"] != "2026-01-01T02:03:04Z" && m["timestamp"] != "2026-01-02T03:04:05Z" {
		t.Fatalf("initial system status: %v", m)
	}
	// Within the period: held back, the latest kept.
	th.PublishSystem(System{CPUUsage: 50, Timestamp: t0.Add(time.Second)})
	th.PublishSystem(System{CPUUsage: 60, Timestamp: t0.Add(2 * time.Second)})
	eventually(t, "the fan-out", func() bool { th.inMu.Lock(); defer th.inMu.Unlock(); return len(th.inbox) == 0 })
	th.now.Advance(29 * time.Second)
	th.tick <- time.Time{}
	c.send(map[string]any{"type": "ping"})
	c.readType("pong") // nothing before the period ends
	th.now.Advance(time.Second)
	th.tick <- time.Time{}
	m = c.readType("system_status_update")
	if m["metrics"].(map[string]any)["cpu_usage"] != 60.0 {
		t.Fatalf("after the period: %v", m)
	}
}

func TestTelemetryFrequency(t *testing.T) {
	var th *testHub
	th = newTestHub(t, func(o *Options) { o.Now = func() time.Time { return th.now.Now() } })
	c := th.login(t, "/ws", "alice")
	c.send(map[string]any{"type": "subscribe", "channel": "telemetry", "filters": map[string]any{"frequency": "1m"}})
	c.readType("subscribed")
	rt := th.login(t, "/ws", "bob") // a real-time subscriber sees every record
	rt.send(map[string]any{"type": "subscribe", "channel": "telemetry"})
	rt.readType("subscribed")

	th.Publish(telemetry(1, 1, 20, 50))
	if m := c.readType("telemetry_update"); seqOf(m) != 1 {
		t.Fatalf("first update: %v", m)
	}
	th.Publish(telemetry(2, 1, 21, 51))
	th.Publish(store.Record{Seq: 3, Kind: store.KindTelemetry, DeviceID: 1, TS: t0, Metrics: []store.Metric{{Name: "temperature", Value: 22, Unit: "°C"}}})
	th.Publish(telemetry(4, 2, 30))
	if m := c.readType("telemetry_update"); seqOf(m) != 4 || m["device_id"] != 2.0 {
		t.Fatalf("another device is not held back by device 1's period: %v", m)
	}
	for range 4 {
		rt.readType("telemetry_update")
	}
	th.now.Advance(59 * time.Second)
	th.tick <- time.Time{}
	c.send(map[string]any{"type": "ping"})
	c.readType("pong")
	th.now.Advance(time.Second)
	th.tick <- time.Time{}
	m := c.readType("telemetry_update")
	tel := m["telemetry"].(map[string]any)
	// The latest value of each metric, and the latest seq.
	if seqOf(m) != 3 || tel["temperature"].(map[string]any)["value"] != 22.0 || tel["humidity"].(map[string]any)["value"] != 51.0 {
		t.Fatalf("after the period: %v", m)
	}
	th.tick <- time.Time{}
	c.send(map[string]any{"type": "ping"})
	c.readType("pong") // nothing pending: nothing sent
}

func TestPingAndBatch(t *testing.T) {
	th := newTestHub(t)
	c := th.login(t, "/ws", "alice")
	c.send(map[string]any{"type": "ping", "timestamp": "2024-01-01T12:00:00Z"})
	if m := c.read(); m["type"] != "pong" || m["timestamp"] != "2024-01-01T12:00:00Z" || m["server_time"] == "" {
		t.Fatalf("pong: %v", m)
	}
	c.send(map[string]any{"type": "batch", "messages": []any{
		map[string]any{"type": "ping", "timestamp": 1},
		map[string]any{"type": "subscribe", "channel": "alerts"},
		map[string]any{"type": "nope"},
		map[string]any{"type": "ping", "timestamp": 2},
	}})
	if m := c.read(); m["type"] != "pong" || m["timestamp"] != 1.0 {
		t.Fatalf("batch 1: %v", m)
	}
	if m := c.read(); m["type"] != "subscribed" {
		t.Fatalf("batch 2: %v", m)
	}
	if m := c.read(); m["type"] != "error" || m["error"] != "unknown_type" {
		t.Fatalf("batch 3: %v", m)
	}
	if m := c.read(); m["type"] != "pong" || m["timestamp"] != 2.0 {
		t.Fatalf("batch 4: %v", m)
	}
	big := make([]any, 51)
	for i := range big {
		big[i] = 0
	}
	c.send(map[string]any{"type": "batch", "messages": big})
	if m := c.read(); m["error"] != "batch_too_large" {
		t.Fatalf("51 messages: %v", m)
	}
	// A reloaded limit applies to the open connection.
	if err := th.SetLimits(th.Server().Options(), 2); err != nil {
		t.Fatal(err)
	}
	c.send(map[string]any{"type": "batch", "messages": big[:3]})
	if m := c.read(); m["error"] != "batch_too_large" {
		t.Fatalf("3 messages over a limit of 2: %v", m)
	}
	if err := th.SetLimits(wsconn.Options{}, -1); err == nil {
		t.Fatal("SetLimits accepted a negative MaxBatch")
	}
}

func TestConnectionLimits(t *testing.T) {
	th := newTestHub(t, func(o *Options) {
		o.Conn.MaxConns = 3
		o.Conn.MaxConnsPerUser = 2
		o.Conn.ConnectsPerMinute = 5
	})
	a1 := th.login(t, "/ws", "alice")
	th.login(t, "/ws", "alice")
	a3 := th.dial(t, "/ws", nil)
	a3.send(map[string]any{"type": "auth", "token": token(t, "alice")})
	if m := a3.read(); m["error"] != "too_many_connections" {
		t.Fatalf("third connection of a user: %v", m)
	}
	a3.closeCode()
	eventually(t, "the refused connection to go", func() bool { return th.Connections() == 2 })
	th.login(t, "/ws", "bob")
	if s := th.dialStatus(t, "/ws", nil); s != http.StatusServiceUnavailable {
		t.Fatalf("beyond MaxConns: HTTP %d, want 503", s)
	}
	a1.ws.Close()
	eventually(t, "a closed connection to free its slot", func() bool { return th.Connections() == 2 })
	fifth := th.dial(t, "/ws", nil) // the fifth connect of the minute (the 503 took none)
	eventually(t, "the fifth connection", func() bool { return th.Connections() == 3 })
	fifth.ws.Close()
	eventually(t, "the fifth connection to go", func() bool { return th.Connections() == 2 })
	if s := th.dialStatus(t, "/ws", nil); s != http.StatusTooManyRequests {
		t.Fatalf("beyond ConnectsPerMinute: HTTP %d, want 429", s)
	}
}

func TestOrigin(t *testing.T) {
	th := newTestHub(t, limitless, func(o *Options) { o.Conn.AllowedOrigins = []string{"https://dash.example.com"} })
	host := strings.TrimPrefix(th.url, "ws://")
	for origin, want := range map[string]int{
		"http://" + host:           http.StatusSwitchingProtocols,
		"https://dash.example.com": http.StatusSwitchingProtocols,
		"https://evil.example.com": http.StatusForbidden,
		"null":                     http.StatusForbidden,
	} {
		if got := th.dialStatus(t, "/ws", http.Header{"Origin": {origin}}); got != want {
			t.Errorf("origin %s: HTTP %d, want %d", origin, got, want)
		}
	}
	if got := th.dialStatus(t, "/ws", nil); got != http.StatusSwitchingProtocols {
		t.Errorf("no origin: HTTP %d", got)
	}
	if got := th.dialStatus(t, "/ws/weather", nil); got != http.StatusNotFound {
		t.Errorf("/ws/weather: HTTP %d", got)
	}
	if got := th.dialStatus(t, "/ws/telemetry?device_id=abc", nil); got != http.StatusBadRequest {
		t.Errorf("bad query filter: HTTP %d", got)
	}
	if got := th.dialStatus(t, "/ws?since=-1", nil); got != http.StatusBadRequest {
		t.Errorf("bad since: HTTP %d", got)
	}
}

func TestShutdown(t *testing.T) {
	th := newTestHub(t, limitless)
	var cs []*tclient
	for range 5 {
		c := th.login(t, "/ws", "alice")
		c.send(map[string]any{"type": "subscribe", "channel": "alerts"})
		c.readType("subscribed")
		cs = append(cs, c)
	}
	th.stop()
	for _, c := range cs {
		if code, _ := c.closeCode(); code != websocket.CloseGoingAway {
			t.Fatalf("close code %d, want 1001", code)
		}
	}
	if n := th.Connections(); n != 0 {
		t.Fatalf("%d connections after Run returned", n)
	}
}

// A connection whose token expires is closed; a fresh auth renews it.
func TestTokenExpiryOnOpenConnection(t *testing.T) {
	var th *testHub
	th = newTestHub(t, limitless, func(o *Options) { o.Now = func() time.Time { return th.now.Now() } })
	th.now.Advance(time.Since(th.now.Now()) + time.Minute) // the fake clock at the real time, plus a minute
	short := func(ttl time.Duration) string {
		tok, err := auth.Mint(testSecret, "alice", ttl, auth.Claims{})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	a := th.dial(t, "/ws", nil)
	a.send(map[string]any{"type": "auth", "token": short(10 * time.Minute)})
	a.readType("auth_response")
	b := th.dial(t, "/ws", nil)
	b.send(map[string]any{"type": "auth", "token": short(10 * time.Minute)})
	b.readType("auth_response")
	th.now.Advance(5 * time.Minute)
	b.send(map[string]any{"type": "auth", "token": short(time.Hour)}) // renewed
	b.readType("auth_response")
	th.now.Advance(10 * time.Minute)
	th.tick <- time.Time{}
	if m := a.read(); m["error"] != "token_expired" {
		t.Fatalf("expired: %v", m)
	}
	if code, _ := a.closeCode(); code != websocket.ClosePolicyViolation {
		t.Fatalf("close %d", code)
	}
	b.send(map[string]any{"type": "ping"})
	b.readType("pong")
}

// The devices and system endpoints take their filters from the query and
// start with the current state.
func TestDevicesAndSystemEndpoints(t *testing.T) {
	st := &fixedState{devs: []DeviceState{{DeviceID: 1, Status: "online"}, {DeviceID: 2, Status: "offline"}, {DeviceID: 3, Status: "offline"}},
		sys: System{CPUUsage: 12.5, DiskUsage: 40, Timestamp: t0}}
	th := newTestHub(t, limitless, func(o *Options) { o.State = st })
	d := th.dial(t, "/ws/devices?status_types=offline&device_id=1,2&token="+token(t, "a"), nil)
	d.readType("auth_response")
	d.readType("subscribed")
	if m := d.readType("device_status_update"); m["device_id"] != 2.0 || m["new_status"] != "offline" {
		t.Fatalf("snapshot: %v", m)
	}
	th.Publish(status(1, 1, "online", "warning"))
	th.Publish(status(2, 2, "offline", "offline"))
	th.Publish(status(3, 3, "online", "offline"))
	if m := d.readType("device_status_update"); seqOf(m) != 2 {
		t.Fatalf("filtered update: %v", m)
	}
	s := th.dial(t, "/ws/system?metrics=cpu_usage,disk_usage&token="+token(t, "a"), nil)
	s.readType("auth_response")
	s.readType("subscribed")
	m := s.readType("system_status_update")
	if met := m["metrics"].(map[string]any); len(met) != 2 || met["cpu_usage"] != 12.5 {
		t.Fatalf("system snapshot: %v", m)
	}
	th.PublishSystem(System{CPUUsage: 99, DiskUsage: 41, Timestamp: t0})
	if m := s.readType("system_status_update"); m["metrics"].(map[string]any)["cpu_usage"] != 99.0 {
		t.Fatalf("system update: %v", m)
	}
}

// Every goroutine of the hub and its connections is gone once Run has
// returned, whatever state the clients were in.
func TestNoGoroutineLeft(t *testing.T) {
	before := runtime.NumGoroutine()
	st := openStore(t)
	th := newSmallBufHub(t, limitless, func(o *Options) { o.Replay = st })
	for i := range 40 {
		r := telemetry(0, i%4, float64(i))
		appendPublish(t, st, th.Hub, r)
	}
	var cs []*tclient
	for i := range 12 {
		var c *tclient
		switch i % 4 {
		case 0: // resuming, reading
			c = th.dial(t, "/ws/telemetry?since=3&token="+token(t, "u"), nil)
		case 1: // frequency-limited
			c = th.login(t, "/ws", "u")
			c.send(map[string]any{"type": "subscribe", "channel": "telemetry", "frequency": "30s"})
		case 2: // never reads
			c = th.dialSlow(t, "/ws/telemetry?since=0&token="+token(t, "u"))
		case 3: // not authenticated
			c = th.dial(t, "/ws", nil)
		}
		cs = append(cs, c)
	}
	for i := range 200 {
		appendPublish(t, st, th.Hub, telemetry(0, i%4, float64(i)))
	}
	cs[0].ws.Close() // one goes away abruptly
	th.stop()
	eventually(t, "the goroutines to exit", func() bool { return runtime.NumGoroutine() <= before+2 })
}

func TestNewValidates(t *testing.T) {
	v, _ := auth.NewVerifier(auth.VerifierOptions{Secret: testSecret})
	for name, o := range map[string]Options{
		"no verifier":      {},
		"negative batch":   {Verifier: v, MaxBatch: -1},
		"negative wait":    {Verifier: v, CommitWait: -time.Second},
		"negative pong":    {Verifier: v, Conn: wsconn.Options{PongWait: -time.Second}},
		"empty origin":     {Verifier: v, Conn: wsconn.Options{AllowedOrigins: []string{""}}},
		"negative message": {Verifier: v, Conn: wsconn.Options{MaxMessageBytes: -5}},
	} {
		if _, err := New(o); err == nil || !strings.HasPrefix(err.Error(), "hub: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := New(Options{Verifier: v}); err != nil {
		t.Fatal(err)
	}
}

// An open connection's token expires with the Verifier's leeway, not a
// fixed one: what was accepted is not closed at once as expired.
func TestTokenExpiryUsesTheVerifiersLeeway(t *testing.T) {
	var th *testHub
	th = newTestHub(t, limitless, func(o *Options) {
		v, err := auth.NewVerifier(auth.VerifierOptions{Secret: testSecret, Leeway: 5 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		o.Verifier = v
		o.Now = func() time.Time { return th.now.Now() }
	})
	th.now.Advance(time.Since(th.now.Now())) // the fake clock at the real time
	tok, err := auth.Mint(testSecret, "alice", 10*time.Minute, auth.Claims{})
	if err != nil {
		t.Fatal(err)
	}
	a := th.dial(t, "/ws", nil)
	a.send(map[string]any{"type": "auth", "token": tok})
	a.readType("auth_response")
	th.now.Advance(13 * time.Minute) // expired 3 minutes ago: within the leeway
	th.tick <- time.Time{}
	a.send(map[string]any{"type": "ping"})
	a.readType("pong")
	th.now.Advance(3 * time.Minute) // 6 minutes: beyond it
	th.tick <- time.Time{}
	if m := a.read(); m["error"] != "token_expired" {
		t.Fatalf("expired: %v", m)
	}
}
