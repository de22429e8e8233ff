package ds18b20

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"time"

	"periph.io/x/conn/v3/onewire"

	"github.com/floorhub/floorhub/sensors"
)

// Commands (datasheet "ROM Commands").
const cmdSkipROM = 0xCC

// sharedBus is what the probes of one 1-Wire bus share: who holds the bus,
// and the latest conversion.
type sharedBus struct {
	bus  onewire.Bus
	hold chan struct{} // a one-slot semaphore, for a bus that is no BusLocker
	clk  clock

	mu   sync.Mutex
	last *conversion
	// longest is the longest conversion time among the probes opened on
	// the bus. SKIP ROM + Convert T reaches every probe, also one that did
	// not ask (on a slower schedule, at a higher resolution): a
	// parasite-powered one browns out if the strong pull-up ends before
	// its conversion does, so every conversion lasts at least this long.
	longest time.Duration
}

// sharedBuses are the buses probes were opened on, by their pointer: the
// probes New opens on one bus share its conversions.
var sharedBuses registry[onewire.Bus, *sharedBus]

// shareBus returns the sharedBus of bus. A bus that is not a pointer has no
// identity to share by: its probes convert on their own.
func shareBus(bus onewire.Bus) *sharedBus {
	open := func() *sharedBus {
		return &sharedBus{bus: bus, hold: make(chan struct{}, 1), clk: realClock{}}
	}
	if reflect.ValueOf(bus).Kind() != reflect.Pointer {
		return open()
	}
	return sharedBuses.get(bus, open)
}

// registry keeps one value per key, shared by the probes that ask for it.
// Entries stay for the process's life, like the catalog's bridges: a
// process has a handful of buses.
type registry[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]V
}

// get returns k's value, made by open the first time.
func (r *registry[K, V]) get(k K, open func() V) V {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.m[k]; ok {
		return v
	}
	if r.m == nil {
		r.m = map[K]V{}
	}
	v := open()
	r.m[k] = v
	return v
}

// lock holds the bus until unlock, waiting at most until ctx ends.
func (s *sharedBus) lock(ctx context.Context) error {
	if l, ok := s.bus.(BusLocker); ok {
		return l.LockBus(ctx)
	}
	select {
	case s.hold <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ds18b20: waiting for the 1-Wire bus: %w", ctx.Err())
	}
}

func (s *sharedBus) unlock() {
	if l, ok := s.bus.(BusLocker); ok {
		l.UnlockBus()
		return
	}
	<-s.hold
}

// convert makes sure a conversion that a probe asking now, whose
// conversion takes need, may read is under way or has ended: it joins one
// or sends Convert T to every probe (SKIP ROM) with the strong pull-up,
// holding the bus only for that. It does not wait for the end: acquire
// does.
func (s *sharedBus) convert(ctx context.Context, need time.Duration) error {
	if s.decide(need) != startNew {
		return nil
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	// Another probe may have started one while this one waited for the
	// bus; nobody can start one while it is held.
	if s.decide(need) != startNew {
		return nil
	}
	if err := s.bus.Tx([]byte{cmdSkipROM, cmdConvert}, nil, onewire.StrongPullup); err != nil {
		return fmt.Errorf("ds18b20: convert (every probe on %s): %w", s.bus, err)
	}
	// Timed from the end of the Tx, when the last bit of Convert T is out.
	start := s.clk.now()
	s.mu.Lock()
	wait := max(need, s.longest)
	s.last = &conversion{start: start, end: start.Add(wait), wait: wait}
	s.mu.Unlock()
	return nil
}

// cover makes the bus's later conversions last at least need, the
// conversion time of a probe opened on it.
func (s *sharedBus) cover(need time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.longest = max(s.longest, need)
}

// decide applies the rule to the latest conversion, joining it if it is
// under way.
func (s *sharedBus) decide(need time.Duration) step {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The time is taken under s.mu, as acquire takes it: once a probe saw
	// the conversion ended and went on to read (ending the strong
	// pull-up), no probe asking later sees it under way and moves its end;
	// a time taken before waiting for s.mu could be that stale. A probe
	// with a longer conversion time then starts a new conversion (decide).
	st := decide(s.last, s.clk.now(), need)
	if st == joinRunning {
		s.last.join(need)
	}
	return st
}

// acquire holds the bus once no conversion is under way, for a scratchpad
// read or write: using the bus earlier would end the strong pull-up that
// parasite-powered probes convert on, and read an unfinished result. The
// bus is free during the wait. The caller calls unlock.
func (s *sharedBus) acquire(ctx context.Context) error {
	for {
		if err := s.lock(ctx); err != nil {
			return err
		}
		// The time is taken under s.mu, as decide takes it (see there).
		s.mu.Lock()
		var end time.Time
		if s.last != nil {
			end = s.last.end
		}
		ended := !s.clk.now().Before(end)
		s.mu.Unlock()
		if ended {
			return nil
		}
		s.unlock()
		// A probe joining meanwhile may move the end: look again.
		if err := s.clk.waitUntil(ctx, end); err != nil {
			return err
		}
	}
}

// clock is the time the conversions are timed with; tests replace it to
// skip real conversion times.
type clock interface {
	now() time.Time
	// waitUntil returns at t, or with ctx's error when ctx ends first.
	waitUntil(ctx context.Context, t time.Time) error
}

type realClock struct{}

func (realClock) now() time.Time { return time.Now() }

func (realClock) waitUntil(ctx context.Context, t time.Time) error {
	return sensors.Wait(ctx, time.Until(t))
}
