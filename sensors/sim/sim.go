// Package sim provides simulated devices: enough to demo floorhub on any
// machine and to test everything downstream of the sensors.
//
// Every device is seeded, so a test gets the same values each run, and can
// inject faults: failed reads, stuck values and offline spells.
package sim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/floorhub/floorhub/sensors"
)

// Kinds of simulated device.
const (
	// Env is an environment sensor: temperature °C, humidity %, pressure
	// hPa, each on a slow random walk.
	Env = "env"
	// Hot is a temperature probe that now and then climbs past 30 °C.
	Hot = "hot"
	// Door is a door contact: door_open 1 or 0.
	Door = "door"
	// Counter is a pulse counter (a flow or S0 energy meter): total pulses
	// and the rate since the previous read.
	Counter = "counter"
)

// Errors a simulated read fails with.
var (
	ErrInjected = errors.New("sim: injected read error")
	ErrOffline  = errors.New("sim: device offline (injected)")
)

// Spell is a fault that recurs: it lasts For, starting every Every. The
// zero value never happens.
type Spell struct {
	Every time.Duration `yaml:"every"`
	For   time.Duration `yaml:"for"`
}

func (s Spell) active(since time.Duration) bool {
	if s.Every <= 0 || s.For <= 0 {
		return false
	}
	return since%s.Every >= s.Every-s.For
}

// Faults are injected into a simulated device.
type Faults struct {
	// ErrorRate is the fraction of reads that fail, 0 to 1.
	ErrorRate float64 `yaml:"error_rate"`
	// Stuck spells repeat the previous values unchanged.
	Stuck Spell `yaml:"stuck"`
	// Offline spells fail every read with ErrOffline.
	Offline Spell `yaml:"offline"`
}

// Opts configures a simulated device. The zero value of each field means
// its default.
type Opts struct {
	// Kind is Env (default), Hot, Door or Counter.
	Kind string
	// Seed makes the values reproducible; default 1.
	Seed uint64
	// Faults to inject; none by default.
	Faults Faults
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Dev is one simulated device. It is safe for concurrent use.
type Dev struct {
	kind   string
	faults Faults
	now    func() time.Time
	start  time.Time

	mu    sync.Mutex
	rng   *rand.Rand
	last  []sensors.Reading
	temp  float64
	hum   float64
	press float64
	open  bool
	total float64
	prev  time.Time
}

// New returns a simulated device.
func New(o *Opts) (*Dev, error) {
	if o == nil {
		o = &Opts{}
	}
	d := &Dev{kind: o.Kind, faults: o.Faults, now: o.Now}
	if d.kind == "" {
		d.kind = Env
	}
	switch d.kind {
	case Env, Hot, Door, Counter:
	default:
		return nil, fmt.Errorf("sim: unknown kind %q (want env, hot, door or counter)", d.kind)
	}
	if r := d.faults.ErrorRate; r < 0 || r > 1 || math.IsNaN(r) {
		return nil, fmt.Errorf("sim: error_rate %v is not between 0 and 1", r)
	}
	for name, s := range map[string]Spell{"stuck": d.faults.Stuck, "offline": d.faults.Offline} {
		if s.Every < 0 || s.For < 0 || (s.Every > 0 && s.For >= s.Every) {
			return nil, fmt.Errorf("sim: %s spell: for (%v) must be shorter than every (%v)", name, s.For, s.Every)
		}
	}
	if d.now == nil {
		d.now = time.Now
	}
	seed := o.Seed
	if seed == 0 {
		seed = 1
	}
	d.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	d.start = d.now()
	d.temp, d.hum, d.press = 21.5, 45, 1013.25
	if d.kind == Hot {
		d.temp = 24
	}
	return d, nil
}

// Metrics returns the names a device of kind reports (nil for an unknown
// kind; "" is Env).
func Metrics(kind string) []string {
	switch kind {
	case Env, "":
		return []string{"temperature", "humidity", "pressure"}
	case Hot:
		return []string{"temperature"}
	case Door:
		return []string{"door_open"}
	case Counter:
		return []string{"pulses", "pulse_rate"}
	}
	return nil
}

// Read returns the device's next values, or an injected fault.
func (d *Dev) Read(ctx context.Context) ([]sensors.Reading, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	since := now.Sub(d.start)
	if d.faults.Offline.active(since) {
		return nil, ErrOffline
	}
	if d.faults.ErrorRate > 0 && d.rng.Float64() < d.faults.ErrorRate {
		return nil, ErrInjected
	}
	if d.last != nil && d.faults.Stuck.active(since) {
		return append([]sensors.Reading(nil), d.last...), nil
	}
	var out []sensors.Reading
	switch d.kind {
	case Env:
		d.temp = walk(d.rng, d.temp, 0.05, 15, 28)
		d.hum = walk(d.rng, d.hum, 0.2, 20, 80)
		d.press = walk(d.rng, d.press, 0.1, 980, 1040)
		out = []sensors.Reading{
			{Metric: "temperature", Value: round(d.temp, 2), Unit: "°C"},
			{Metric: "humidity", Value: round(d.hum, 1), Unit: "%"},
			{Metric: "pressure", Value: round(d.press, 2), Unit: "hPa"},
		}
	case Hot:
		// A slow cycle that peaks above 30 °C for a few minutes every
		// quarter of an hour, plus noise: a process that overheats.
		phase := math.Mod(since.Seconds(), 900) / 900
		base := 25 + 7*math.Max(0, math.Sin(2*math.Pi*phase)-0.5)*2
		d.temp = base + d.rng.NormFloat64()*0.2
		out = []sensors.Reading{{Metric: "temperature", Value: round(d.temp, 2), Unit: "°C"}}
	case Door:
		if d.rng.Float64() < 0.05 {
			d.open = !d.open
		}
		v := 0.0
		if d.open {
			v = 1
		}
		out = []sensors.Reading{{Metric: "door_open", Value: v, Unit: ""}}
	case Counter:
		rate := 0.0
		if !d.prev.IsZero() {
			if dt := now.Sub(d.prev).Seconds(); dt > 0 {
				n := math.Round(dt * (8 + d.rng.Float64()*4)) // about 10 pulses/s
				d.total += n
				rate = n / dt
			}
		}
		d.prev = now
		out = []sensors.Reading{
			{Metric: "pulses", Value: d.total, Unit: "count"},
			{Metric: "pulse_rate", Value: round(rate, 3), Unit: "1/s"},
		}
	}
	d.last = out
	return append([]sensors.Reading(nil), out...), nil
}

// walk moves v by a normal step of scale sigma, kept within [lo, hi].
func walk(r *rand.Rand, v, sigma, lo, hi float64) float64 {
	v += r.NormFloat64() * sigma
	return math.Min(hi, math.Max(lo, v))
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
