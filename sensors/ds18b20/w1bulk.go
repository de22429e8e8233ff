package ds18b20

import (
	"context"
	"errors"
	"fmt"
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
	attr string // the therm_bulk_read file
	clk  clock
	// trigger starts a bulk conversion and returns at its end; tests
	// replace it to play the kernel's part.
	trigger func() error
	// readSlave reads a probe's w1_slave file; tests replace it to play
	// the kernel's part.
	readSlave func(file string) ([]byte, error)

	mu      sync.Mutex
	last    *conversion
	readers int           // w1_slave reads in progress
	changed chan struct{} // closed and replaced when last or readers change
	// offSince is when the kernel last refused the trigger, zero if it
	// did not: probes convert on their own for offFor after it. offWhy
	// says why, for Dev.Notice.
	offSince time.Time
	offWhy   string
}

// offFor is how long probes convert on their own after the kernel refused
// the trigger. The refusal need not last: the kernel removes
// therm_bulk_read while no probe is on its list (writing it then fails to
// create it) and adds it back when they return.
const offFor = time.Minute

// errNoConversion is a trigger that returned without converting.
var errNoConversion = errors.New("ds18b20: the kernel's bulk conversion returned too soon to have converted")

// w1Buses are the bus masters with bulk conversions, by attribute path.
var w1Buses registry[string, *w1Bus]

// writable checks that the agent may write path; tests replace it, as
// they run as root.
var writable = func(path string) error { return unix.Access(path, unix.W_OK) }

// shareW1 returns the w1Bus of the probe directory dir, or why its bus
// master has none (see aloneReason). A therm_bulk_read the agent may not
// write yet (udev may not have run the package's rule) is taken as a
// refused trigger: the probes convert on their own and try again after
// offFor.
func shareW1(dir string) (*w1Bus, string) {
	// /sys/bus/w1/devices/28-… links to the probe's directory under its
	// master's, /sys/devices/w1_bus_masterN/28-….
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, err.Error()
	}
	attr := filepath.Join(filepath.Dir(real), "therm_bulk_read")
	err = writable(attr)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, aloneReason(attr, err)
	}
	b := w1Buses.get(attr, func() *w1Bus {
		b := &w1Bus{attr: attr, clk: realClock{}, readSlave: os.ReadFile, changed: make(chan struct{})}
		b.trigger = func() error {
			// The kernel takes exactly "trigger\n" (its size is checked)
			// and ignores anything else without an error.
			return os.WriteFile(attr, []byte("trigger\n"), 0)
		}
		return b
	})
	if err != nil {
		b.mu.Lock()
		b.refusedLocked(err)
		b.mu.Unlock()
	}
	return b, ""
}

// aloneReason says why a probe cannot convert with the others of its bus,
// from the error of checking that the bus master's therm_bulk_read
// (attr) is writable.
func aloneReason(attr string, err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// w1_therm counts bulk-capable probes across all masters and
		// creates the file on the master of the first one only.
		return fmt.Sprintf("the kernel has no %s: w1_therm before Linux 5.8, or a bus other than the one w1_therm gave it to (it gives it to one bus only)", attr)
	case errors.Is(err, syscall.EROFS):
		return fmt.Sprintf("%s is read-only here: the packaged service makes /sys read-only except for the bus masters w1_bus_master1 to w1_bus_master3 that were there when it started; restart it after a bus appears", attr)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("%s is not writable by this user: the floorhub package's udev rule gives it to group floorhub (apply it with: udevadm trigger --subsystem-match=w1)", attr)
	}
	return fmt.Sprintf("%s: %v", attr, err)
}

// read reads a probe's w1_slave through a bulk conversion (see decide):
// it joins the trigger under way, uses the one that just ended, or
// triggers one. Reads and triggers exclude each other, as a read during a
// trigger comes back empty. It falls back to a plain read, which converts
// the one probe, when the kernel refuses the trigger or the trigger does
// not convert. need is the probe's conversion time. Waits end with ctx,
// the kernel's conversion does not.
func (b *w1Bus) read(ctx context.Context, file string, need time.Duration) ([]byte, error) {
	b.mu.Lock()
	for {
		if b.offLocked() {
			return b.readUnlocking(file, false)
		}
		// Decided anew after each wait: a trigger's end is only known
		// when it returns.
		now := b.clk.now()
		switch decide(b.last, now, need) {
		case useEnded:
			// The kernel waits for the conversion time it knows of,
			// which may be shorter than this probe's (it ends a trigger
			// interrupted by a signal early too): the probe converted
			// from the start, its result is there need after it.
			if ready := b.last.start.Add(need); now.Before(ready) {
				b.mu.Unlock()
				if err := b.clk.waitUntil(ctx, ready); err != nil {
					return nil, err
				}
				b.mu.Lock()
				continue
			}
			return b.readUnlocking(file, false)
		case startNew:
			if b.readers == 0 {
				switch err := b.convertLocked(); {
				case errors.Is(err, errNoConversion):
					// The kernel marked every probe as converted all
					// the same: its next read returns the scratchpad
					// as it was, without converting. The probe reads
					// past that, converting alone. Probes that joined
					// see the conversion failed and trigger again,
					// which marks them afresh (or fails as this one).
					return b.readUnlocking(file, true)
				case err != nil:
					// The probe still gets a reading, converting alone.
					return b.readUnlocking(file, false)
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

// readUnlocking reads file, first once more to discard if skip. Caller
// holds b.mu, which is released during the reads and unlocked on return.
// It counts as a reader, so no probe triggers meanwhile: a read during a
// trigger comes back empty.
func (b *w1Bus) readUnlocking(file string, skip bool) ([]byte, error) {
	b.readers++
	b.mu.Unlock()
	if skip {
		// Its error, if any, the next read tells again.
		_, _ = b.readSlave(file)
	}
	data, err := b.readSlave(file)
	b.mu.Lock()
	b.readers--
	b.changedLocked()
	b.mu.Unlock()
	return data, err
}

// offLocked tells whether probes convert on their own: the kernel
// refused the trigger less than offFor ago. Caller holds b.mu.
func (b *w1Bus) offLocked() bool {
	return !b.offSince.IsZero() && b.clk.now().Sub(b.offSince) < offFor
}

// refusedLocked turns bulk conversions off for offFor, as the trigger
// cannot be written (err). Caller holds b.mu.
func (b *w1Bus) refusedLocked(err error) {
	b.offSince, b.offWhy = b.clk.now(), aloneReason(b.attr, err)
}

// offReason says why the bus's probes convert on their own now, "" if
// they do not.
func (b *w1Bus) offReason() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.offLocked() {
		return ""
	}
	return b.offWhy
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
	now := b.clk.now()
	switch {
	case err != nil:
		c.failed = true
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
			b.refusedLocked(err)
		}
	case now.Sub(c.start) < convTime(9):
		// Writing the trigger succeeds even when the kernel's
		// trigger_bulk_read failed (no presence pulse on any of its bus
		// resets: -ENODEV; its wait interrupted: -EINTR), and it still
		// marks every probe as converted. Returning sooner than the
		// shortest conversion tells it: nobody may use this one.
		c.failed = true
		err = errNoConversion
	default:
		c.end = now
		b.offSince, b.offWhy = time.Time{}, ""
	}
	b.changedLocked()
	return err
}

func (b *w1Bus) changedLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}
