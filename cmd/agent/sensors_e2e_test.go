package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"

	"github.com/floorhub/floorhub/agent"
	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/store"
)

// fakeBME280 is a BME280's register map on a fake I²C bus, for a test that
// needs an open-ended number of reads (a transcript cannot know how often
// the agent retries). Unplugged, it NACKs like a missing chip.
type fakeBME280 struct {
	unplugged atomic.Bool
	mu        sync.Mutex
	regs      [256]byte
	adcT      int32
}

func newFakeBME280() *fakeBME280 {
	f := &fakeBME280{adcT: 519888}
	f.regs[0xD0] = 0x60
	// The BMP280 datasheet's calibration example, and humidity words.
	words := []int{27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000}
	for i, w := range words {
		f.regs[0x88+2*i], f.regs[0x89+2*i] = byte(w), byte(w>>8)
	}
	f.regs[0xA1] = 75                                      // dig_H1
	f.regs[0xE1], f.regs[0xE2] = 0x6A, 0x01                // dig_H2 = 362
	f.regs[0xE4], f.regs[0xE5], f.regs[0xE6] = 19, 0x29, 3 // dig_H4 = 313, dig_H5 = 50
	f.regs[0xE7] = 30                                      // dig_H6
	return f
}

func (f *fakeBME280) String() string { return "fake-bme280" }

func (f *fakeBME280) SetSpeed(physic.Frequency) error { return nil }

func (f *fakeBME280) Tx(addr uint16, w, r []byte) error {
	if addr != 0x76 || f.unplugged.Load() {
		return errors.New("sysfs-i2c: remote I/O error")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(w) == 2 {
		f.regs[w[0]] = w[1]
		if w[0] == 0xF4 && w[1]&3 == 1 {
			// A forced measurement: new data, never twice the same.
			f.adcT++
			p, h := int32(415148), int32(30000)
			copy(f.regs[0xF7:], []byte{byte(p >> 12), byte(p >> 4), byte(p << 4),
				byte(f.adcT >> 12), byte(f.adcT >> 4), byte(f.adcT << 4), byte(h >> 8), byte(h)})
		}
		return nil
	}
	if len(w) == 1 {
		copy(r, f.regs[w[0]:])
		return nil
	}
	return fmt.Errorf("fake-bme280: unexpected transaction % x", w)
}

type e2eHardware struct {
	bus i2c.Bus
	pin gpio.PinIO
}

func (h *e2eHardware) I2C(name string) (i2c.Bus, error) {
	if name != "1" {
		return nil, fmt.Errorf("no bus %q", name)
	}
	return h.bus, nil
}

func (h *e2eHardware) Pin(name string) (gpio.PinIO, error) {
	if name != "GPIO17" {
		return nil, fmt.Errorf("no pin %q", name)
	}
	return h.pin, nil
}

func (h *e2eHardware) W1Dir() string { return "" }

// The fault story, end to end through the agent: a BME280 that
// stops answering turns warning with the bus's reason, is retried, and
// comes back online by itself, while a door contact on the same gateway
// keeps being read (and reported at once when it changes).
func TestSensorFaultsThroughTheAgent(t *testing.T) {
	dir := t.TempDir()
	cfg, err := agent.ParseConfig("e2e.yaml", []byte(`
data_dir: `+dir+`
listen: 127.0.0.1:0
devices:
  - {id: 1, name: hall, driver: bme280, bus: 1, address: 0x76, interval: 100ms}
  - id: 2
    name: door
    driver: gpio-input
    pin: GPIO17
    interval: 1h
    settings: {pull: up, invert: true, debounce: 5ms, metrics: {level: door_open}}
`))
	if err != nil {
		t.Fatal(err)
	}
	chip := newFakeBME280()
	door := &gpiotest.Pin{N: "GPIO17", Num: 17, EdgesChan: make(chan gpio.Level)}
	logs := &testkit.Buffer{}
	a, err := agent.New(cfg, agent.Options{Hardware: &e2eHardware{bus: chip, pin: door},
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	run := runAgent(t, a)
	defer run.Stop()

	await := func(what string, cond func(string) bool) {
		t.Helper()
		ok := testkit.WaitTrue(20*time.Second, func() bool {
			if exited, _ := run.Exited(); exited {
				return true
			}
			return cond(logs.String())
		})
		exited, runErr := run.Exited()
		switch {
		case exited:
			t.Fatalf("agent stopped: %v; logs:\n%s", runErr, logs)
		case !ok:
			t.Fatalf("timed out waiting for %s; logs:\n%s", what, logs)
		}
	}
	statusLines := func(logs, id, status string) int {
		n := 0
		for _, l := range strings.Split(logs, "\n") {
			if strings.Contains(l, `msg="device status"`) && strings.Contains(l, "device_id="+id+" ") && strings.Contains(l, "new="+status) {
				n++
			}
		}
		return n
	}
	doorSeen := func() string { // the door's last_seen in the agent's status
		res, err := a.Command(context.Background(), "status", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range res.(map[string]any)["devices"].([]map[string]any) {
			if d["device_id"] == 2 {
				seen, _ := d["last_seen"].(string)
				return seen
			}
		}
		return ""
	}
	// Both are read at start (the door, read every hour, too).
	await("the BME280 and the door online", func(s string) bool {
		return statusLines(s, "1", "online") == 1 && statusLines(s, "2", "online") == 1
	})
	chip.unplugged.Store(true)
	await("the BME280 in warning", func(s string) bool { return statusLines(s, "1", "warning") == 1 })
	// While it is out, the door opens: read at once, not an hour later.
	before := doorSeen()
	door.EdgesChan <- gpio.Low
	await("the door read", func(string) bool { return doorSeen() != before })
	chip.unplugged.Store(false)
	await("the BME280 back online", func(s string) bool { return statusLines(s, "1", "online") == 2 })
	run.Stop()

	st, err := store.Open(filepath.Join(dir, agent.DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var warnAt, backAt, doorAt uint64
	var reason string
	for _, r := range recs {
		switch {
		case r.Kind == store.KindDeviceStatus && r.DeviceID == 1 && r.Status.New == store.StatusWarning && warnAt == 0:
			warnAt, reason = r.Seq, r.Status.Reason
		case r.Kind == store.KindDeviceStatus && r.DeviceID == 1 && r.Status.New == store.StatusOnline && warnAt != 0 && backAt == 0:
			backAt = r.Seq
		case r.Kind == store.KindTelemetry && r.DeviceID == 2:
			if len(r.Metrics) != 2 || r.Metrics[0].Name != "door_open" {
				t.Fatalf("door telemetry %+v", r.Metrics)
			}
			if r.Metrics[0].Value == 1 && doorAt == 0 { // the first read after it opened
				doorAt = r.Seq
			}
		}
	}
	if !strings.Contains(reason, "bme280") || !strings.Contains(reason, "remote I/O error") {
		t.Errorf("warning reason %q does not name the driver and the bus error", reason)
	}
	if !(warnAt < doorAt && doorAt < backAt) {
		t.Errorf("seqs: BME280 warning %d, door read %d, BME280 back %d: the door should be read during the fault", warnAt, doorAt, backAt)
	}
}

// runningAgent is an agent whose Run goroutine a test owns.
type runningAgent struct {
	t      *testing.T
	cancel context.CancelFunc
	done   chan error
	exited bool
	err    error
}

// runAgent runs a until Stop.
func runAgent(t *testing.T, a *agent.Agent) *runningAgent {
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningAgent{t: t, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	return r
}

// Exited reports, without waiting, whether Run has returned, and its error.
func (r *runningAgent) Exited() (bool, error) {
	if !r.exited {
		select {
		case r.err = <-r.done:
			r.exited = true
		default:
		}
	}
	return r.exited, r.err
}

// Stop cancels Run and fails the test unless it returns nil within 20 s;
// after Run has returned it does nothing.
func (r *runningAgent) Stop() {
	if r.exited {
		return
	}
	r.cancel()
	select {
	case r.err = <-r.done:
		r.exited = true
		if r.err != nil {
			r.t.Errorf("Run: %v", r.err)
		}
	case <-time.After(20 * time.Second):
		r.t.Fatal("agent did not stop")
	}
}
