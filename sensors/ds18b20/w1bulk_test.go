package ds18b20

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/floorhub/floorhub/internal/testkit"
)

// kernelBus is a fake w1 devices directory laid out as sysfs: each probe's
// directory under its bus master's, linked from the devices directory,
// and the master's therm_bulk_read. Its trigger and w1_slave reads play
// the kernel's part (w1_therm.c): a trigger gives every probe a new
// reading, the round's, and marks it converted; a probe's next read
// returns that without converting, a later one converts the probe alone;
// a read while a trigger converts comes back empty.
type kernelBus struct {
	dir, master string
	ids         []string
	clk         *fakeClock
	bus         *w1Bus

	mu       sync.Mutex
	triggers int
	// block, if set, is waited for by each trigger: a conversion under way.
	block chan struct{}
	// took is how long a trigger takes: 750 ms if 0.
	took time.Duration
	// glitch makes the triggers fail as the kernel's do when no bus reset
	// gets a presence pulse: at once, marking every probe converted.
	glitch     bool
	converting bool            // a trigger under way
	flagged    map[string]bool // probes marked converted by a trigger
	lone       int             // reads that converted their probe alone
	// onRead, if set, runs before each w1_slave read, with the probe's id.
	onRead func(id string)
}

func newKernelBus(t *testing.T, n int) *kernelBus {
	t.Helper()
	k := &kernelBus{dir: t.TempDir(), clk: newFakeClock(), flagged: map[string]bool{}}
	k.master = filepath.Join(k.dir, "w1_bus_master1")
	if err := os.MkdirAll(k.master, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(k.master, "therm_bulk_read"), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		id := fmt.Sprintf("28-0000075e6b%02x", i)
		k.ids = append(k.ids, id)
		w1Probe(t, k.master, id, scratchpad(0, cfg12), "YES")
		if err := os.Symlink(filepath.Join("w1_bus_master1", id), filepath.Join(k.dir, id)); err != nil {
			t.Fatal(err)
		}
	}
	k.bus, _ = shareW1(filepath.Join(k.dir, k.ids[0]))
	if k.bus == nil {
		t.Fatal("no bulk conversions found in the fake tree")
	}
	k.bus.clk = k.clk
	write := k.bus.trigger
	k.bus.trigger = func() error {
		if err := write(); err != nil {
			return err
		}
		if b, err := os.ReadFile(filepath.Join(k.master, "therm_bulk_read")); err != nil || string(b) != "trigger\n" {
			t.Errorf("therm_bulk_read got %q, %v", b, err)
		}
		k.mu.Lock()
		k.triggers++
		round, block, took, glitch := k.triggers, k.block, k.took, k.glitch
		k.converting = true
		k.mu.Unlock()
		if block != nil {
			<-block
		}
		switch {
		case glitch:
			k.clk.advance(2 * time.Millisecond) // five failed bus resets
		case took != 0:
			k.clk.advance(took)
		default:
			k.clk.advance(750 * time.Millisecond)
		}
		k.mu.Lock()
		defer k.mu.Unlock()
		k.converting = false
		for i, id := range k.ids {
			k.flagged[id] = true
			if _, err := os.Stat(filepath.Join(k.master, id)); err == nil && !glitch {
				w1Probe(t, k.master, id, scratchpad(k.raw(round, i), cfg12), "YES")
			}
		}
		return nil
	}
	k.bus.readSlave = func(file string) ([]byte, error) {
		id := filepath.Base(filepath.Dir(file))
		if k.onRead != nil {
			k.onRead(id)
		}
		k.mu.Lock()
		defer k.mu.Unlock()
		switch {
		case k.converting:
			return nil, nil
		case k.flagged[id]:
			k.flagged[id] = false
		default:
			k.lone++
			if _, err := os.Stat(filepath.Join(k.master, id)); err == nil {
				w1Probe(t, k.master, id, scratchpad(k.alone(id), cfg12), "YES")
			}
		}
		return os.ReadFile(file)
	}
	return k
}

// alone is the reading of probe id when it converts alone.
func (k *kernelBus) alone(id string) uint16 { return 0x7000 | uint16(slices.Index(k.ids, id)) }

// celsius is what a probe reads for raw.
func celsius(raw uint16) float64 { return float64(int16(raw)) / 16 }

// raw is probe i's reading in round r.
func (k *kernelBus) raw(round, i int) uint16 { return uint16(round<<8 | i) }

func (k *kernelBus) open(t *testing.T) []*Dev {
	t.Helper()
	var ds []*Dev
	for _, id := range k.ids {
		d, err := NewW1(k.dir, rom(t, id), nil)
		if err != nil {
			t.Fatal(err)
		}
		if d.w1 != k.bus {
			t.Fatalf("%s: not on the fake bus master", id)
		}
		if n := d.Notice(); n != "" {
			t.Errorf("%s: notice %q with bulk conversions", id, n)
		}
		d.clk = k.clk
		ds = append(ds, d)
	}
	return ds
}

func (k *kernelBus) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.triggers
}

func TestKernelBulk(t *testing.T) {
	const n = 6
	k := newKernelBus(t, n)
	ds := k.open(t)
	for round := 1; round <= 2; round++ {
		cs, errs := senseAll(context.Background(), ds)
		for i := range n {
			if want := float64(int16(k.raw(round, i))) / 16; errs[i] != nil || cs[i] != want {
				t.Errorf("round %d, probe %d: %v, %v; want %v", round, i, cs[i], errs[i], want)
			}
		}
		if got := k.count(); got != round {
			t.Fatalf("round %d: %d triggers, want %d", round, got, round)
		}
		// A straggler within the freshness window does not trigger; the
		// kernel converts it alone, as it read this round's reading.
		k.clk.advance(500 * time.Millisecond)
		if c, err := ds[0].Sense(context.Background()); err != nil || c != celsius(k.alone(k.ids[0])) {
			t.Errorf("straggler: %v, %v", c, err)
		}
		if got := k.count(); got != round {
			t.Fatalf("round %d: the straggler triggered", round)
		}
		k.clk.advance(5 * time.Second)
	}
}

func TestKernelBulkMissingProbe(t *testing.T) {
	k := newKernelBus(t, 3)
	ds := k.open(t)
	if err := os.RemoveAll(filepath.Join(k.master, k.ids[1])); err != nil {
		t.Fatal(err)
	}
	cs, errs := senseAll(context.Background(), ds)
	for i := range 3 {
		switch {
		case i == 1 && !errors.Is(errs[i], ErrNotFound):
			t.Errorf("missing probe: %v, want ErrNotFound", errs[i])
		case i != 1 && (errs[i] != nil || cs[i] != float64(int16(k.raw(1, i)))/16):
			t.Errorf("probe %d: %v, %v", i, cs[i], errs[i])
		}
	}
	if k.count() != 1 {
		t.Errorf("%d triggers, want 1", k.count())
	}
}

// A probe waiting for another's trigger stops waiting when its context
// ends; the trigger's own reader still reads.
func TestKernelBulkCancel(t *testing.T) {
	k := newKernelBus(t, 2)
	ds := k.open(t)
	k.block = make(chan struct{})
	done := make(chan error, 1)
	go func() { _, err := ds[0].Sense(context.Background()); done <- err }()
	testkit.Eventually(t, "a trigger under way", 10*time.Second, func() bool { return k.count() == 1 })
	// Its deadline passes while it waits for the trigger's end.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := ds[1].Sense(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want context.DeadlineExceeded", err)
	}
	close(k.block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A kernel that refuses the trigger (no write access): each probe converts
// on its own, as without therm_bulk_read.
func TestKernelBulkRefused(t *testing.T) {
	k := newKernelBus(t, 2)
	ds := k.open(t)
	k.bus.trigger = func() error { return &fs.PathError{Op: "open", Path: "therm_bulk_read", Err: fs.ErrPermission} }
	cs, errs := senseAll(context.Background(), ds)
	for i := range 2 {
		if errs[i] != nil || cs[i] != celsius(k.alone(k.ids[i])) {
			t.Errorf("probe %d: %v, %v", i, cs[i], errs[i])
		}
	}
	k.bus.mu.Lock()
	defer k.bus.mu.Unlock()
	if !k.bus.offLocked() {
		t.Error("bulk conversions still on")
	}
}

// A trigger that returns sooner than any conversion did not convert, yet
// the kernel marked every probe converted: no probe serves the previous
// reading as new. Each converts alone, and the next trigger is shared
// again.
func TestKernelBulkGlitch(t *testing.T) {
	const n = 3
	k := newKernelBus(t, n)
	ds := k.open(t)
	if _, errs := senseAll(context.Background(), ds); errors.Join(errs...) != nil {
		t.Fatal(errs)
	}
	k.clk.advance(5 * time.Second)
	k.glitch = true
	cs, errs := senseAll(context.Background(), ds)
	for i := range n {
		if want := celsius(k.alone(k.ids[i])); errs[i] != nil || cs[i] != want {
			t.Errorf("after a failed trigger, probe %d: %v, %v; want %v, not round 1's %v", i, cs[i], errs[i], want, celsius(k.raw(1, i)))
		}
	}
	k.clk.advance(5 * time.Second)
	k.glitch = false
	before := k.count()
	cs, errs = senseAll(context.Background(), ds)
	for i := range n {
		if want := celsius(k.raw(before+1, i)); errs[i] != nil || cs[i] != want {
			t.Errorf("the bus back, probe %d: %v, %v; want %v", i, cs[i], errs[i], want)
		}
	}
	if got := k.count(); got != before+1 {
		t.Errorf("%d triggers once the bus is back, want 1", got-before)
	}
}

// A probe whose conversion is longer than the trigger's wait (the kernel
// knows another resolution, or a signal cut its wait) reads no earlier
// than its own conversion time after the trigger.
func TestKernelBulkShortTrigger(t *testing.T) {
	k := newKernelBus(t, 3)
	ds := k.open(t)
	k.took = 200 * time.Millisecond
	t0 := k.clk.now()
	var mu sync.Mutex
	var early []time.Duration
	k.onRead = func(string) {
		if at := k.clk.now().Sub(t0); at < 750*time.Millisecond {
			mu.Lock()
			early = append(early, at)
			mu.Unlock()
		}
	}
	cs, errs := senseAll(context.Background(), ds)
	for i := range ds {
		if errs[i] != nil || cs[i] != celsius(k.raw(1, i)) {
			t.Errorf("probe %d: %v, %v", i, cs[i], errs[i])
		}
	}
	if len(early) != 0 {
		t.Errorf("reads %v after the trigger, before 750 ms", early)
	}
}

// After a refusal probes convert on their own for a minute, then try the
// bulk conversion again: the kernel removes therm_bulk_read while its
// probes are gone and adds it back when they return.
func TestKernelBulkRefusedForAWhile(t *testing.T) {
	k := newKernelBus(t, 2)
	ds := k.open(t)
	write := k.bus.trigger
	refusals := 0
	k.bus.trigger = func() error {
		refusals++
		return &fs.PathError{Op: "open", Path: "therm_bulk_read", Err: fs.ErrPermission}
	}
	if _, errs := senseAll(context.Background(), ds); errors.Join(errs...) != nil {
		t.Fatal(errs)
	}
	k.clk.advance(30 * time.Second)
	if _, errs := senseAll(context.Background(), ds); errors.Join(errs...) != nil {
		t.Fatal(errs)
	}
	if refusals != 1 {
		t.Fatalf("%d triggers refused within the minute, want 1", refusals)
	}
	k.bus.trigger = write
	k.clk.advance(31 * time.Second)
	cs, errs := senseAll(context.Background(), ds)
	for i := range ds {
		if errs[i] != nil || cs[i] != celsius(k.raw(1, i)) {
			t.Errorf("probe %d: %v, %v; want the bulk conversion's", i, cs[i], errs[i])
		}
	}
	if k.count() != 1 {
		t.Errorf("%d bulk conversions after the minute, want 1", k.count())
	}
}

// A probe opened before it could write therm_bulk_read (udev had not yet
// given it to the agent) converts on its own, says why, and joins the
// bulk conversions once the bus tries again after offFor.
func TestKernelBulkNotWritableYet(t *testing.T) {
	k := newKernelBus(t, 2)
	orig := writable
	t.Cleanup(func() { writable = orig })
	writable = func(string) error { return syscall.EACCES }
	var ds []*Dev
	for _, id := range k.ids {
		d, err := NewW1(k.dir, rom(t, id), nil)
		if err != nil {
			t.Fatal(err)
		}
		d.clk = k.clk
		ds = append(ds, d)
	}
	writable = orig
	for _, d := range ds {
		if n := d.Notice(); !strings.Contains(n, "therm_bulk_read is not writable by this user") {
			t.Errorf("notice %q", n)
		}
	}
	k.clk.advance(offFor - time.Second)
	if _, errs := senseAll(context.Background(), ds); errors.Join(errs...) != nil || k.count() != 0 {
		t.Fatalf("before offFor: %v, %d bulk conversions", errs, k.count())
	}
	k.clk.advance(time.Second)
	cs, errs := senseAll(context.Background(), ds)
	for i := range ds {
		if errs[i] != nil || cs[i] != celsius(k.raw(1, i)) {
			t.Errorf("probe %d: %v, %v; want the bulk conversion's", i, cs[i], errs[i])
		}
		if n := ds[i].Notice(); n != "" {
			t.Errorf("probe %d: notice %q on the bulk conversions", i, n)
		}
	}
	if k.count() != 1 {
		t.Fatalf("%d bulk conversions after offFor, want 1", k.count())
	}
}

// waitingCtx tells when a probe waits on it: the bulk read calls Done
// only to wait for others.
type waitingCtx struct {
	context.Context
	once    sync.Once
	waiting chan struct{}
}

func (c *waitingCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.waiting) })
	return c.Context.Done()
}

// The plain read after a failed trigger counts as a read: a probe woken by
// the failure does not trigger during it (the read would come back
// empty).
func TestKernelBulkFallbackIsARead(t *testing.T) {
	k := newKernelBus(t, 2)
	ds := k.open(t)
	write := k.bus.trigger
	var failed bool
	k.bus.trigger = func() error {
		if !failed {
			failed = true
			return &fs.PathError{Op: "write", Path: "therm_bulk_read", Err: syscall.EIO}
		}
		return write()
	}
	ctx := &waitingCtx{Context: context.Background(), waiting: make(chan struct{})}
	other := make(chan error, 1)
	k.onRead = func(id string) {
		if id != k.ids[0] {
			return
		}
		k.onRead = nil
		go func() { _, err := ds[1].Sense(ctx); other <- err }()
		testkit.Eventually(t, "the other probe waits or triggers", 10*time.Second, func() bool {
			select {
			case <-ctx.waiting:
				return true
			default:
				return k.count() > 0
			}
		})
		if k.count() != 0 {
			t.Error("a trigger during the fallback read")
		}
	}
	if c, err := ds[0].Sense(context.Background()); err != nil || c != celsius(k.alone(k.ids[0])) {
		t.Errorf("fallback read: %v, %v", c, err)
	}
	if err := <-other; err != nil {
		t.Errorf("the other probe: %v", err)
	}
}
