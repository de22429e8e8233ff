package ds18b20

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// w1Bus is a kernel w1 bus master whose probes convert together through
// its therm_bulk_read attribute (w1_therm since Linux 5.8, commit
// 57c76221d5af; see the kernel's Documentation/w1/slaves/w1_therm.rst and
// Documentation/ABI/testing/sysfs-driver-w1_therm). Writing "trigger"
// sends SKIP ROM + Convert T to every probe of the bus and returns after
// the longest conversion time among them; until then a probe's w1_slave
// reads empty. Each probe's next w1_slave read then returns its
// scratchpad without converting again, once; a later read converts.
type w1Bus struct {
	clk clock
	// trigger starts a bulk conversion and returns at its end; tests
	// replace it to play the kernel's part.
	trigger func() error

	mu      sync.Mutex
	last    *conversion
	readers int           // w1_slave reads in progress
	changed chan struct{} // closed and replaced when last or readers change
	off     bool          // the trigger was refused: probes convert on their own
}

// w1Buses are the bus masters with bulk conversions, by attribute path.
var w1Buses registry[string, *w1Bus]

// shareW1 returns the w1Bus of the probe directory dir, or nil if its bus
// master cannot convert in bulk: an older kernel, or no write access (the
// attribute belongs to root; a service may see /sys read-only).
func shareW1(dir string) *w1Bus {
	// /sys/bus/w1/devices/28-… links to the probe's directory under its
	// master's, /sys/devices/w1_bus_masterN/28-….
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil
	}
	attr := filepath.Join(filepath.Dir(real), "therm_bulk_read")
	if unix.Access(attr, unix.W_OK) != nil {
		return nil
	}
	return w1Buses.get(attr, func() *w1Bus {
		b := &w1Bus{clk: realClock{}, changed: make(chan struct{})}
		b.trigger = func() error {
			// The kernel takes exactly "trigger\n" (its size is checked)
			// and ignores anything else without an error.
			return os.WriteFile(attr, []byte("trigger\n"), 0)
		}
		return b
	})
}

// read reads a probe's w1_slave through a bulk conversion (see decide):
// it joins the trigger under way, uses the one that just ended, or
// triggers one. Reads and triggers exclude each other, as a read during a
// trigger comes back empty. It falls back to a plain read, which converts
// the one probe, when the kernel refuses the trigger. need is the probe's
// conversion time. Waits end with ctx, the kernel's conversion does not.
func (b *w1Bus) read(ctx context.Context, file string, need time.Duration) ([]byte, error) {
	b.mu.Lock()
	for {
		if b.off {
			b.mu.Unlock()
			return os.ReadFile(file)
		}
		// Decided anew after each wait: a trigger's end is only known
		// when it returns.
		switch decide(b.last, b.clk.now(), need) {
		case useEnded:
			b.readers++
			b.mu.Unlock()
			data, err := os.ReadFile(file)
			b.mu.Lock()
			b.readers--
			b.changedLocked()
			b.mu.Unlock()
			return data, err
		case startNew:
			if b.readers == 0 {
				if err := b.convertLocked(); err != nil {
					b.mu.Unlock()
					// The probe still gets a reading, converting alone.
					return os.ReadFile(file)
				}
				continue
			}
		}
		// A trigger under way, or reads to let finish first.
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		b.mu.Lock()
	}
}

// convertLocked triggers a bulk conversion and waits for its end. Probes
// asking meanwhile join it. Caller holds b.mu, which is released during
// the trigger.
func (b *w1Bus) convertLocked() error {
	// The kernel waits for the slowest probe on the bus: the conversion
	// covers every resolution.
	c := &conversion{start: b.clk.now(), wait: convTime(12)}
	b.last = c
	b.mu.Unlock()
	err := b.trigger()
	b.mu.Lock()
	if err != nil {
		c.failed = true
		b.off = errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)
	} else {
		c.end = b.clk.now()
	}
	b.changedLocked()
	return err
}

func (b *w1Bus) changedLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}
