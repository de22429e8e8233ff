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
// offline and coming back are always logged.
func TestFlappingDeviceStatusLogsOnceAMinute(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cfg, err := ParseConfig("test.yaml", []byte("devices: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.Buffer{}
	a, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	a.store, err = store.Open(filepath.Join(t.TempDir(), DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.store.Close()
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
	if err := a.store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs, err := a.store.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	changes := 0
	for _, r := range recs {
		if r.Kind == store.KindDeviceStatus {
			changes++
		}
	}
	if changes != 181 {
		t.Errorf("%d status changes stored, want all 181", changes)
	}

	// Offline and back: logged whatever the minute.
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
	if testing.Verbose() {
		t.Log(logs)
	}
}
