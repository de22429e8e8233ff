package mqtt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floorhub/floorhub/command"
	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/store"
	"github.com/floorhub/floorhub/uplink/backoff"
)

// testCommander is a small real Commander: ping, a validated set_interval,
// a command that panics, and one that waits for release.
type testCommander struct{ started, release chan struct{} }

func (c testCommander) Command(ctx context.Context, name string, args json.RawMessage) (any, error) {
	switch name {
	case "slow":
		c.started <- struct{}{}
		select {
		case <-c.release:
			return "done", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case "ping":
		if len(args) > 0 {
			return nil, fmt.Errorf("%w: ping takes no arguments", command.ErrBadArgs)
		}
		return map[string]any{"pong": true}, nil
	case "set_interval":
		var a struct {
			DeviceID int    `json:"device_id"`
			Interval string `json:"interval"`
		}
		if err := json.Unmarshal(args, &a); err != nil || a.DeviceID <= 0 {
			return nil, fmt.Errorf("%w: device_id must be a positive number", command.ErrBadArgs)
		}
		return a, nil
	case "boom":
		panic("boom")
	}
	return nil, fmt.Errorf("%w: %q", command.ErrUnknownCommand, name)
}

func openStore(t testing.TB, path string) *store.Store {
	t.Helper()
	s, err := store.Open(path, &store.Options{CommitInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

func telemetry(i int) store.Record {
	return store.Record{Kind: store.KindTelemetry, DeviceID: 1 + i%4, TS: t0.Add(time.Duration(i) * time.Millisecond),
		BootID: "boot-1", Mono: int64(i) * 1000, ClockSynced: true,
		Metrics: []store.Metric{{Name: "temperature", Value: 20 + float64(i%10)/4, Unit: "°C"}}}
}

func appendN(t testing.TB, s *store.Store, from, n int) uint64 {
	t.Helper()
	var last uint64
	for i := from; i < from+n; i++ {
		r, err := s.Append(telemetry(i))
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		last = r.Seq
	}
	return last
}

func testOptions(t testing.TB, b *broker) Options {
	return Options{URL: b.URL(), GatewayID: "gw1", Version: "1.2.3", BootID: "boot-1", RunID: "run-1", BatchSize: 100,
		Logger:            slog.New(slog.NewTextHandler(t.Output(), nil)),
		HeartbeatInterval: time.Hour, CursorInterval: 10 * time.Millisecond,
		Backoff: backoff.Options{Initial: 20 * time.Millisecond, Max: 300 * time.Millisecond}}
}

// runUplink runs u until the returned stop is called (or the test ends)
// and checks that Run returns promptly and with nil.
func runUplink(t testing.TB, u *Uplink) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("Run did not return within 15 s of cancel")
		}
	}
	t.Cleanup(stop)
	return stop
}

func TestHappyPath(t *testing.T) {
	b := startBroker(t)
	col := newCollector(t, b, "central", "floorhub/gw1/#")
	st := openStore(t, filepath.Join(t.TempDir(), "fh.db"))

	appendN(t, st, 0, 1000)
	alert, err := st.Append(store.Record{Kind: store.KindAlert, DeviceID: 2, TS: t0, BootID: "boot-1", Mono: 5, ClockSynced: true,
		Alert: &store.Alert{ID: 1001, Rule: "high_temp", Severity: "critical", Title: "High Temperature Alert",
			Message: "Temperature exceeds safe threshold", State: store.AlertActive, Threshold: 30, Actual: 32.5, Metric: "temperature"}})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := st.Append(store.Record{Kind: store.KindDeviceStatus, DeviceID: 3, TS: t0, BootID: "boot-1", Mono: 6, ClockSynced: true,
		Status: &store.DeviceStatus{Old: "online", New: "offline", Reason: "Connection lost", LastSeen: t0.Add(-time.Minute)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}

	o := testOptions(t, b)
	o.HeartbeatInterval = 100 * time.Millisecond
	// The clock is not synced at birth, then is: heartbeats say so, with
	// the offset that dates the records sent before.
	var synced atomic.Bool
	o.Clock = func() (bool, int64) { return synced.Load(), 1_795_000_000_000_000_000 }
	u, err := New(st, testCommander{}, o)
	if err != nil {
		t.Fatal(err)
	}
	goroutines := runtime.NumGoroutine()
	stop := runUplink(t, u)
	col.waitUntil("every record", 30*time.Second, func() bool { return col.haveAll(dev.Seq, nil) })
	if !u.Connected() {
		t.Error("Connected() = false while delivering")
	}

	col.mu.Lock()
	var got, want map[string]any
	json.Unmarshal(col.records[1], &got)
	json.Unmarshal([]byte(`{"seq":1,"kind":"telemetry","device_id":1,"ts":"2026-11-23T09:00:00Z","boot_id":"boot-1",
		"mono_ns":0,"clock_synced":true,"metrics":{"temperature":{"value":20,"unit":"°C"}}}`), &want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("record 1:\n got %v\nwant %v", got, want)
	}
	json.Unmarshal(col.records[alert.Seq], &got)
	if a, _ := got["alert"].(map[string]any); got["kind"] != "alert" || a["severity"] != "critical" || a["alert_id"] != 1001.0 {
		t.Errorf("alert record: %s", col.records[alert.Seq])
	}
	json.Unmarshal(col.records[dev.Seq], &got)
	if s, _ := got["status"].(map[string]any); got["kind"] != "device_status" || s["new_status"] != "offline" ||
		s["last_seen"] != "2026-11-23T08:59:00Z" {
		t.Errorf("device status record: %s", col.records[dev.Seq])
	}
	if col.kinds["alerts"] != 1 || col.kinds["devices"] != 1 {
		t.Errorf("messages per topic: %v", col.kinds)
	}
	var birth Status
	if len(col.status) == 0 || json.Unmarshal(col.status[0].Payload, &birth) != nil || birth.State != "online" ||
		birth.Version != "1.2.3" || birth.BootID != "boot-1" || birth.RunID != "run-1" || birth.SkippedSeq == nil ||
		birth.ClockSynced || birth.MonoOffsetNS != nil {
		t.Errorf("birth: %+v", col.status)
	}
	if dups := len(col.seqs) - int(dev.Seq); dups != 0 {
		t.Errorf("%d unexpected records", dups)
	}
	col.mu.Unlock()
	if d := col.duplicates(); len(d) > 0 {
		t.Errorf("duplicates on a clean run: %v", d[:min(10, len(d))])
	}

	// Live records after the backlog.
	last := appendN(t, st, 1000, 10)
	col.waitUntil("live records", 10*time.Second, func() bool { return col.haveAll(last, nil) })

	// Birth is retained: a newcomer gets it.
	late := newCollector(t, b, "late", "floorhub/gw1/status")
	late.waitUntil("retained birth", 10*time.Second, func() bool { return len(late.status) > 0 })
	late.mu.Lock()
	if s := late.status[0]; !s.Retained || !strings.Contains(string(s.Payload), `"state":"online"`) ||
		!strings.Contains(string(s.Payload), `"skipped_seq":[]`) {
		t.Errorf("retained status: %+v %s", s, s.Payload)
	}
	late.mu.Unlock()
	late.client.Disconnect(0) // not to count its goroutines below

	// Heartbeat: eventually says everything is acknowledged.
	col.waitUntil("a heartbeat with everything acknowledged", 10*time.Second, func() bool {
		if len(col.heartbeat) == 0 {
			return false
		}
		var h Heartbeat
		json.Unmarshal(col.heartbeat[len(col.heartbeat)-1], &h)
		return h.AckedSeq == last && h.LastSeq == last && h.Backlog == 0 && h.GatewayID == "gw1" && !h.ClockSynced &&
			h.BootID == "boot-1" && h.RunID == "run-1"
	})
	synced.Store(true)
	col.waitUntil("a heartbeat with the clock synced", 10*time.Second, func() bool {
		var h Heartbeat
		json.Unmarshal(col.heartbeat[len(col.heartbeat)-1], &h)
		return h.ClockSynced && h.MonoOffsetNS != nil && *h.MonoOffsetNS == 1_795_000_000_000_000_000
	})

	// Commands.
	for _, c := range []struct {
		cmd, payload, want string
		retained           bool
	}{
		{"ping", `{"request_id":"r1"}`, `"request_id":"r1","cmd":"ping","ok":true,"result":{"pong":true}`, false},
		{"PING", ``, `"cmd":"PING","ok":true`, false},
		{"nope", `{"request_id":2}`, `"request_id":2,"cmd":"nope","ok":false,"error":"unknown_command"`, false},
		{"ping", `{bad`, `"cmd":"ping","ok":false,"error":"malformed"`, false},
		{"ping", `[1]`, `"cmd":"ping","ok":false,"error":"malformed"`, false},
		{"ping", `{} {}`, `"cmd":"ping","ok":false,"error":"malformed"`, false},
		// Over the uplink's 1 MiB packet limit: refused without being run
		// (its payload was not read), and the connection goes on.
		{"ping", `{"request_id":"big","pad":"` + strings.Repeat("x", 1<<20) + `"}`,
			`"cmd":"ping","ok":false,"error":"malformed","message":"the command's payload of 1048`, false},
		{"ping", `{"device_id":3}`, `"cmd":"ping","ok":false,"error":"bad_args"`, false},
		{"set_interval", `{"request_id":"r4","device_id":"x"}`, `"request_id":"r4","cmd":"set_interval","ok":false,"error":"bad_args"`, false},
		{"set_interval", `{"device_id":3,"interval":"5s"}`, `"ok":true,"result":{"device_id":3,"interval":"5s"}`, false},
		{"boom", `{"request_id":"r7"}`, `"request_id":"r7","cmd":"boom","ok":false,"error":"failed"`, false},
	} {
		col.mu.Lock()
		n := len(col.results)
		col.mu.Unlock()
		tok := col.client.Publish("floorhub/gw1/cmd/"+c.cmd, 1, c.retained, []byte(c.payload))
		tok.Wait()
		if len(c.payload) > 60 {
			c.payload = c.payload[:60] + "…"
		}
		col.waitUntil("result of "+c.cmd+" "+c.payload, 10*time.Second, func() bool { return len(col.results) > n })
		col.mu.Lock()
		res := string(col.results[n])
		col.mu.Unlock()
		if !strings.Contains(res, c.want) {
			t.Errorf("cmd/%s %s:\n got %s\nwant %s", c.cmd, c.payload, res, c.want)
		}
	}

	// Clean shutdown: offline status, cursors written, no goroutine left
	// (paho's last ones end just after Disconnect returns: wait a little).
	stop()
	if u.Connected() {
		t.Error("Connected() after Run returned")
	}
	if !testkit.WaitTrue(5*time.Second, func() bool { return runtime.NumGoroutine() <= goroutines }) {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after Run returned, %d before it started:\n%s",
			runtime.NumGoroutine(), goroutines, buf[:runtime.Stack(buf, true)])
	}
	col.waitUntil("offline status", 10*time.Second, func() bool {
		return strings.Contains(string(col.status[len(col.status)-1].Payload), `"state":"offline","gateway_id":"gw1","boot_id":"boot-1","run_id":"run-1","version":"1.2.3"`)
	})
	for _, name := range []string{CursorEvents, CursorTelemetry} {
		if c, err := st.Cursor(name); err != nil || c != last {
			t.Errorf("cursor %s = %d, %v; want %d", name, c, err, last)
		}
	}
}

func TestNewValidatesOptions(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "fh.db"))
	good := Options{URL: "tcp://127.0.0.1:1883", GatewayID: "gw1"}
	for _, c := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no url", func(o *Options) { o.URL = "" }, "URL is required"},
		{"bad scheme", func(o *Options) { o.URL = "http://x" }, "scheme"},
		{"no host", func(o *Options) { o.URL = "tcp://:1883" }, "no host"},
		{"path", func(o *Options) { o.URL = "tcp://h/x" }, "no path"},
		{"creds in url", func(o *Options) { o.URL = "tcp://u:p@h" }, "Username and Password"},
		{"no gateway", func(o *Options) { o.GatewayID = "" }, "GatewayID is empty"},
		{"wildcard gateway", func(o *Options) { o.GatewayID = "a/#" }, "GatewayID"},
		{"bad prefix", func(o *Options) { o.TopicPrefix = "a//b" }, "TopicPrefix"},
		{"password alone", func(o *Options) { o.Password = "x" }, "Password without Username"},
		{"cert alone", func(o *Options) { o.URL = "ssl://h"; o.CertFile = "c.pem" }, "CertFile and KeyFile"},
		{"ca on tcp", func(o *Options) { o.CAFile = "ca.pem" }, "need a TLS URL"},
		{"missing ca", func(o *Options) { o.URL = "mqtts://h"; o.CAFile = "/nonexistent/ca.pem" }, "CAFile"},
		{"keepalive", func(o *Options) { o.KeepAlive = time.Millisecond }, "KeepAlive"},
		{"negative", func(o *Options) { o.HeartbeatInterval = -1 }, "HeartbeatInterval is negative"},
		{"batch", func(o *Options) { o.BatchSize = 1e6 }, "BatchSize"},
	} {
		o := good
		c.edit(&o)
		_, err := New(st, nil, o)
		if !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an ErrOptions mentioning %q", c.name, err, c.want)
		}
		// New refuses with exactly Validate's error, a *FieldError (the
		// agent's config check runs Validate and maps the field to a key).
		var fe *FieldError
		if verr := o.Validate(); verr == nil || err == nil || verr.Error() != err.Error() || !errors.As(verr, &fe) || fe.Field == "" {
			t.Errorf("%s: Validate = %v, New = %v; want the same *FieldError", c.name, verr, err)
		}
	}
	u, err := New(st, nil, good)
	if err != nil {
		t.Fatal(err)
	}
	if u.o.ClientID != "gw1" || u.o.TopicPrefix != "floorhub" || u.o.KeepAlive != 30*time.Second ||
		u.o.HeartbeatInterval != 30*time.Second || u.o.BatchSize != 500 || u.broker.Host != "127.0.0.1:1883" {
		t.Errorf("defaults: %+v", u.o)
	}
	if u, _ := New(st, nil, Options{URL: "ssl://example.com", GatewayID: "g"}); u.broker.Host != "example.com:8883" || u.tls == nil {
		t.Errorf("ssl default port / TLS: %v", u.broker)
	}
}

func TestEventsOvertakeTelemetryBacklogAndDrainIsPaced(t *testing.T) {
	b := startBroker(t)
	col := newCollector(t, b, "central", "floorhub/gw1/#")
	st := openStore(t, filepath.Join(t.TempDir(), "fh.db"))
	const backlog = 30000
	appendN(t, st, 0, backlog)
	raise := func(n int) store.Record {
		r, err := st.Append(store.Record{Kind: store.KindAlert, DeviceID: 1, TS: t0, BootID: "boot-1", ClockSynced: true,
			Alert: &store.Alert{Rule: "r", Severity: "critical", Title: fmt.Sprint("alert ", n), State: store.AlertActive}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	first := raise(1) // stored after the whole backlog
	if err := st.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	o := testOptions(t, b)
	o.MaxRate = 30000 // records/s: the backlog takes about a second
	o.HeartbeatInterval = 50 * time.Millisecond
	u, err := New(st, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	runUplink(t, u)
	col.waitUntil("the first alert", 10*time.Second, func() bool { return col.seqs[first.Seq] > 0 })
	before := func(seq uint64) (tel int) { // telemetry that arrived before seq
		col.mu.Lock()
		defer col.mu.Unlock()
		for _, s := range col.order {
			if s == seq {
				break
			}
			if s <= backlog {
				tel++
			}
		}
		return tel
	}
	if tel := before(first.Seq); tel > backlog/10 {
		t.Errorf("the alert stored after %d telemetry records arrived after %d of them", backlog, tel)
	}
	// The subscriber may lag behind the broker: go by what the uplink sent.
	testkit.Eventually(t, "a fifth of the backlog sent", 10*time.Second, func() bool { return u.telemetry.Sent() > backlog/5 })
	second := raise(2) // live, during the drain
	sentAtRaise := int(u.telemetry.Sent())
	col.waitUntil("the live alert", 10*time.Second, func() bool { return col.seqs[second.Seq] > 0 })
	tel := before(second.Seq)
	// The alert may trail what was sent when it was raised by the window
	// and a commit.
	if tel > sentAtRaise+backlog/6 {
		t.Errorf("an alert raised when %d of %d backlog records were sent came after %d of them", sentAtRaise, backlog, tel)
	}
	t.Logf("alert raised when %d of %d backlog records were sent; it arrived after %d of them", sentAtRaise, backlog, tel)
	col.waitUntil("a heartbeat showing the backlog", 10*time.Second, func() bool {
		for _, raw := range col.heartbeat {
			var h Heartbeat
			json.Unmarshal(raw, &h)
			if h.Backlog > 0 && h.AckedSeq < h.LastSeq && h.OldestUnsentAgeS >= 0 {
				return true
			}
		}
		return false
	})
	last := appendN(t, st, backlog, 10)
	col.waitUntil("everything", 30*time.Second, func() bool { return col.haveAll(last, nil) })
	if d := time.Since(start); d < 700*time.Millisecond {
		t.Errorf("%d records at MaxRate 30000/s took only %v", backlog, d)
	}
	// Order per device: each device's records arrive in seq order.
	col.mu.Lock()
	defer col.mu.Unlock()
	lastPer := map[int]uint64{}
	for _, seq := range col.order {
		var r struct {
			DeviceID int `json:"device_id"`
			Kind     string
		}
		json.Unmarshal(col.records[seq], &r)
		if r.Kind != "telemetry" {
			continue
		}
		if seq <= lastPer[r.DeviceID] {
			t.Fatalf("device %d: seq %d arrived after %d", r.DeviceID, seq, lastPer[r.DeviceID])
		}
		lastPer[r.DeviceID] = seq
	}
}

func TestCommandsWhenBusyStillGetAResult(t *testing.T) {
	b := startBroker(t)
	col := newCollector(t, b, "central", "floorhub/gw1/#")
	st := openStore(t, filepath.Join(t.TempDir(), "fh.db"))
	started, release := make(chan struct{}, 1), make(chan struct{})
	u, err := New(st, testCommander{started: started, release: release}, testOptions(t, b))
	if err != nil {
		t.Fatal(err)
	}
	runUplink(t, u)
	col.waitUntil("connected and subscribed", 30*time.Second, func() bool {
		return len(col.heartbeat) > 0
	})
	col.client.Publish("floorhub/gw1/cmd/slow", 1, false, []byte(`{"request_id":"slow"}`)).Wait()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow command did not start")
	}
	const n = 60
	for i := 0; i < n; i++ {
		col.client.Publish("floorhub/gw1/cmd/ping", 1, false, []byte(fmt.Sprintf(`{"request_id":%d}`, i))).Wait()
	}
	// While slow runs, the 32 queued wait and the rest are refused as busy.
	col.waitUntil("busy results", 10*time.Second, func() bool { return len(col.results) >= n-32 })
	close(release)
	col.waitUntil("every result", 10*time.Second, func() bool { return len(col.results) == n+1 })
	col.mu.Lock()
	defer col.mu.Unlock()
	count := map[string]int{}
	for _, r := range col.results {
		var res CommandResult
		json.Unmarshal(r, &res)
		count[fmt.Sprint(res.OK, " ", res.Error)]++
	}
	if count["false busy"] != n-32 || count["true "] != 33 {
		t.Errorf("results: %v; want %d busy and 33 ok", count, n-32)
	}
}

// With the store committing telemetry only once a minute, an alert still
// reaches the broker at once (the store commits events at once) and brings
// the telemetry queued before it along; telemetry alone waits for the
// commit. Acknowledged cursors ride the commits: none costs one of its own.
func TestEventsDoNotWaitForTheCommitInterval(t *testing.T) {
	b := startBroker(t)
	col := newCollector(t, b, "central", "floorhub/gw1/#")
	st, err := store.Open(filepath.Join(t.TempDir(), "fh.db"), &store.Options{CommitInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	u, err := New(st, nil, testOptions(t, b))
	if err != nil {
		t.Fatal(err)
	}
	runUplink(t, u)
	col.waitUntil("the birth", 20*time.Second, func() bool { return len(col.status) > 0 })

	tele := appendN(t, st, 0, 5)
	alert, err := st.Append(store.Record{Kind: store.KindAlert, DeviceID: 1, TS: t0, BootID: "boot-1", ClockSynced: true,
		Alert: &store.Alert{Rule: "r", Severity: "critical", Title: "hot", State: store.AlertActive}})
	if err != nil {
		t.Fatal(err)
	}
	// Well within the minute: the alert did not wait for the interval.
	col.waitUntil("the alert and the telemetry before it", 30*time.Second, func() bool {
		return col.seqs[alert.Seq] > 0 && col.seqs[tele] > 0
	})
	// A reader can see a commit a moment before Stats counts it.
	testkit.Eventually(t, "Stats to count the alert's commit", 10*time.Second, func() bool {
		return st.Stats().CommittedSeq >= alert.Seq
	})
	commits := st.Stats().Commits
	later := appendN(t, st, 5, 3)
	col.mu.Lock()
	early := col.seqs[later] > 0
	col.mu.Unlock()
	if early {
		t.Fatal("telemetry was sent before its commit")
	}
	if err := st.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	col.waitUntil("the telemetry once committed", 30*time.Second, func() bool { return col.seqs[later] > 0 })
	if got := st.Stats().Commits; got != commits+1 {
		t.Fatalf("%d commits for one Flush: cursors cost transactions of their own", got-commits)
	}
}
