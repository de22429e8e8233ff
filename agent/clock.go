package agent

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/floorhub/floorhub/store"
)

// clock stamps records with wall time, monotonic time and the boot, and
// knows whether the wall clock can be trusted yet.
type clock struct {
	now        func() time.Time
	validAfter time.Time
	bootID     string
	start      time.Time // wall clock at process start; its monotonic reading anchors Mono
	startMono  int64     // monotonic ns since boot at process start
	synced     atomic.Bool
	// offset is wall - mono once synced, in ns: what re-stamps earlier records.
	offset atomic.Int64
}

func newClock(now func() time.Time, validAfter time.Time) *clock {
	c := &clock{now: now, validAfter: validAfter, bootID: bootID(), start: now(), startMono: monoSinceBoot()}
	c.check()
	return c
}

// mono returns nanoseconds since boot, from Go's monotonic clock so that
// it never jumps when the wall clock is set.
func (c *clock) mono() int64 {
	return c.startMono + int64(time.Since(c.start))
}

// check updates the synced flag; it reports true when the clock has just
// become synced.
func (c *clock) check() bool {
	if c.synced.Load() {
		return false
	}
	now := c.now()
	if now.Before(c.validAfter) {
		return false
	}
	c.offset.Store(now.UnixNano() - c.mono())
	c.synced.Store(true)
	return true
}

// state is the uplinks' view of the clock (uplink.Clock): synced, and then
// wall minus monotonic ns, with which a receiver dates records sent before
// the sync. (check stores the offset before the flag.)
func (c *clock) state() (synced bool, monoOffsetNS int64) {
	if !c.synced.Load() {
		return false, 0
	}
	return true, c.offset.Load()
}

// stamp fills a record's time fields.
func (c *clock) stamp(r store.Record) store.Record {
	r.TS = c.now().UTC()
	r.BootID = c.bootID
	r.Mono = c.mono()
	r.ClockSynced = c.synced.Load()
	return r
}

// bootID is the kernel's boot id, or a random one per process elsewhere.
func bootID() string {
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s
		}
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	return hex.EncodeToString(raw[:])
}

// newRunID returns a random id in the form of the kernel's boot id (a
// version 4 UUID), new at every start of the agent.
func newRunID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// monoSinceBoot reads the time since boot from /proc/uptime (good to 10 ms,
// read once at start; Go's monotonic clock counts from there).
func monoSinceBoot() int64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	d, err := time.ParseDuration(f[0] + "s")
	if err != nil {
		return 0
	}
	return int64(d)
}
