package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/i2c"

	"github.com/floorhub/floorhub/command"
	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/sensors/catalog"
	"github.com/floorhub/floorhub/store"
)

// anyPort is the listen address of an agent under test: the kernel picks
// the port, and the test reads it back from the agent's dashboard URL.
const anyPort = "127.0.0.1:0"

type running struct {
	a      *Agent
	addr   string // host:port the agent listens on
	cancel context.CancelFunc
	done   chan error
	url    chan string
	logs   *testkit.Buffer
}

// listenAddr returns the address in a dashboard URL (Options.Ready), with
// the loopback IP in place of "localhost", which may resolve to ::1 first.
func listenAddr(t testing.TB, dashboard string) string {
	t.Helper()
	u, err := url.Parse(dashboard)
	if err != nil || u.Port() == "" {
		t.Fatalf("dashboard URL %q: no port (%v)", dashboard, err)
	}
	return net.JoinHostPort("127.0.0.1", u.Port())
}

func start(t *testing.T, yaml string) *running {
	t.Helper()
	return startWith(t, yaml, nil)
}

// startWith starts the agent with hw for its real drivers.
func startWith(t *testing.T, yaml string, hw catalog.Hardware) *running {
	t.Helper()
	return startPrepared(t, yaml, hw, nil)
}

// startPrepared starts the agent after prepare (if any) has set what
// tests set before Run.
func startPrepared(t *testing.T, yaml string, hw catalog.Hardware, prepare func(*Agent)) *running {
	t.Helper()
	cfg, err := ParseConfig("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir == "./data" {
		// No data_dir: the default would be the package's source directory.
		cfg.DataDir = t.TempDir()
	}
	logs := &testkit.Buffer{}
	r := &running{done: make(chan error, 1), url: make(chan string, 1), logs: logs}
	r.a, err = New(cfg, Options{Hardware: hw, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Ready: func(u string) { r.url <- u }})
	if err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(r.a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- r.a.Run(ctx) }()
	select {
	case u := <-r.url:
		r.addr = listenAddr(t, u)
	case err := <-r.done:
		t.Fatalf("agent stopped at start: %v\n%s", err, logs)
	case <-time.After(20 * time.Second):
		t.Fatal("agent not ready")
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("agent did not stop")
	}
}

func readAll(t *testing.T, dir string) []store.Record {
	t.Helper()
	st, err := store.Open(filepath.Join(dir, DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestRunsStoresAlertsAndStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	r := start(t, `
data_dir: `+dir+`
listen: `+anyPort+`
store: {commit_interval: 50ms}
devices:
  - {id: 1, driver: sim-env, interval: 100ms}
  - {id: 2, driver: sim-env, interval: 100ms, offline_after: 300ms, settings: {faults: {error_rate: 1}}}
rules:
  - {name: warm, metric: temperature, above: 0, severity: critical, title: High Temperature Alert, message: "{device} at {value}"}
  - {name: gone, offline: true, severity: warning}
`)
	testkit.Eventually(t, "device 2 offline", 10*time.Second, func() bool {
		r.a.mu.Lock()
		defer r.a.mu.Unlock()
		return r.a.devices[2].status == store.StatusOffline
	})
	testkit.Eventually(t, "telemetry committed", 10*time.Second, func() bool { return r.a.store.Stats().CommittedSeq > 10 })
	r.stop(t)

	recs := readAll(t, dir)
	var tele, raised, offline int
	var last uint64
	for _, rec := range recs {
		if rec.Seq <= last {
			t.Fatalf("seq not increasing: %d after %d", rec.Seq, last)
		}
		last = rec.Seq
		switch rec.Kind {
		case store.KindTelemetry:
			tele++
			if rec.DeviceID != 1 || len(rec.Metrics) != 3 || rec.BootID == "" || rec.TS.IsZero() {
				t.Fatalf("bad telemetry record %+v", rec)
			}
		case store.KindAlert:
			if rec.Alert.State == store.AlertActive {
				raised++
				if rec.Alert.ID != rec.Seq {
					t.Fatalf("raised alert ID %d, want its seq %d", rec.Alert.ID, rec.Seq)
				}
			}
		case store.KindDeviceStatus:
			if rec.DeviceID == 2 && rec.Status.New == store.StatusOffline {
				offline++
				if !strings.Contains(rec.Status.Reason, "injected") {
					t.Fatalf("offline reason should carry the last error: %q", rec.Status.Reason)
				}
			}
		}
	}
	if tele < 5 || raised != 2 || offline != 1 {
		t.Fatalf("got %d telemetry, %d raised alerts (want warm on 1, gone on 2), %d offline statuses", tele, raised, offline)
	}
	if !strings.Contains(r.logs.String(), "stopped cleanly") {
		t.Fatalf("no clean stop in logs:\n%s", r.logs)
	}

	// A restart keeps the active alerts: nothing is raised twice.
	r2 := start(t, `
data_dir: `+dir+`
listen: `+anyPort+`
store: {commit_interval: 50ms}
devices:
  - {id: 1, driver: sim-env, interval: 100ms}
rules:
  - {name: warm, metric: temperature, above: 0, severity: critical}
`)
	testkit.Eventually(t, "more telemetry", 10*time.Second, func() bool { return r2.a.store.Stats().CommittedSeq > last+5 })
	r2.stop(t)
	after := readAll(t, dir)
	raisedAgain, clearedGone := 0, 0
	for _, rec := range after {
		if rec.Seq <= last || rec.Kind != store.KindAlert {
			continue
		}
		switch {
		case rec.Alert.State == store.AlertActive:
			raisedAgain++
		case rec.Alert.Rule == "gone" && rec.Alert.State == store.AlertCleared:
			clearedGone++
		}
	}
	if raisedAgain != 0 || clearedGone != 1 {
		t.Fatalf("after restart: %d alerts raised again (want 0), %d alerts of the removed rule cleared (want 1)", raisedAgain, clearedGone)
	}
}

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	r := start(t, `
data_dir: `+dir+`
listen: `+anyPort+`
devices:
  - {id: 1, driver: sim-env, interval: 1h}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := r.a.Command(ctx, "read_now", json.RawMessage(`{"device_id": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Seq      uint64 `json:"seq"`
		DeviceID int    `json:"device_id"`
	}
	if err := json.Unmarshal(res.(json.RawMessage), &m); err != nil || m.Seq == 0 || m.DeviceID != 1 {
		t.Fatalf("read_now result %s (%v)", res, err)
	}
	if _, err := r.a.Command(ctx, "set_interval", json.RawMessage(`{"device_id": 1, "interval": "250ms"}`)); err != nil {
		t.Fatal(err)
	}
	if d := r.a.snapshot()[0]; d.Interval != 250*time.Millisecond {
		t.Fatalf("interval %v", d.Interval)
	}
	for _, c := range []struct{ name, args string }{
		{"read_now", `{}`}, {"read_now", `{"device_id": 9}`}, {"read_now", `{"device_id": "x"}`},
		{"set_interval", `{"device_id": 1, "interval": "1ns"}`}, {"set_interval", `{"device_id": 1}`},
		{"ping", `{"x": 1}`}, {"status", `[1,2]`}, {"read_now", `{"device_id": 1, "extra": true}`},
	} {
		if _, err := r.a.Command(ctx, c.name, json.RawMessage(c.args)); !errors.Is(err, command.ErrBadArgs) {
			t.Errorf("%s %s: got %v, want ErrBadArgs", c.name, c.args, err)
		}
	}
	if _, err := r.a.Command(ctx, "reboot", nil); !errors.Is(err, command.ErrUnknownCommand) {
		t.Errorf("unknown command: %v", err)
	}
	res, serr := r.a.Command(ctx, "status", nil)
	if serr != nil || res.(map[string]any)["gateway_id"] == nil {
		t.Fatalf("status: %v %v", res, serr)
	}
	// The status's JSON keys are snake case, system's timestamp too, and
	// it carries the boot's id and this start's.
	raw, _ := json.Marshal(res)
	var st struct {
		BootID string         `json:"boot_id"`
		RunID  string         `json:"run_id"`
		System map[string]any `json:"system"`
	}
	if err := json.Unmarshal(raw, &st); err != nil || st.BootID == "" || len(st.RunID) != 36 || st.System["timestamp"] == nil || st.System["Timestamp"] != nil {
		t.Errorf("status JSON: %s", raw)
	}
	if other := newRunID(); other == st.RunID {
		t.Errorf("run ids repeat: %s", other)
	}
	resp, err := http.Get("http://" + r.addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"ok":true`) {
		t.Fatalf("healthz: %d %s", resp.StatusCode, body)
	}
}

// TestClockNotSyncedAtBoot: a Pi without RTC boots in 1970. Readings taken
// then are flagged, and re-stamped from monotonic time once the clock is set.
func TestClockNotSyncedAtBoot(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	boot := time.Now()
	set := false
	now := func() time.Time { // 1970 until NTP "sets" the clock
		mu.Lock()
		defer mu.Unlock()
		if set {
			return time.Now()
		}
		return time.Unix(0, 0).Add(time.Since(boot))
	}
	cfg, err := ParseConfig("t", []byte("data_dir: "+dir+"\nlisten: "+anyPort+"\nstore: {commit_interval: 50ms}\ndevices:\n  - {id: 1, driver: sim-env, interval: 100ms}\nrules: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	var setAt time.Time
	ready := make(chan string, 1)
	a, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: now, Ready: func(u string) { ready <- u }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("agent stopped at start: %v", err)
	}
	testkit.Eventually(t, "unsynced readings", 10*time.Second, func() bool { return a.store.Stats().CommittedSeq > 3 })
	mu.Lock()
	setAt = time.Now()
	set = true // NTP set the clock
	mu.Unlock()
	testkit.Eventually(t, "synced readings", 10*time.Second, func() bool {
		recs, _ := a.store.Read(0, 1000)
		return len(recs) > 0 && recs[len(recs)-1].ClockSynced
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, dir)
	var early, synced int
	for _, r := range recs {
		switch {
		case r.ClockSynced:
			synced++
		case r.Restamped:
			early++
			if r.TS.Year() < 2025 || r.TS.After(setAt.Add(time.Second)) {
				t.Fatalf("restamped TS %v not shortly before the clock was set (%v)", r.TS, setAt)
			}
		default:
			t.Fatalf("record %d taken before sync was neither synced nor restamped: %+v", r.Seq, r)
		}
	}
	if early == 0 || synced == 0 {
		t.Fatalf("early %d, synced %d", early, synced)
	}
}

// pinHardware hands out one fake GPIO pin and no buses.
type pinHardware struct{ pin gpio.PinIO }

func (h pinHardware) I2C(string) (i2c.Bus, error)    { return nil, errors.New("no I2C here") }
func (h pinHardware) Pin(string) (gpio.PinIO, error) { return h.pin, nil }
func (h pinHardware) W1Dir() string                  { return "" }

// A pulse counter's total continues across a restart of the agent instead
// of falling back to zero.
func TestCounterTotalSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	yaml := `
data_dir: ` + dir + `
listen: 127.0.0.1:0
store: {commit_interval: 50ms}
rules: []
devices:
  - id: 7
    driver: gpio-counter
    pin: "27"
    interval: 100ms
    settings: {edge: falling, debounce: off, per_pulse: 0.5, unit: kWh, metrics: {total: energy, rate: power}}
`
	total := func(r *running) float64 {
		rec, ok, err := r.a.store.LastTelemetry(7, 1000)
		if err != nil || !ok {
			return -1
		}
		return rec.Metrics[0].Value
	}
	newPin := func() *gpiotest.Pin { return &gpiotest.Pin{N: "GPIO27", Num: 27, EdgesChan: make(chan gpio.Level)} }
	pin := newPin()
	r := startWith(t, yaml, pinHardware{pin})
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(r.logs.String())
		}
	})
	// Edges only once the driver is built: gpiotest's In drops pending ones.
	testkit.Eventually(t, "a first reading", 10*time.Second, func() bool { return total(r) == 0 })
	for range 6 {
		pin.EdgesChan <- gpio.Low
	}
	testkit.Eventually(t, "a stored total of 3 kWh", 10*time.Second, func() bool { return total(r) == 3 })
	r.stop(t)
	before := readAll(t, dir)
	lastSeq := before[len(before)-1].Seq

	pin = newPin()
	r = startWith(t, yaml, pinHardware{pin})
	testkit.Eventually(t, "a reading after the restart", 10*time.Second, func() bool {
		rec, ok, err := r.a.store.LastTelemetry(7, 1000)
		return err == nil && ok && rec.Seq > lastSeq
	})
	for range 2 {
		pin.EdgesChan <- gpio.Low
	}
	testkit.Eventually(t, "the total to go on from 3 kWh to 4", 10*time.Second, func() bool { return total(r) == 4 })
	r.stop(t)
	// Never back to zero: every total after the first 3 kWh is at least 3.
	seen3 := false
	for _, rec := range readAll(t, dir) {
		if rec.Kind != store.KindTelemetry {
			continue
		}
		v := rec.Metrics[0].Value
		if seen3 && v < 3 {
			t.Fatalf("total fell back to %v after reaching 3", v)
		}
		seen3 = seen3 || v == 3
	}
}
