package ds18b20

import (
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	const (
		c12 = 750 * time.Millisecond
		c9  = 93750 * time.Microsecond
	)
	ended := func(start, wait time.Duration) *conversion {
		return &conversion{start: t0.Add(start), end: t0.Add(start + wait), wait: wait}
	}
	for _, tc := range []struct {
		name string
		c    *conversion
		t    time.Time
		need time.Duration
		want step
	}{
		{"no conversion yet", nil, t0, c12, startNew},
		{"failed", &conversion{start: t0, failed: true}, t0, c12, startNew},
		{"under way", ended(0, c12), ms(10), c12, joinRunning},
		{"under way, longer resolution joins", ended(0, c9), ms(50), c12, joinRunning},
		{"kernel, end unknown", &conversion{start: t0, wait: c12}, ms(5000), c12, joinRunning},
		{"just ended", ended(0, c12), ms(750), c12, useEnded},
		{"straggler within one conversion time", ended(0, c12), ms(1500), c12, useEnded},
		{"asked too late", ended(0, c12), ms(1501), c12, startNew},
		{"9 bits: straggler", ended(0, c9), ms(150), c9, useEnded},
		{"9 bits: next point", ended(0, c9), ms(5000), c9, startNew},
		{"ended too short for 12 bits", ended(0, c9), ms(100), c12, startNew},
		{"ended this instant, too short: not stretched", ended(0, c9), t0.Add(c9), c12, startNew},
		{"ended long enough for 9 bits", ended(0, c12), ms(800), c9, useEnded},
		{"kernel, ended", &conversion{start: t0, end: ms(20), wait: c12}, ms(30), c9, useEnded},
	} {
		if got := decide(tc.c, tc.t, tc.need); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestJoin(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const c9, c11, c12 = 93750 * time.Microsecond, 375 * time.Millisecond, 750 * time.Millisecond
	c := &conversion{start: t0, end: t0.Add(c9), wait: c9}
	c.join(c12)
	c.join(c11) // shorter: no change
	if c.wait != c12 || !c.end.Equal(t0.Add(c12)) {
		t.Errorf("after joins: wait %v, end %v", c.wait, c.end.Sub(t0))
	}
	k := &conversion{start: t0, wait: c12} // the kernel's: end unknown
	k.join(c12)
	if !k.end.IsZero() {
		t.Errorf("kernel conversion got an end %v", k.end)
	}
}
