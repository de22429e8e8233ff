package ds18b20

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/onewire"
	"periph.io/x/conn/v3/onewire/onewiretest"
)

// probesBus plays what is addressed to every probe (SKIP ROM) on one
// Playback and what MATCH ROM addresses to a probe on that probe's own:
// probes reading concurrently take the bus in the scheduler's order, and
// each transcript stays in the datasheet's. It is a BusLocker, as the
// DS2482 is, and it notes whether it was held while a conversion ran.
type probesBus struct {
	all    *onewiretest.Playback
	probes map[onewire.Address]*onewiretest.Playback
	clk    *fakeClock
	// wire is the time a Tx takes on the line, 0 for none.
	wire func(w, r []byte) time.Duration

	held chan struct{}

	mu        sync.Mutex
	converts  []time.Time // when each Convert T went out
	reads     []time.Time // when each scratchpad read went out
	heldWaits int         // waits for a conversion with the bus held
}

func newProbesBus() *probesBus {
	b := &probesBus{
		all:    &onewiretest.Playback{},
		probes: map[onewire.Address]*onewiretest.Playback{},
		held:   make(chan struct{}, 1),
	}
	b.clk = withClock(b)
	// Whoever waits for a conversion leaves the bus free: someone else
	// gets it (other probes hold it only for a moment).
	b.clk.onWait = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if b.LockBus(ctx) != nil {
			b.mu.Lock()
			b.heldWaits++
			b.mu.Unlock()
			return
		}
		b.UnlockBus()
	}
	return b
}

// probe adds a probe: its answer to New's scratchpad read, then ops.
func (b *probesBus) probe(a onewire.Address, cfg byte, ops ...onewiretest.IO) {
	init := onewiretest.IO{W: matchROM(a, 0xBE), R: scratchpad(0, cfg)}
	b.probes[a] = &onewiretest.Playback{Ops: append([]onewiretest.IO{init}, ops...)}
}

// opened forgets New's reads: the probes are opened, reading starts.
func (b *probesBus) opened() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reads = nil
	return b.clk.now()
}

func (b *probesBus) String() string { return "probes" }

func (b *probesBus) Tx(w, r []byte, pull onewire.Pullup) error {
	p := b.all
	if w[0] == 0x55 {
		var a onewire.Address
		for i := 0; i < 8; i++ {
			a |= onewire.Address(w[1+i]) << (8 * i)
		}
		if p = b.probes[a]; p == nil {
			// Nobody drives the line: the pull-up reads as ones.
			for i := range r {
				r[i] = 0xFF
			}
			return nil
		}
	}
	if err := p.Tx(w, r, pull); err != nil {
		return err
	}
	b.mu.Lock()
	switch {
	case w[0] == 0xCC:
		b.converts = append(b.converts, b.clk.now())
	case len(r) == scratchpadLen:
		b.reads = append(b.reads, b.clk.now())
	}
	b.mu.Unlock()
	if b.wire != nil {
		b.clk.advance(b.wire(w, r))
	}
	return nil
}

func (b *probesBus) Search(bool) ([]onewire.Address, error) { return nil, errors.New("no search") }

func (b *probesBus) LockBus(ctx context.Context) error {
	select {
	case b.held <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *probesBus) UnlockBus() { <-b.held }

func (b *probesBus) close(t *testing.T) {
	t.Helper()
	if err := b.all.Close(); err != nil {
		t.Error(err)
	}
	for a, p := range b.probes {
		if err := p.Close(); err != nil {
			t.Errorf("%s: %v", ROMString(a), err)
		}
	}
}

func probeROM(i int) onewire.Address {
	a, err := ParseROM(fmt.Sprintf("28-0000075e6b%02x", i))
	if err != nil {
		panic(err)
	}
	return a
}

// openAll opens probes on bus.
func openAll(t *testing.T, bus onewire.Bus, roms ...onewire.Address) []*Dev {
	t.Helper()
	var ds []*Dev
	for _, a := range roms {
		d, err := New(bus, a, nil)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	return ds
}

// probeROMs are n ROM ids.
func probeROMs(n int) []onewire.Address {
	var as []onewire.Address
	for i := range n {
		as = append(as, probeROM(i))
	}
	return as
}

// senseAll reads every probe at once, as devices at one schedule point do.
func senseAll(ctx context.Context, ds []*Dev) ([]float64, []error) {
	cs, errs := make([]float64, len(ds)), make([]error, len(ds))
	var wg sync.WaitGroup
	for i, d := range ds {
		wg.Go(func() { cs[i], errs[i] = d.Sense(ctx) })
	}
	wg.Wait()
	return cs, errs
}

func TestProbesConvertTogether(t *testing.T) {
	const n = 8
	b := newProbesBus()
	b.all.Ops = []onewiretest.IO{convertAll, convertAll}
	for i := range n {
		b.probe(probeROM(i), cfg12,
			onewiretest.IO{W: matchROM(probeROM(i), 0xBE), R: scratchpad(uint16(0x0190+i), cfg12)},
			onewiretest.IO{W: matchROM(probeROM(i), 0xBE), R: scratchpad(uint16(0x0290+i), cfg12)})
	}
	ds := openAll(t, b, probeROMs(n)...)
	t0 := b.opened()
	for round, base := range []uint16{0x0190, 0x0290} {
		cs, errs := senseAll(context.Background(), ds)
		for i := range n {
			if want := float64(base+uint16(i)) / 16; errs[i] != nil || cs[i] != want {
				t.Errorf("round %d, probe %d: %v, %v; want %v", round, i, cs[i], errs[i], want)
			}
		}
		// The next schedule point, beyond the freshness window.
		b.clk.advance(5 * time.Second)
	}
	b.close(t)
	if len(b.converts) != 2 || len(b.reads) != 2*n {
		t.Fatalf("%d conversions, %d scratchpad reads; want 2 and %d", len(b.converts), len(b.reads), 2*n)
	}
	// Every read of a round after its conversion's end.
	for i, r := range b.reads {
		if c := b.converts[i/n]; r.Before(c.Add(750 * time.Millisecond)) {
			t.Errorf("read %d at %v, conversion at %v", i, r.Sub(t0), c.Sub(t0))
		}
	}
	if b.heldWaits != 0 {
		t.Errorf("the bus was held during %d waits", b.heldWaits)
	}
}

// Convert T reaches every probe on the bus, so every conversion lasts as
// long as the slowest probe opened on it needs, also when only faster ones
// asked: a parasite-powered probe keeps its strong pull-up to the end.
func TestConversionCoversEveryProbe(t *testing.T) {
	a9, a12 := probeROM(1), probeROM(2)
	b := newProbesBus()
	b.all.Ops = []onewiretest.IO{convertAll, convertAll}
	b.probe(a9, cfg9,
		onewiretest.IO{W: matchROM(a9, 0xBE), R: scratchpad(0x0190, cfg9)},
		onewiretest.IO{W: matchROM(a9, 0xBE), R: scratchpad(0x0190, cfg9)})
	b.probe(a12, cfg12, onewiretest.IO{W: matchROM(a12, 0xBE), R: scratchpad(0x0191, cfg12)})
	ds := openAll(t, b, a9, a12)
	b.opened()
	// The 9-bit probe alone (the 12-bit one is on a slower schedule).
	if v, err := ds[0].Sense(context.Background()); err != nil || v != 25 {
		t.Fatalf("9 bits alone: %v, %v", v, err)
	}
	b.clk.advance(5 * time.Second)
	// Both at one point: one conversion for both.
	if _, errs := senseAll(context.Background(), ds); errors.Join(errs...) != nil {
		t.Fatal(errs)
	}
	b.close(t)
	if len(b.converts) != 2 || len(b.reads) != 3 {
		t.Fatalf("%d conversions, %d reads; want 2 and 3", len(b.converts), len(b.reads))
	}
	for i, r := range b.reads {
		if c := b.converts[min(i, 1)]; r.Sub(c) < 750*time.Millisecond {
			t.Errorf("read %d %v after its conversion, before the 12-bit probe's 750 ms", i, r.Sub(c))
		}
	}
}

// A probe asking once a conversion has ended, when the others may be
// reading and the strong pull-up is over, does not stretch it to its
// longer conversion time: it starts a new one.
func TestNoJoinAfterTheEnd(t *testing.T) {
	const c9, c12 = 93750 * time.Microsecond, 750 * time.Millisecond
	clk := newFakeClock()
	t0 := clk.now()
	s := &sharedBus{clk: clk, last: &conversion{start: t0, end: t0.Add(c9), wait: c9}}
	clk.advance(c9)
	if st := s.decide(c12); st != startNew {
		t.Errorf("at the end: %v, want startNew", st)
	}
	if end := s.last.end.Sub(t0); end != c9 {
		t.Errorf("end moved to %v", end)
	}
}

// A probe that is gone fails alone; the others read from the same
// conversion.
func TestMissingProbeAmongOthers(t *testing.T) {
	ff := []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}
	b := newProbesBus()
	b.all.Ops = []onewiretest.IO{convertAll}
	for i := range 3 {
		sp := scratchpad(0x0191, cfg12)
		if i == 1 {
			sp = ff
		}
		b.probe(probeROM(i), cfg12, onewiretest.IO{W: matchROM(probeROM(i), 0xBE), R: sp})
	}
	ds := openAll(t, b, probeROMs(3)...)
	// One more, unplugged before the agent started: New fails, nothing
	// else does.
	if _, err := New(b, probeROM(9), nil); err == nil {
		t.Fatal("New of a probe not on the bus: no error")
	}
	cs, errs := senseAll(context.Background(), ds)
	for i := range 3 {
		switch {
		case i == 1 && !errors.Is(errs[i], ErrNotFound):
			t.Errorf("missing probe: %v, want ErrNotFound", errs[i])
		case i != 1 && (errs[i] != nil || cs[i] != 25.0625):
			t.Errorf("probe %d: %v, %v", i, cs[i], errs[i])
		}
	}
	b.close(t)
	if len(b.converts) != 1 {
		t.Errorf("%d conversions, want 1", len(b.converts))
	}
}

// A probe whose context ends during the wait returns at once; one that
// joined the same conversion still reads.
func TestCancelDuringConversion(t *testing.T) {
	a, c := probeROM(1), probeROM(2)
	b := newProbesBus()
	b.all.Ops = []onewiretest.IO{convertAll}
	b.probe(a, cfg12)
	b.probe(c, cfg12, onewiretest.IO{W: matchROM(c, 0xBE), R: scratchpad(0x0191, cfg12)})
	ds := openAll(t, b, a, c)
	da, dc := ds[0], ds[1]
	ctx, cancel := context.WithCancel(context.Background())
	b.clk.onWait = cancel // the deadline passes during the conversion
	if _, err := da.Sense(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	b.clk.onWait = nil
	if v, err := dc.Sense(context.Background()); err != nil || v != 25.0625 {
		t.Fatalf("the other probe: %v, %v", v, err)
	}
	b.close(t)
	if len(b.converts) != 1 {
		t.Errorf("%d conversions, want 1", len(b.converts))
	}
}

// oneWireTime is how long a Tx takes on a 1-Wire line at standard speed:
// reset and presence (960 µs), then 70 µs per bit (a 60-120 µs slot and
// the recovery). A DS2482 adds its I²C traffic.
func oneWireTime(w, r []byte) time.Duration {
	return 960*time.Microsecond + time.Duration(len(w)+len(r))*8*70*time.Microsecond
}

// The bus time of N probes at 12 bits read at one point: one conversion
// and N scratchpad reads (before, each probe converted in turn: N × 750 ms
// and more).
func TestBusTimeAtOnePoint(t *testing.T) {
	read := oneWireTime(matchROM(0, 0xBE), make([]byte, scratchpadLen))
	for _, n := range []int{1, 4, 8} {
		b := newProbesBus()
		b.wire = oneWireTime
		b.all.Ops = []onewiretest.IO{convertAll}
		for i := range n {
			b.probe(probeROM(i), cfg12, onewiretest.IO{W: matchROM(probeROM(i), 0xBE), R: scratchpad(0x0191, cfg12)})
		}
		ds := openAll(t, b, probeROMs(n)...)
		t0 := b.opened()
		if _, errs := senseAll(context.Background(), ds); errors.Join(errs...) != nil {
			t.Fatal(errs)
		}
		took := b.clk.now().Sub(t0)
		t.Logf("%d probes at 12 bits: %v (the last reading's delay), %d conversion(s)", n, took, len(b.converts))
		if want := oneWireTime([]byte{0xCC, 0x44}, nil) + 750*time.Millisecond + time.Duration(n)*read; took != want {
			t.Errorf("%d probes: %v, want %v", n, took, want)
		}
		b.close(t)
	}
}
