package agent

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/sensors"
	"github.com/floorhub/floorhub/store"
)

// clockedAgent is an agent of the config yaml on a store, not running,
// whose clock reads *now, and its log.
func clockedAgent(t *testing.T, yaml string, now *time.Time) (*Agent, *testkit.Buffer) {
	t.Helper()
	cfg, err := ParseConfig("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.Buffer{}
	a, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), Now: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	a.store, err = store.Open(filepath.Join(t.TempDir(), DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.store.Close() })
	return a, logs
}

// stored returns every record a has stored, committed first.
func stored(t *testing.T, a *Agent) []store.Record {
	t.Helper()
	if err := a.store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs, err := a.store.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// flakySensor fails every other read.
type flakySensor struct{ n int }

func (s *flakySensor) Read(context.Context) ([]sensors.Reading, error) {
	s.n++
	if s.n%2 == 0 {
		return nil, errors.New("flaky: no answer")
	}
	return []sensors.Reading{{Metric: "temperature", Value: 20, Unit: "°C"}}, nil
}

func (s *flakySensor) Close() error { return nil }

// A sensor that fails every other read for minutes turns warning and back
// each time (the store keeps every change), but the journal gets the
// online/warning flapping at most once a minute, each line saying how many
// were left out, and every warning logged has its recovery logged; going
// offline a minute after the last line logged, and coming back, are
// logged (TestFlappingOfflineLogsOnceAMinute: the episodes in between).
func TestFlappingDeviceStatusLogsOnceAMinute(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a, logs := clockedAgent(t, "devices: []\n", &now)
	d := newDevice(DeviceConfig{ID: 3, Name: "flaky", Interval: time.Second, Timeout: time.Second, OfflineAfter: time.Hour}, &flakySensor{})
	a.devices[3], a.order = d, []*device{d}

	// 3 minutes of one read a second, good and failed in turn, ending good.
	for range 181 {
		a.readOnce(context.Background(), d)
		now = now.Add(time.Second)
	}
	statusLines := strings.Count(logs.String(), `msg="device status"`)
	// First reading, then per minute one warning and its recovery.
	if statusLines > 1+3*2 {
		t.Errorf("%d device status lines in 3 minutes of flapping, want at most 7:\n%s", statusLines, logs)
	}
	if !strings.Contains(logs.String(), "suppressed=") || strings.Count(logs.String(), `new=warning`) < 3 {
		t.Errorf("want a warning a minute with the count left out:\n%s", logs)
	}
	if got := strings.Count(logs.String(), `new=warning`); got != strings.Count(logs.String(), `reason="reading again"`) {
		t.Errorf("%d warnings logged, %d recoveries:\n%s", got, strings.Count(logs.String(), `reason="reading again"`), logs)
	}
	recs := stored(t, a)
	changes := 0
	for _, r := range recs {
		if r.Kind == store.KindDeviceStatus {
			changes++
		}
	}
	if changes != 181 {
		t.Errorf("%d status changes stored, want all 181", changes)
	}

	// Offline and back, a minute after the last warning logged.
	now = now.Add(time.Minute)
	a.mu.Lock()
	a.setStatusLocked(d, store.StatusOffline, "no reading for 1h")
	a.mu.Unlock()
	if !strings.Contains(logs.String(), "old=online new=offline") {
		t.Errorf("going offline not logged:\n%s", logs)
	}
	before := strings.Count(logs.String(), `msg="device status"`)
	d.sensor.(*flakySensor).n = 0 // the next read is good
	a.readOnce(context.Background(), d)
	if !strings.Contains(logs.String(), "old=offline new=online") {
		t.Errorf("recovery from offline not logged:\n%s", logs)
	}
	if got := strings.Count(logs.String(), `msg="device status"`) - before; got != 1 {
		t.Errorf("%d lines for offline -> online, want 1", got)
	}
}

// A value hovering at a threshold without hysteresis raises and clears an
// alert on every reading (all stored), but the journal gets at most one
// raise a minute with the count left out, the clear of each raise logged,
// and a raise left out that stays active is logged within a minute.
func TestFlappingAlertLogsOnceAMinute(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a, logs := clockedAgent(t, `
devices: [{id: 1, driver: sim-env}]
rules:
  - {name: hot, metric: temperature, above: 30, for: 0s, severity: warning, title: hot, message: hot}
`, &now)
	feed := func(v float64) {
		a.mu.Lock()
		a.rules.metric(1, "temperature", v, now)
		a.mu.Unlock()
		now = now.Add(time.Second)
	}
	// 3 minutes: above, below, in turn.
	for i := range 180 {
		feed(30.5 - float64(i%2))
	}
	raised, cleared := strings.Count(logs.String(), `msg="alert raised"`), strings.Count(logs.String(), `msg="alert cleared"`)
	if raised > 3 || raised != cleared {
		t.Errorf("%d raises and %d clears logged in 3 minutes of flapping, want at most 3, each cleared:\n%s", raised, cleared, logs)
	}
	if !strings.Contains(logs.String(), "suppressed=29") {
		t.Errorf("want the raises left out counted:\n%s", logs)
	}
	// A raise left out that then holds: logged as still active a minute on.
	feed(30.5) // raised and logged: a minute since the last
	feed(29)
	feed(31) // raised, not logged
	for range 70 {
		feed(31)
	}
	if !strings.Contains(logs.String(), `msg="alert still active"`) {
		t.Errorf("an alert active for a minute whose raise was left out is not in the log:\n%s", logs)
	}
	recs := stored(t, a)
	if len(recs) != 183 {
		t.Errorf("%d alert records stored, want all 183", len(recs))
	}
}

// A device that goes offline and back several times a minute logs one
// episode a minute (its changes and its offline alert), each saying how
// many were left out; an episode left out that lasts is logged a minute on.
func TestFlappingOfflineLogsOnceAMinute(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a, logs := clockedAgent(t, `
devices: [{id: 1, driver: sim-env}]
rules:
  - {name: gone, offline: true, severity: warning, title: gone, message: gone}
`, &now)
	d := newDevice(DeviceConfig{ID: 1, Name: "flappy", Interval: time.Second, Timeout: time.Second, OfflineAfter: time.Hour}, &flakySensor{})
	a.devices[1], a.order = d, []*device{d}
	set := func(status string) {
		a.mu.Lock()
		a.setStatusLocked(d, status, "test")
		a.mu.Unlock()
	}
	set(store.StatusOnline)
	for range 17 { // offline 5 s, online 5 s: episodes start at 0 s, 10 s, ... 160 s
		set(store.StatusOffline)
		now = now.Add(5 * time.Second)
		set(store.StatusOnline)
		now = now.Add(5 * time.Second)
	}
	count := func(s string) int { return strings.Count(logs.String(), s) }
	if got := count("new=offline"); got > 3 {
		t.Errorf("%d offline lines in 3 minutes, want at most 3:\n%s", got, logs)
	}
	if count("new=offline") != count("old=offline new=online")-1 || count(`msg="alert raised"`) != count(`msg="alert cleared"`) || count(`msg="alert raised"`) != count("new=offline") {
		t.Errorf("each episode logged must be logged whole, with its alert:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "suppressed=5") {
		t.Errorf("want the episodes left out counted:\n%s", logs)
	}
	// An episode left out that lasts: logged a minute after the last.
	set(store.StatusOffline)
	if strings.Count(logs.String(), "new=offline") != 3 {
		t.Fatalf("the last episode was logged: the test needs it left out:\n%s", logs)
	}
	now = now.Add(time.Minute)
	a.checkOffline(time.Now())
	if !strings.Contains(logs.String(), `msg="device still not online" device_id=1 name=flappy status=offline`) {
		t.Errorf("an offline lasting a minute is not in the log:\n%s", logs)
	}
	// Its offline alert too, whose raise was left out with the episode.
	lasting := logs.String()[strings.LastIndex(logs.String(), "device still not online"):]
	if !strings.Contains(lasting, `msg="alert still active"`) || !strings.Contains(lasting, "rule=gone device_id=1") {
		t.Errorf("the offline alert of the lasting episode is not in the log:\n%s", lasting)
	}
	set(store.StatusOnline)
	lasting = logs.String()[strings.LastIndex(logs.String(), "device still not online"):]
	if !strings.Contains(lasting, "old=offline new=online") || !strings.Contains(lasting, `msg="alert cleared"`) {
		t.Errorf("the recovery after the lasting line, and its alert's clear, are not logged:\n%s", lasting)
	}
}
