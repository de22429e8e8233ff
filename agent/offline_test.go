package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/store"
)

func TestRunningTime(t *testing.T) {
	for _, c := range []struct {
		elapsed, want time.Duration
	}{
		{0, 0},
		{time.Second, time.Second}, // on time
		{1500 * time.Millisecond, 1500 * time.Millisecond}, // a little late: load
		{pauseGap, pauseGap},             // late, still running
		{pauseGap + time.Millisecond, 0}, // the agent did not run
		{14 * time.Second, 0},            // the machine pause
		{-time.Second, 0},
	} {
		if got := runningTime(c.elapsed); got != c.want {
			t.Errorf("runningTime(%v) = %v, want %v", c.elapsed, got, c.want)
		}
	}
}

// TestOfflineRule runs the rule over timelines on an injected monotonic
// clock: offline checks (ticks), good reads, and the check at which the
// device turns offline.
func TestOfflineRule(t *testing.T) {
	const after = 8 * time.Second // a 2 s interval: 3 intervals + a 2 s timeout
	s := time.Second
	type event struct {
		at    time.Duration // monotonic, from the start
		read  bool          // a good read; else an offline check
		isOff bool          // a check expected to find the device offline
	}
	ticks := func(from, to time.Duration) []event {
		var ev []event
		for at := from; at <= to; at += s {
			ev = append(ev, event{at: at})
		}
		return ev
	}
	reads := func(ev []event, every time.Duration, from, to time.Duration) []event {
		for at := from; at <= to; at += every {
			ev = append(ev, event{at: at, read: true})
		}
		return ev
	}
	offFrom := func(ev []event, from time.Duration) []event {
		for i := range ev {
			if !ev[i].read && ev[i].at >= from {
				ev[i].isOff = true
			}
		}
		return ev
	}
	for _, c := range []struct {
		name   string
		events []event
	}{
		{"healthy device", reads(ticks(s, 20*s), 2*s, 0, 20*s)},
		{"dead from the start: offline after 8 s", offFrom(ticks(s, 20*s), 8*s)},
		{"dead after a last read at 2 s: offline at 10 s", offFrom(reads(ticks(s, 20*s), 2*s, 0, 3*s), 10*s)},
		// The machine pauses from 5 s to 19 s: no check, no read. The
		// checks after it count only what the device missed while the
		// agent ran.
		{"healthy device across a 14 s pause", reads(reads(append(ticks(s, 5*s), ticks(19*s, 30*s)...), 2*s, 0, 4*s), 2*s, 20*s, 30*s)},
		{"healthy device, first read 1 s after the pause", reads(reads(append(ticks(s, 5*s), ticks(19*s, 30*s)...), 2*s, 0, 4*s), 2*s, 21*s, 30*s)},
		{"dead device across a pause: the pause does not count", offFrom(append(ticks(s, 5*s), ticks(19*s, 30*s)...), 22*s)},
		{"late checks under load still count", offFrom([]event{{at: 3 * s}, {at: 6 * s}, {at: 9 * s}, {at: 12 * s}}, 9*s)},
	} {
		// Order by time; a read at the same instant as a check comes first.
		evs := c.events
		for i := 1; i < len(evs); i++ {
			for j := i; j > 0 && (evs[j].at < evs[j-1].at || (evs[j].at == evs[j-1].at && evs[j].read && !evs[j-1].read)); j-- {
				evs[j], evs[j-1] = evs[j-1], evs[j]
			}
		}
		t0 := time.Now()
		var clk runClock
		clk.tick(t0)
		var good time.Duration
		for _, e := range evs {
			now := t0.Add(e.at)
			if e.read {
				good = clk.now(now)
				continue
			}
			clk.tick(now)
			off := silentFor(clk.now(now), good) >= after
			if off != e.isOff {
				t.Errorf("%s: at %v offline = %v, want %v (silent %v)", c.name, e.at, off, e.isOff, silentFor(clk.now(now), good))
				break
			}
		}
	}
}

// A running agent whose check comes after a long gap (the machine paused)
// keeps its devices online; a dead one still turns offline after its
// OfflineAfter of running time.
func TestPauseIsNotAnOutage(t *testing.T) {
	r := start(t, `
data_dir: `+t.TempDir()+`
listen: 127.0.0.1:0
devices:
  - {id: 1, driver: sim-env, interval: 1h, offline_after: 2h, settings: {faults: {error_rate: 1}}}
rules: []
`)
	d := r.a.devices[1]
	status := func() (string, string) {
		r.a.mu.Lock()
		defer r.a.mu.Unlock()
		return d.status, d.reason
	}
	// The agent's own checks run meanwhile on the real clock; the test's
	// instants are far enough ahead of it to be the last ones.
	t0 := time.Now().Add(time.Hour)
	r.a.mu.Lock()
	r.a.run = runClock{base: 2*time.Hour - 10*time.Second, at: t0} // silent long: 10 s away from offline
	d.good = 0
	r.a.mu.Unlock()
	r.a.checkOffline(t0.Add(14 * time.Second)) // the first check after a 14 s pause
	if st, _ := status(); st == store.StatusOffline {
		t.Fatal("a pause of the agent turned the device offline")
	}
	for i := range 4 {
		r.a.checkOffline(t0.Add(14*time.Second + time.Duration(i+1)*3*time.Second)) // late checks: running time
	}
	if st, reason := status(); st != store.StatusOffline || !strings.HasPrefix(reason, "no reading for 2h0m2s") {
		t.Fatalf("status %q (%s), want offline after 2 h of running time", st, reason)
	}
}

// The offline check runs while housekeeping is blocked, as it is in a
// store call while the disk fails: the running time goes on and a silent
// device turns offline. The test drives the check's ticks with its own
// instants and blocks housekeeping at its uplink tracking.
func TestOfflineWhileHousekeepingBlocks(t *testing.T) {
	ticks := make(chan time.Time)
	r := startPrepared(t, `
data_dir: `+t.TempDir()+`
listen: 127.0.0.1:0
devices:
  - {id: 1, driver: sim-env, interval: 1h, offline_after: 1h, settings: {faults: {error_rate: 1}}}
rules: []
`, nil, func(a *Agent) { a.offlineTicks = ticks })
	d := r.a.devices[1]
	status := func() (string, string) {
		r.a.mu.Lock()
		defer r.a.mu.Unlock()
		return d.status, d.reason
	}
	// The gate: housekeeping stops at its next tick, in trackUplinks.
	r.a.upMu.Lock()
	defer r.a.upMu.Unlock()

	t0 := time.Now()
	r.a.mu.Lock()
	r.a.run = runClock{base: time.Hour - 11*time.Second, at: t0} // 11 s of running time away from offline
	d.good = 0
	r.a.mu.Unlock()
	for i := range 5 {
		ticks <- t0.Add(time.Duration(i+1) * 2 * time.Second) // received: the check runs
		if st, _ := status(); st == store.StatusOffline {
			t.Fatalf("offline after %d ticks, before its offline_after of running time", i)
		}
	}
	ticks <- t0.Add(12 * time.Second)
	testkit.Eventually(t, "the device offline after its offline_after of running time", 10*time.Second, func() bool {
		st, reason := status()
		return st == store.StatusOffline && strings.HasPrefix(reason, "no reading for 1h0m1s")
	})
}
