package ds18b20

import "time"

// A conversion is one Convert T [44h] sent after SKIP ROM [CCh]: every
// probe on the bus converts at once, and each then has the result in its
// scratchpad until the next conversion. The probes of a bus share it
// instead of converting one after the other, which at 12 bits would make
// the k-th of N probes read at one point k × 750 ms late.
type conversion struct {
	start time.Time // when Convert T was sent
	// end is when the result is in every joined probe's scratchpad. Zero
	// while the kernel converts: its trigger returns at the end.
	end time.Time
	// wait is the longest conversion time among the probes that joined;
	// a probe with a longer one cannot use this conversion.
	wait   time.Duration
	failed bool // Convert T was not sent; nobody may use it
}

// A step is what a probe asking for a reading does.
type step int

const (
	// startNew: no usable conversion; the probe starts one.
	startNew step = iota
	// joinRunning: a conversion is under way; the probe waits for its end
	// (moved by join to cover the probe's own conversion time).
	joinRunning
	// useEnded: a conversion ended recently and covered the probe; its
	// scratchpad is read at once.
	useEnded
)

// decide tells what a probe asking at t, whose conversion takes need, does
// with the bus's latest conversion c (nil: none yet).
//
// Freshness: a conversion under way started at most one conversion time
// (750 ms) ago, so joining it is as good as starting one. One that has
// ended is used only if it ended no earlier than need before the request:
// its value is then never older than the request by more than a new
// conversion's would be late. Probes reading at one schedule point thus
// share one conversion, even a straggler after the end (whose scratchpad
// still holds the result); a probe asking later converts again. A
// conversion too short for the probe (another resolution) is not used.
func decide(c *conversion, t time.Time, need time.Duration) step {
	switch {
	case c == nil || c.failed:
		return startNew
	case c.end.IsZero() || t.Before(c.end):
		return joinRunning
	case c.wait >= need && !c.end.Before(t.Add(-need)):
		return useEnded
	}
	return startNew
}

// join makes a conversion under way last long enough for a probe whose
// conversion takes need: the probe converts from the start (SKIP ROM
// reached it), so its result is ready need after the start. A conversion
// whose end is not known yet (the kernel's) already covers every probe.
func (c *conversion) join(need time.Duration) {
	if c.end.IsZero() || need <= c.wait {
		return
	}
	c.wait = need
	c.end = c.start.Add(need)
}
