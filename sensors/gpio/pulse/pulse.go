package pulse

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/floorhub/floorhub/sensors"
)

// Opts configures a counter. The zero value means: count rising edges, the
// pull resistor as it is, no debounce, metrics "pulses" (count) and
// "pulse_rate" (1/s).
type Opts struct {
	// Edge is what counts: gpio.RisingEdge, gpio.FallingEdge or
	// gpio.BothEdges. gpio.NoEdge (0) means rising.
	Edge gpio.Edge
	// Pull is the pull resistor: gpio.Float, gpio.PullDown or gpio.PullUp;
	// gpio.PullNoChange (0) leaves the pin's current setting.
	Pull gpio.Pull
	// Debounce ignores edges that come sooner than this after a counted
	// one: for mechanical (reed) contacts. 0 means none.
	Debounce time.Duration
	// PerPulse is the quantity one pulse stands for in Unit, e.g. 0.001
	// kWh for a 1000 imp/kWh meter. 0 means 1.
	PerPulse float64
	// Total and Rate are the reported metric names; default "pulses" and
	// "pulse_rate".
	Total, Rate string
	// Unit is the unit of the total, default "count"; the rate is in Unit
	// per second ("1/s" for counts).
	Unit string
	// Poll is how long one wait for an edge lasts; it bounds how long
	// Close waits. 0 means 500 ms.
	Poll time.Duration
	// Now is the clock for rates and debounce; default time.Now.
	Now func() time.Time
}

// Dev is one pulse counter. It is safe for concurrent use. Close it to
// stop its goroutine.
type Dev struct {
	pin      gpio.PinIO
	opts     Opts
	rateUnit string
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	count atomic.Uint64 // pulses counted since New
	seen  atomic.Uint64 // edges seen, counted or not (tests wait on it)

	mu        sync.Mutex
	prevCount uint64
	prevAt    time.Time
	base      float64 // the total resumed from (Resume), in Unit
}

// New configures p as an input with edge detection and starts counting.
func New(p gpio.PinIO, opts *Opts) (*Dev, error) {
	if p == nil {
		return nil, errors.New("pulse: no pin")
	}
	d := &Dev{pin: p, stop: make(chan struct{}), done: make(chan struct{})}
	if opts != nil {
		d.opts = *opts
	}
	o := &d.opts
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Edge == gpio.NoEdge {
		o.Edge = gpio.RisingEdge
	}
	if o.PerPulse == 0 {
		o.PerPulse = 1
	}
	if o.Poll == 0 {
		o.Poll = 500 * time.Millisecond
	}
	o.Total, o.Rate = o.names()
	if o.Unit == "" {
		o.Unit = "count"
	}
	d.rateUnit = o.Unit + "/s"
	if o.Unit == "count" {
		d.rateUnit = "1/s"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := p.In(o.Pull, o.Edge); err != nil {
		return nil, fmt.Errorf("pulse: %s: set as input with edge detection: %w", p, err)
	}
	d.prevAt = o.Now()
	go d.run()
	return d, nil
}

// Validate checks the options without touching hardware.
func (o *Opts) Validate() error {
	switch o.Edge {
	case gpio.NoEdge, gpio.RisingEdge, gpio.FallingEdge, gpio.BothEdges:
	default:
		return fmt.Errorf("pulse: unknown edge %d", o.Edge)
	}
	switch o.Pull {
	case gpio.PullNoChange, gpio.Float, gpio.PullDown, gpio.PullUp:
	default:
		return fmt.Errorf("pulse: unknown pull %d", o.Pull)
	}
	if o.Debounce < 0 || o.Poll < 0 {
		return errors.New("pulse: debounce and poll must not be negative")
	}
	if o.PerPulse < 0 || math.IsNaN(o.PerPulse) || math.IsInf(o.PerPulse, 0) {
		return fmt.Errorf("pulse: per_pulse %v: want a positive number", o.PerPulse)
	}
	if t, r := o.names(); t == r {
		return fmt.Errorf("pulse: total and rate are both named %q", t)
	}
	return nil
}

// Metrics returns the names the counter reports: the total and the rate.
func (o *Opts) Metrics() []string {
	t, r := o.names()
	return []string{t, r}
}

func (o *Opts) names() (total, rate string) {
	total, rate = o.Total, o.Rate
	if total == "" {
		total = "pulses"
	}
	if rate == "" {
		rate = "pulse_rate"
	}
	return total, rate
}

func (d *Dev) String() string { return "pulse " + d.pin.String() }

// run counts edges until Close.
func (d *Dev) run() {
	defer close(d.done)
	var last time.Time
	for {
		select {
		case <-d.stop:
			return
		default:
		}
		if !d.pin.WaitForEdge(d.opts.Poll) {
			continue
		}
		if d.opts.Debounce > 0 {
			now := d.opts.Now()
			if !last.IsZero() && now.Sub(last) < d.opts.Debounce {
				d.seen.Add(1)
				continue
			}
			last = now
		}
		d.count.Add(1)
		d.seen.Add(1)
	}
}

// Count returns the pulses counted since New.
func (d *Dev) Count() uint64 { return d.count.Load() }

// Resume continues the total from an earlier run's last reading (the
// owner's stored one): the total Read reports is then that value plus what
// was counted since New. Only a reading of the total's metric name and
// unit counts; others are ignored, and so is a negative or non-finite
// value. Pulses between that reading and New were not counted.
func (d *Dev) Resume(last []sensors.Reading) {
	for _, r := range last {
		if r.Metric == d.opts.Total && r.Unit == d.opts.Unit && r.Value >= 0 && !math.IsInf(r.Value, 0) {
			d.mu.Lock()
			d.base = r.Value
			d.mu.Unlock()
			return
		}
	}
}

// Read returns the total (pulses times PerPulse, in Unit) and the rate per
// second since the previous Read (or since New, for the first).
func (d *Dev) Read(ctx context.Context) ([]sensors.Reading, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case <-d.stop:
		return nil, errors.New("pulse: read after Close")
	default:
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.count.Load()
	now := d.opts.Now()
	rate := 0.0
	if dt := now.Sub(d.prevAt).Seconds(); dt > 0 {
		rate = float64(n-d.prevCount) / dt
	}
	d.prevCount, d.prevAt = n, now
	return []sensors.Reading{
		{Metric: d.opts.Total, Value: d.base + float64(n)*d.opts.PerPulse, Unit: d.opts.Unit},
		{Metric: d.opts.Rate, Value: math.Round(rate*d.opts.PerPulse*1e6) / 1e6, Unit: d.rateUnit},
	}, nil
}

// Close stops counting, turns edge detection off and returns once the
// goroutine has exited.
func (d *Dev) Close() error {
	var err error
	d.stopOnce.Do(func() {
		close(d.stop)
		<-d.done
		if e := d.pin.In(gpio.PullNoChange, gpio.NoEdge); e != nil {
			err = fmt.Errorf("pulse: %s: release: %w", d.pin, e)
		}
	})
	return err
}
