package gpioin

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/floorhub/floorhub/sensors"
)

// Opts configures an input. The zero value means: pull resistor left as
// it is, 20 ms debounce, high reads as 1, metric "level".
type Opts struct {
	// Pull is the pull resistor: gpio.Float, gpio.PullDown or gpio.PullUp;
	// gpio.PullNoChange (0) leaves the pin's current setting.
	Pull gpio.Pull
	// Debounce is how long the level must stay unchanged after an edge
	// before it counts. 0 means 20 ms; negative means none.
	Debounce time.Duration
	// Invert reports a low level as 1: for a contact that pulls to ground
	// when closed.
	Invert bool
	// Metric is the reported name of the level; the change count is
	// reported as Metric + "_changes". Default "level".
	Metric string
	// Poll is how often the level is sampled when no edge comes (an edge
	// the hardware missed is caught within it); it also bounds how long
	// Close waits. 0 means 500 ms.
	Poll time.Duration
}

// Dev is one digital input. It is safe for concurrent use. Close it to
// stop its goroutine.
type Dev struct {
	pin      gpio.PinIO
	opts     Opts
	changes  chan struct{}
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	mu    sync.Mutex
	level bool // debounced, inversion applied
	count int  // changes since the previous Read
}

// New configures p as an input with edge detection and starts watching it.
func New(p gpio.PinIO, opts *Opts) (*Dev, error) {
	if p == nil {
		return nil, errors.New("gpioin: no pin")
	}
	d := &Dev{pin: p, changes: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if opts != nil {
		d.opts = *opts
	}
	if err := d.opts.Validate(); err != nil {
		return nil, err
	}
	if d.opts.Debounce == 0 {
		d.opts.Debounce = 20 * time.Millisecond
	}
	if d.opts.Poll == 0 {
		d.opts.Poll = 500 * time.Millisecond
	}
	if d.opts.Metric == "" {
		d.opts.Metric = "level"
	}
	if err := p.In(d.opts.Pull, gpio.BothEdges); err != nil {
		return nil, fmt.Errorf("gpioin: %s: set as input with edge detection: %w", p, err)
	}
	d.level = d.sample()
	go d.watch()
	return d, nil
}

// Validate checks the options without touching hardware.
// Metrics returns the names the input reports: its level and the count of
// its changes (level + "_changes").
func (o *Opts) Metrics() []string {
	m := o.Metric
	if m == "" {
		m = "level"
	}
	return []string{m, m + "_changes"}
}

func (o *Opts) Validate() error {
	switch o.Pull {
	case gpio.PullNoChange, gpio.Float, gpio.PullDown, gpio.PullUp:
	default:
		return fmt.Errorf("gpioin: unknown pull %d", o.Pull)
	}
	if o.Poll < 0 {
		return fmt.Errorf("gpioin: poll %v is negative", o.Poll)
	}
	return nil
}

func (d *Dev) String() string { return "gpioin " + d.pin.String() }

func (d *Dev) sample() bool { return (d.pin.Read() == gpio.High) != d.opts.Invert }

func (d *Dev) stopped() bool {
	select {
	case <-d.stop:
		return true
	default:
		return false
	}
}

// watch waits for edges, lets the level settle and records changes. It
// runs until Close.
func (d *Dev) watch() {
	defer close(d.done)
	for !d.stopped() {
		if d.pin.WaitForEdge(d.opts.Poll) && d.opts.Debounce > 0 {
			// Contact bounce: keep consuming edges until the line has been
			// quiet for the debounce time.
			for d.pin.WaitForEdge(d.opts.Debounce) {
				if d.stopped() {
					return
				}
			}
		}
		lvl := d.sample()
		d.mu.Lock()
		changed := lvl != d.level
		if changed {
			d.level = lvl
			d.count++
		}
		d.mu.Unlock()
		if changed {
			select {
			case d.changes <- struct{}{}:
			default: // a notification is already pending
			}
		}
	}
}

// Changes returns a channel that receives a value when the debounced level
// has changed since the last Read. Several changes before the owner looks
// coalesce into one notification; Read tells how many there were.
func (d *Dev) Changes() <-chan struct{} { return d.changes }

// Level returns the debounced level: true is high (low with Invert).
func (d *Dev) Level() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.level
}

// Read returns the level as 1 or 0 (unit "") and the number of changes
// since the previous Read (unit "count").
func (d *Dev) Read(ctx context.Context) ([]sensors.Reading, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if d.stopped() {
		return nil, errors.New("gpioin: read after Close")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	v := 0.0
	if d.level {
		v = 1
	}
	n := d.count
	d.count = 0
	return []sensors.Reading{
		{Metric: d.opts.Metric, Value: v, Unit: ""},
		{Metric: d.opts.Metric + "_changes", Value: float64(n), Unit: "count"},
	}, nil
}

// Close stops watching the pin, turns its edge detection off and returns
// once the goroutine has exited.
func (d *Dev) Close() error {
	var err error
	d.stopOnce.Do(func() {
		close(d.stop)
		<-d.done
		if e := d.pin.In(gpio.PullNoChange, gpio.NoEdge); e != nil {
			err = fmt.Errorf("gpioin: %s: release: %w", d.pin, e)
		}
	})
	return err
}
