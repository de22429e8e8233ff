package agent

import (
	"testing"
	"time"
)

func TestNextRead(t *testing.T) {
	o := time.Unix(1000, 0)
	ms := time.Millisecond
	for _, c := range []struct {
		name     string
		now      time.Duration // since the origin
		interval time.Duration
		want     time.Duration // since the origin
	}{
		{"at the origin: the next point", 0, 100 * ms, 100 * ms},
		{"just after a point", 100*ms + 1, 100 * ms, 200 * ms},
		{"read took most of the interval", 199 * ms, 100 * ms, 200 * ms},
		{"exactly on a point: the one after", 200 * ms, 100 * ms, 300 * ms},
		{"overran two points: skips them", 432 * ms, 100 * ms, 500 * ms},
		{"another interval, same origin", 1234 * ms, time.Second, 2 * time.Second},
		{"before the origin", -5 * ms, 100 * ms, 0},
		{"no interval", 7 * ms, 0, 7 * ms},
	} {
		if got := nextRead(o, o.Add(c.now), c.interval).Sub(o); got != c.want {
			t.Errorf("%s: nextRead(+%v, %v) = +%v, want +%v", c.name, c.now, c.interval, got, c.want)
		}
	}
	// A zero origin (no schedule set) counts from the zero time, without
	// overflowing.
	now := time.Date(2026, 12, 2, 13, 0, 0, 250_000_000, time.UTC)
	if got, want := nextRead(time.Time{}, now, time.Second), now.Truncate(time.Second).Add(time.Second); !got.Equal(want) {
		t.Errorf("zero origin: nextRead = %v, want %v", got, want)
	}
	// Devices with intervals of 100 ms and 1 s meet at every second.
	for k := 1; k <= 5; k++ {
		at := o.Add(time.Duration(k)*time.Second - 30*ms)
		if a, b := nextRead(o, at, 100*ms), nextRead(o, at, time.Second); !a.Equal(b) {
			t.Errorf("at +%v: 100ms schedule %v, 1s schedule %v", at.Sub(o), a.Sub(o), b.Sub(o))
		}
	}
}

// Devices read together by default, except on a Modbus line, where they
// would wait for each other.
func TestJitterDefaults(t *testing.T) {
	c, err := ParseConfig("x", []byte(`devices:
  - {id: 1, driver: sim-env, interval: 1s}
  - {id: 2, driver: modbus-tcp, interval: 1s, settings: {host: "127.0.0.1:502", registers: [{metric: x, address: 1}]}}
  - {id: 3, driver: modbus-tcp, interval: 1s, jitter: 0s, settings: {host: "127.0.0.1:502", registers: [{metric: y, address: 2}]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []time.Duration{0, 100 * time.Millisecond, 0} {
		if got := *c.Devices[i].Jitter; got != want {
			t.Errorf("device %d (%s): jitter %v, want %v", c.Devices[i].ID, c.Devices[i].Driver, got, want)
		}
	}
}
