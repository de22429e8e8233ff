package ds18b20

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/floorhub/floorhub/internal/testkit"
)

// kernelBus is a fake w1 devices directory laid out as sysfs: each probe's
// directory under its bus master's, linked from the devices directory,
// and the master's therm_bulk_read. Its trigger plays the kernel's part:
// it checks what was written and gives every probe a new reading, the
// round's.
type kernelBus struct {
	dir, master string
	ids         []string
	clk         *fakeClock
	bus         *w1Bus

	mu       sync.Mutex
	triggers int
	// block, if set, is waited for by each trigger: a conversion under way.
	block chan struct{}
}

func newKernelBus(t *testing.T, n int) *kernelBus {
	t.Helper()
	k := &kernelBus{dir: t.TempDir(), clk: newFakeClock()}
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
	k.bus = shareW1(filepath.Join(k.dir, k.ids[0]))
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
		round, block := k.triggers, k.block
		k.mu.Unlock()
		if block != nil {
			<-block
		}
		k.clk.advance(750 * time.Millisecond) // the kernel's wait
		for i, id := range k.ids {
			if _, err := os.Stat(filepath.Join(k.master, id)); err == nil {
				w1Probe(t, k.master, id, scratchpad(k.raw(round, i), cfg12), "YES")
			}
		}
		return nil
	}
	return k
}

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
		// A straggler within the freshness window reads what it has.
		k.clk.advance(500 * time.Millisecond)
		if c, err := ds[0].Sense(context.Background()); err != nil || c != float64(int16(k.raw(round, 0)))/16 {
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
		if errs[i] != nil || cs[i] != 0 {
			t.Errorf("probe %d: %v, %v", i, cs[i], errs[i])
		}
	}
	k.bus.mu.Lock()
	defer k.bus.mu.Unlock()
	if !k.bus.off {
		t.Error("bulk conversions still on")
	}
}
