package agent

import "time"

// The offline rule. A device is offline once it has gone its OfflineAfter
// of the agent's own running time without a good read: reads it missed
// while the agent ran. Time in which the agent itself did not run (the
// process or the whole machine paused, the host suspended) is no device's
// fault and does not count, or one pause of the gateway would turn every
// device offline at once; nor does a wall clock jump.
//
// Running time is kept on the monotonic clock by runClock, which the
// offline check advances once a second: a gap between two checks much
// longer than their period means the agent did not run in between, and
// counts nothing. So the check runs in a loop of its own (offlineLoop)
// that waits on nothing but the agent's lock, never on the disk.

// offlineCheckEvery is the period of the offline check.
const offlineCheckEvery = time.Second

// pauseGap is the longest gap between two checks that still counts as
// running time: three periods, so a check delayed by load still counts.
const pauseGap = 3 * offlineCheckEvery

// runningTime returns how much of the monotonic time elapsed since the
// last check counts as the agent's running time.
func runningTime(elapsed time.Duration) time.Duration {
	if elapsed < 0 || elapsed > pauseGap {
		return 0
	}
	return elapsed
}

// runClock is the agent's running time. The zero value starts at its first
// tick. Its times are monotonic clock readings (time.Now, never a wall
// clock that was stripped or parsed).
type runClock struct {
	base time.Duration // running time at the last tick
	at   time.Time     // the last tick
}

// now returns the running time at t (t not before the last tick).
func (c *runClock) now(t time.Time) time.Duration {
	if c.at.IsZero() {
		return c.base
	}
	return c.base + runningTime(t.Sub(c.at))
}

// tick advances the clock to t; the offline check calls it. A t before
// the last tick (a reading taken before it, by a slower caller) changes
// nothing: the monotonic clock never goes back.
func (c *runClock) tick(t time.Time) {
	if t.Before(c.at) {
		return
	}
	c.base, c.at = c.now(t), t
}

// silentFor returns how long a device whose last good read (or start) was
// at running time since has been silent, at running time now.
func silentFor(now, since time.Duration) time.Duration { return max(now-since, 0) }
