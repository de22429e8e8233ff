package gpioin

import (
	"context"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/floorhub/floorhub/sensors"
)

// wait is how long a test waits for the watcher before failing: generous,
// the machine is shared.
const wait = 10 * time.Second

func newPin() *gpiotest.Pin {
	return &gpiotest.Pin{N: "GPIO17", Num: 17, EdgesChan: make(chan gpio.Level)}
}

func open(t *testing.T, p *gpiotest.Pin, o *Opts) *Dev {
	t.Helper()
	d, err := New(p, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	return d
}

func read(t *testing.T, d *Dev) (level, changes float64) {
	t.Helper()
	rs, err := d.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 {
		t.Fatalf("readings %+v", rs)
	}
	return rs[0].Value, rs[1].Value
}

func awaitChange(t *testing.T, d *Dev) {
	t.Helper()
	select {
	case <-d.Changes():
	case <-time.After(wait):
		t.Fatal("no change notified")
	}
}

func TestBounceIsOneChange(t *testing.T) {
	p := newPin()
	// A debounce far longer than the gaps between the sends below, so a
	// loaded machine cannot split the bounce.
	d := open(t, p, &Opts{Debounce: 300 * time.Millisecond, Poll: 20 * time.Millisecond, Metric: "door_open"})
	rs, err := d.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := []sensors.Reading{{Metric: "door_open", Value: 0}, {Metric: "door_open_changes", Value: 0, Unit: "count"}}; rs[0] != want[0] || rs[1] != want[1] {
		t.Fatalf("readings %+v, want %+v", rs, want)
	}
	for _, l := range []gpio.Level{gpio.High, gpio.Low, gpio.High, gpio.Low, gpio.High} {
		p.EdgesChan <- l
	}
	awaitChange(t, d)
	if lvl, n := read(t, d); lvl != 1 || n != 1 {
		t.Fatalf("level %v changes %v, want 1 and 1", lvl, n)
	}
	// Nothing new: the level is reported again, with no change.
	if lvl, n := read(t, d); lvl != 1 || n != 0 {
		t.Fatalf("level %v changes %v, want 1 and 0", lvl, n)
	}
}

func TestChangesBetweenReads(t *testing.T) {
	p := newPin()
	d := open(t, p, &Opts{Debounce: -1, Poll: 20 * time.Millisecond})
	// Open and close again before anyone reads: both changes are counted
	// and the level is back to 0.
	p.EdgesChan <- gpio.High
	awaitChange(t, d)
	p.EdgesChan <- gpio.Low
	awaitChange(t, d)
	if lvl, n := read(t, d); lvl != 0 || n != 2 {
		t.Fatalf("level %v changes %v, want 0 and 2", lvl, n)
	}
}

func TestInvertAndPull(t *testing.T) {
	p := newPin()
	// gpiotest applies a pull-up as a high level; a contact to ground that
	// is open reads high, and inverted that is 0 ("not closed").
	d := open(t, p, &Opts{Pull: gpio.PullUp, Invert: true, Poll: 20 * time.Millisecond})
	if p.Pull() != gpio.PullUp {
		t.Errorf("pull %v", p.Pull())
	}
	if lvl, _ := read(t, d); lvl != 0 {
		t.Fatalf("level %v, want 0", lvl)
	}
	p.EdgesChan <- gpio.Low // contact closes
	awaitChange(t, d)
	if lvl, n := read(t, d); lvl != 1 || n != 1 {
		t.Fatalf("level %v changes %v", lvl, n)
	}
}

func TestMissedEdgeCaughtByPoll(t *testing.T) {
	p := newPin()
	d := open(t, p, &Opts{Poll: 10 * time.Millisecond})
	// The level changes with no edge delivered, as when the kernel drops
	// one: the periodic sample catches it.
	p.Lock()
	p.L = gpio.High
	p.Unlock()
	awaitChange(t, d)
	if lvl, _ := read(t, d); lvl != 1 {
		t.Fatalf("level %v", lvl)
	}
}

func TestCloseStopsWatcher(t *testing.T) {
	p := newPin()
	d, err := New(p, &Opts{Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	default:
		t.Fatal("Close returned before the watcher exited")
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := d.Read(context.Background()); err == nil {
		t.Fatal("Read after Close succeeded")
	}
}

func TestBadInput(t *testing.T) {
	if _, err := New(nil, nil); err == nil {
		t.Error("nil pin: no error")
	}
	// A pin without edge support (gpiotest without an edge channel).
	if _, err := New(&gpiotest.Pin{N: "GPIO4"}, nil); err == nil {
		t.Error("pin without edges: no error")
	}
	if _, err := New(newPin(), &Opts{Pull: 9}); err == nil {
		t.Error("bad pull: no error")
	}
}
