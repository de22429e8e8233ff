package pulse

import (
	"context"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/sensors"
)

func newPin() *gpiotest.Pin {
	return &gpiotest.Pin{N: "GPIO27", Num: 27, EdgesChan: make(chan gpio.Level)}
}

func open(t *testing.T, p gpio.PinIO, o *Opts) *Dev {
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

// waitFor waits, with a generous deadline, for cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, what, 10*time.Second, cond)
}

func read(t *testing.T, d *Dev) []sensors.Reading {
	t.Helper()
	rs, err := d.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 {
		t.Fatalf("readings %+v", rs)
	}
	return rs
}

func TestNoPulseLostBetweenReads(t *testing.T) {
	p := newPin()
	clk := testkit.NewClock(time.Unix(1e9, 0))
	d := open(t, p, &Opts{Poll: 20 * time.Millisecond, Now: clk.Now})
	const n = 2000
	var sent atomic.Bool
	go func() {
		for i := 0; i < n; i++ {
			p.EdgesChan <- gpio.Level(i%2 == 0)
		}
		sent.Store(true)
	}()
	// Read all along while the pulses come: reads never reset or lose the
	// total, and the per-read deltas add up to it.
	var sum, last float64
	for !sent.Load() || d.Count() < n {
		clk.Advance(time.Second)
		rs := read(t, d)
		if rs[0].Value < last {
			t.Fatalf("total went down: %v after %v", rs[0].Value, last)
		}
		sum += rs[1].Value // rate over one second = pulses in that read
		last = rs[0].Value
		if !sent.Load() {
			continue
		}
		waitFor(t, "every pulse counted", func() bool { return d.Count() == n })
	}
	clk.Advance(time.Second)
	rs := read(t, d)
	sum += rs[1].Value
	if rs[0].Value != n || sum != n {
		t.Fatalf("total %v, sum of per-read counts %v, want %d", rs[0].Value, sum, n)
	}
	if rs[0].Metric != "pulses" || rs[0].Unit != "count" || rs[1].Metric != "pulse_rate" || rs[1].Unit != "1/s" {
		t.Errorf("names and units %+v", rs)
	}
}

func TestRateAndScale(t *testing.T) {
	p := newPin()
	clk := testkit.NewClock(time.Unix(1e9, 0))
	// An S0 energy meter at 1000 imp/kWh.
	d := open(t, p, &Opts{Poll: 20 * time.Millisecond, Now: clk.Now, PerPulse: 0.001, Unit: "kWh", Total: "energy", Rate: "power"})
	for i := 0; i < 1800; i++ {
		p.EdgesChan <- gpio.High
	}
	waitFor(t, "1800 pulses", func() bool { return d.Count() == 1800 })
	clk.Advance(time.Hour)
	rs := read(t, d)
	// 1.8 kWh in an hour: 0.0005 kWh/s (1.8 kW).
	if rs[0].Metric != "energy" || rs[0].Unit != "kWh" || math.Abs(rs[0].Value-1.8) > 1e-9 {
		t.Errorf("total %+v", rs[0])
	}
	if rs[1].Metric != "power" || rs[1].Unit != "kWh/s" || math.Abs(rs[1].Value-0.0005) > 1e-9 {
		t.Errorf("rate %+v", rs[1])
	}
}

func TestDebounce(t *testing.T) {
	p := newPin()
	clk := testkit.NewClock(time.Unix(1e9, 0))
	d := open(t, p, &Opts{Poll: 20 * time.Millisecond, Now: clk.Now, Debounce: 10 * time.Millisecond})
	edge := func(k uint64) {
		p.EdgesChan <- gpio.High
		waitFor(t, "edge seen", func() bool { return d.seen.Load() == k })
	}
	edge(1)
	clk.Advance(2 * time.Millisecond)
	edge(2) // contact bounce: ignored
	clk.Advance(20 * time.Millisecond)
	edge(3)
	if got := d.Count(); got != 2 {
		t.Fatalf("count %d, want 2", got)
	}
}

func TestClose(t *testing.T) {
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
		t.Fatal("Close returned before the counter exited")
	}
	if _, err := d.Read(context.Background()); err == nil {
		t.Fatal("Read after Close succeeded")
	}
}

func TestBadOpts(t *testing.T) {
	for name, o := range map[string]*Opts{
		"edge":      {Edge: 7},
		"pull":      {Pull: 9},
		"debounce":  {Debounce: -time.Second},
		"per pulse": {PerPulse: -1},
		"names":     {Total: "x", Rate: "x"},
	} {
		if _, err := New(newPin(), o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := New(nil, nil); err == nil {
		t.Error("nil pin: no error")
	}
	if _, err := New(&gpiotest.Pin{N: "GPIO4"}, nil); err == nil {
		t.Error("pin without edges: no error")
	}
}

// Resume continues the total from a stored reading of the same metric and
// unit; other readings are ignored.
func TestResume(t *testing.T) {
	p := newPin()
	d := open(t, p, &Opts{Poll: 20 * time.Millisecond, PerPulse: 0.5, Unit: "kWh", Total: "energy", Rate: "power"})
	d.Resume([]sensors.Reading{{Metric: "energy", Value: 7, Unit: "Wh"}, {Metric: "power", Value: 3, Unit: "kWh/s"}})
	if rs := read(t, d); rs[0].Value != 0 {
		t.Fatalf("resumed from a reading in another unit: %+v", rs[0])
	}
	d.Resume([]sensors.Reading{{Metric: "power", Value: 3, Unit: "kWh/s"}, {Metric: "energy", Value: 120.5, Unit: "kWh"}})
	for range 3 {
		p.EdgesChan <- gpio.Low
	}
	waitFor(t, "3 pulses", func() bool { return d.Count() == 3 })
	if rs := read(t, d); rs[0].Value != 122 {
		t.Fatalf("total %+v, want 120.5 + 3 x 0.5", rs[0])
	}
	d.Resume([]sensors.Reading{{Metric: "energy", Value: -1, Unit: "kWh"}})
	if rs := read(t, d); rs[0].Value != 122 {
		t.Fatalf("a negative stored total was taken: %+v", rs[0])
	}
}
