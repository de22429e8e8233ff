package ds18b20

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/onewire"
	"periph.io/x/conn/v3/onewire/onewiretest"

	"github.com/floorhub/floorhub/sensors/ds18b20/ds2482"
)

func rom(t *testing.T, s string) onewire.Address {
	t.Helper()
	a, err := ParseROM(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// scratchpad lays out the nine bytes (datasheet figure "DS18B20 Memory
// Map"): temperature LSB and MSB, TH, TL, configuration, FFh, reserved,
// 10h, CRC.
func scratchpad(raw uint16, cfg byte) []byte {
	sp := []byte{byte(raw), byte(raw >> 8), 0x4B, 0x46, cfg, 0xFF, 0x0C, 0x10, 0}
	sp[8] = onewire.CalcCRC(sp[:8])
	return sp
}

// Configuration bytes: 0 R1 R0 1 1 1 1 1.
const (
	cfg9  = 0x1F
	cfg12 = 0x7F
)

func matchROM(a onewire.Address, cmd ...byte) []byte {
	w := []byte{0x55}
	for i := 0; i < 8; i++ {
		w = append(w, byte(a>>(8*i)))
	}
	return append(w, cmd...)
}

// fakeClock times conversions without waiting: a wait moves the time to
// the wait's end, so probes waiting together move it once.
type fakeClock struct {
	mu    sync.Mutex
	t     time.Time
	waits []time.Duration
	// onWait, if set, runs at each wait, before the time moves.
	onWait func()
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) waitUntil(ctx context.Context, t time.Time) error {
	if c.onWait != nil {
		c.onWait()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.t) {
		c.waits = append(c.waits, t.Sub(c.t))
		c.t = t
	}
	return nil
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *fakeClock) waited() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// withClock makes the probes opened on bus time their conversions with a
// fake clock. Call it before New.
func withClock(bus onewire.Bus) *fakeClock {
	c := newFakeClock()
	shareBus(bus).clk = c
	return c
}

// Bytes on the wire, as the datasheet's transcripts write them.
var convertAll = onewiretest.IO{W: []byte{0xCC, 0x44}, Pull: onewire.StrongPullup}

func TestParseROM(t *testing.T) {
	a := rom(t, "28-0000075e6b1a")
	if byte(a) != 0x28 || uint64(a)>>8&(1<<48-1) != 0x0000075e6b1a {
		t.Fatalf("address %016x", uint64(a))
	}
	b := make([]byte, 8)
	for i := range b {
		b[i] = byte(a >> (8 * i))
	}
	if !onewire.CheckCRC(b) {
		t.Errorf("ROM CRC wrong: % x", b)
	}
	if s := ROMString(a); s != "28-0000075e6b1a" {
		t.Errorf("ROMString %q", s)
	}
	for _, bad := range []string{"", "28", "28-xyz", "10-0000075e6b1a", "28-0000075e6b1a00", "280000075e6b1a"} {
		if _, err := ParseROM(bad); err == nil {
			t.Errorf("ParseROM(%q): no error", bad)
		}
	}
}

// The datasheet's table of temperature/data relationships, at 12 bits.
var datasheetTable = []struct {
	raw uint16
	c   float64
}{
	{0x07D0, 125}, {0x0191, 25.0625}, {0x00A2, 10.125}, {0x0008, 0.5}, {0x0000, 0},
	{0xFFF8, -0.5}, {0xFF5E, -10.125}, {0xFE6F, -25.0625}, {0xFC90, -55},
}

func TestOneWireBus(t *testing.T) {
	a := rom(t, "28-0000075e6b1a")
	ops := []onewiretest.IO{{W: matchROM(a, 0xBE), R: scratchpad(0x0550, cfg12)}} // New: power-on value is fine here
	for _, e := range datasheetTable {
		ops = append(ops, convertAll, onewiretest.IO{W: matchROM(a, 0xBE), R: scratchpad(e.raw, cfg12)})
	}
	bus := &onewiretest.Playback{Ops: ops}
	clk := withClock(bus)
	d, err := New(bus, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range datasheetTable {
		clk.advance(5 * time.Second) // the next schedule point
		rs, err := d.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 1 || rs[0].Metric != "temperature" || rs[0].Unit != "°C" || rs[0].Value != e.c {
			t.Errorf("raw 0x%04X: %+v, want %v °C", e.raw, rs, e.c)
		}
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestResolution(t *testing.T) {
	a := rom(t, "28-0000075e6b1a")
	bus := &onewiretest.Playback{Ops: []onewiretest.IO{
		{W: matchROM(a, 0xBE), R: scratchpad(0x0191, cfg12)},
		// Write scratchpad: TH and TL kept, 9 bits.
		{W: matchROM(a, 0x4E, 0x4B, 0x46, cfg9)},
		convertAll,
		// At 9 bits the three low bits are undefined: 0x0197 reads as
		// 0x0190, 25.0 °C.
		{W: matchROM(a, 0xBE), R: scratchpad(0x0197, cfg9)},
	}}
	clk := withClock(bus)
	d, err := New(bus, a, &Opts{Resolution: 9})
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Sense(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c != 25 {
		t.Errorf("%v °C, want 25", c)
	}
	// 9 bits convert in at most 93.75 ms.
	if waited := clk.waited(); len(waited) != 1 || waited[0] != 93750*time.Microsecond {
		t.Errorf("waited %v", clk.waited())
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := New(bus, a, &Opts{Resolution: 13}); err == nil {
		t.Error("resolution 13 accepted")
	}
}

// Two probes read one after the other at one point: one conversion.
func TestTwoProbesOneBus(t *testing.T) {
	a, b := rom(t, "28-0000075e6b1a"), rom(t, "28-00000a1b2c3d")
	bus := &onewiretest.Playback{Ops: []onewiretest.IO{
		{W: matchROM(a, 0xBE), R: scratchpad(0, cfg12)},
		{W: matchROM(b, 0xBE), R: scratchpad(0, cfg12)},
		convertAll,
		{W: matchROM(a, 0xBE), R: scratchpad(0x0191, cfg12)},
		{W: matchROM(b, 0xBE), R: scratchpad(0xFF5E, cfg12)},
		// Asked beyond the freshness window: a new conversion.
		convertAll,
		{W: matchROM(b, 0xBE), R: scratchpad(0xFE6F, cfg12)},
	}}
	clk := withClock(bus)
	ds := openAll(t, bus, a, b)
	da, db := ds[0], ds[1]
	if c, err := da.Sense(context.Background()); err != nil || c != 25.0625 {
		t.Errorf("probe a: %v, %v", c, err)
	}
	clk.advance(700 * time.Millisecond) // a straggler, within 750 ms of the end
	if c, err := db.Sense(context.Background()); err != nil || c != -10.125 {
		t.Errorf("probe b: %v, %v", c, err)
	}
	clk.advance(751 * time.Millisecond)
	if c, err := db.Sense(context.Background()); err != nil || c != -25.0625 {
		t.Errorf("probe b, later: %v, %v", c, err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestFaultsAndRecovery(t *testing.T) {
	a := rom(t, "28-0000075e6b1a")
	garbled := scratchpad(0x0191, cfg12)
	garbled[0] ^= 0x04
	ff := []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}
	conv := convertAll
	read := func(sp []byte) onewiretest.IO { return onewiretest.IO{W: matchROM(a, 0xBE), R: sp} }
	bus := &onewiretest.Playback{Ops: []onewiretest.IO{
		read(scratchpad(0, cfg12)),
		conv, read(garbled), // CRC error
		conv, read(ff), // the probe is gone
		conv, read(scratchpad(0x0550, cfg12)), // power-on value
		conv, read(make([]byte, 9)), // all zeros: passes the CRC
		conv, read(scratchpad(0x0191, cfg12)), // back
	}}
	clk := withClock(bus)
	d, err := New(bus, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []error{ErrCRC, ErrNotFound, ErrStuck, ErrCRC} {
		clk.advance(5 * time.Second)
		if _, err := d.Read(context.Background()); !errors.Is(err, want) {
			t.Fatalf("read %d: err %v, want %v", i, err, want)
		} else {
			t.Log(err)
		}
	}
	clk.advance(5 * time.Second)
	if c, err := d.Sense(context.Background()); err != nil || c != 25.0625 {
		t.Fatalf("after recovery: %v, %v", c, err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

// Through the DS2482 bridge on a fake I²C bus: the whole chain a gateway
// with a bridge uses. The bridge's transcript pieces follow its datasheet.
type bridgeScript struct{ ops []i2ctest.IO }

func (s *bridgeScript) add(ops ...i2ctest.IO) { s.ops = append(s.ops, ops...) }
func (s *bridgeScript) status(st byte)        { s.add(i2ctest.IO{Addr: 0x18, R: []byte{st}}) }
func (s *bridgeScript) reset(st byte) {
	s.add(i2ctest.IO{Addr: 0x18, W: []byte{0xB4}})
	s.status(st)
}
func (s *bridgeScript) write(bs ...byte) {
	for _, b := range bs {
		s.add(i2ctest.IO{Addr: 0x18, W: []byte{0xA5, b}})
		s.status(0x08)
	}
}
func (s *bridgeScript) read(bs ...byte) {
	for _, b := range bs {
		s.add(i2ctest.IO{Addr: 0x18, W: []byte{0x96}})
		s.status(0x08)
		s.add(i2ctest.IO{Addr: 0x18, W: []byte{0xE1, 0xE1}, R: []byte{b}})
	}
}
func (s *bridgeScript) config(c byte) {
	s.add(i2ctest.IO{Addr: 0x18, W: []byte{0xD2, c | (^c)<<4}, R: []byte{c}})
}

func TestThroughDS2482(t *testing.T) {
	a := rom(t, "28-0000075e6b1a")
	var s bridgeScript
	s.add(i2ctest.IO{Addr: 0x18, W: []byte{0xF0}, R: []byte{0x18}})
	s.config(0x01)
	// New: read the scratchpad.
	s.reset(0x0A)
	s.write(matchROM(a, 0xBE)...)
	s.read(scratchpad(0, cfg12)...)
	// Read: SKIP ROM, Convert T with the strong pull-up armed before it...
	s.reset(0x0A)
	s.write(0xCC)
	s.config(0x05)
	s.write(0x44)
	// ...then the scratchpad.
	s.reset(0x0A)
	s.write(matchROM(a, 0xBE)...)
	s.read(scratchpad(0xFE6F, cfg12)...)
	// Probe unplugged: no presence pulse.
	s.reset(0x08)
	bus := &i2ctest.Playback{Ops: s.ops}
	br, err := ds2482.New(bus, 0x18, nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := withClock(br)
	d, err := New(br, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := d.Sense(context.Background()); err != nil || c != -25.0625 {
		t.Fatalf("%v °C, %v; want -25.0625", c, err)
	}
	clk.advance(5 * time.Second)
	if _, err := d.Sense(context.Background()); !errors.Is(err, ds2482.ErrNoPresence) {
		t.Fatalf("err %v, want the bridge's ErrNoPresence", err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

// w1Probe writes a probe's w1_slave the way the kernel's w1_therm formats
// it.
func w1Probe(t *testing.T, dir, id string, sp []byte, verdict string) {
	t.Helper()
	p := filepath.Join(dir, id)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	hexs := strings.TrimSpace(fmt.Sprintf("% x", sp))
	raw := int16(uint16(sp[1])<<8 | uint16(sp[0]))
	body := fmt.Sprintf("%s : crc=%02x %s\n%s t=%d\n", hexs, sp[8], verdict, hexs, int(raw)*1000/16)
	if err := os.WriteFile(filepath.Join(p, "w1_slave"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestKernelW1(t *testing.T) {
	dir := t.TempDir()
	const id = "28-0000075e6b1a"
	w1Probe(t, dir, id, scratchpad(0x0191, cfg12), "YES")
	if err := os.WriteFile(filepath.Join(dir, id, "resolution"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := NewW1(dir, rom(t, id), &Opts{Resolution: 12})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, id, "resolution")); string(b) != "12\n" {
		t.Errorf("resolution file %q", b)
	}
	// No therm_bulk_read beside the probe's directory: an older kernel.
	if n := d.Notice(); !strings.Contains(n, id+" converts on its own") || !strings.Contains(n, "therm_bulk_read: w1_therm before Linux 5.8") {
		t.Errorf("notice %q", n)
	}
	if c, err := d.Sense(context.Background()); err != nil || c != 25.0625 {
		t.Fatalf("%v, %v", c, err)
	}
	bad := scratchpad(0x0191, cfg12)
	bad[8] ^= 1
	w1Probe(t, dir, id, bad, "NO")
	if _, err := d.Sense(context.Background()); !errors.Is(err, ErrCRC) {
		t.Fatalf("err %v, want ErrCRC", err)
	}
	// The kernel's answer for a probe on a line with no pull-up: zeros
	// with a "valid" CRC.
	w1Probe(t, dir, id, make([]byte, 9), "YES")
	if _, err := d.Sense(context.Background()); !errors.Is(err, ErrCRC) {
		t.Fatalf("err %v, want ErrCRC", err)
	}
	if err := os.RemoveAll(filepath.Join(dir, id)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Sense(context.Background()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err %v, want ErrNotFound", err)
	}
	// Plugged back in: the kernel lists it again.
	w1Probe(t, dir, id, scratchpad(0xFC90, cfg12), "YES")
	if err := os.WriteFile(filepath.Join(dir, id, "resolution"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := d.Sense(context.Background()); err != nil || c != -55 {
		t.Fatalf("after recovery: %v, %v", c, err)
	}
}

func TestAloneReason(t *testing.T) {
	const attr = "/sys/devices/w1_bus_master2/therm_bulk_read"
	for _, c := range []struct {
		err  error
		want string
	}{
		{syscall.ENOENT, "the kernel has no " + attr + ": w1_therm before Linux 5.8, or a bus other than the one w1_therm gave it to"},
		{syscall.EROFS, attr + " is read-only here: the packaged service makes /sys read-only except for the bus masters w1_bus_master1 to w1_bus_master3 that were there when it started; restart it"},
		{syscall.EACCES, attr + " is not writable by this user: the floorhub package's udev rule gives it to group floorhub"},
		{syscall.EIO, attr + ": input/output error"},
	} {
		if got := aloneReason(attr, c.err); !strings.HasPrefix(got, c.want) {
			t.Errorf("%v: %q, want it to begin %q", c.err, got, c.want)
		}
	}
}

func TestKernelW1Missing(t *testing.T) {
	if _, err := NewW1(filepath.Join(t.TempDir(), "nope"), rom(t, "28-0000075e6b1a"), nil); err == nil {
		t.Fatal("missing w1 directory accepted")
	} else if !strings.Contains(err.Error(), "w1-gpio") {
		t.Errorf("error %q gives no hint", err)
	}
	if _, err := NewW1(t.TempDir(), rom(t, "28-0000075e6b1a"), nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err %v, want ErrNotFound", err)
	}
}

// The bridge is held across a probe's convert and read.
var _ BusLocker = (*ds2482.Dev)(nil)

// w1_slave reads empty while the kernel converts for a bulk read, perhaps
// another process's: the probe reads once more after a conversion time.
func TestKernelW1EmptyWhileConverting(t *testing.T) {
	dir := t.TempDir()
	const id = "28-0000075e6b1a"
	w1Probe(t, dir, id, scratchpad(0x0191, cfg12), "YES")
	file := filepath.Join(dir, id, "w1_slave")
	empty := func() {
		if err := os.WriteFile(file, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := NewW1(dir, rom(t, id), nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := newFakeClock()
	d.clk = clk
	empty()
	clk.onWait = func() { w1Probe(t, dir, id, scratchpad(0x0191, cfg12), "YES") }
	if c, err := d.Sense(context.Background()); err != nil || c != 25.0625 {
		t.Fatalf("%v, %v", c, err)
	}
	if w := clk.waited(); len(w) != 1 || w[0] != 750*time.Millisecond {
		t.Errorf("waited %v, want one conversion time", w)
	}
	// Still empty after the wait: a content error, after one retry.
	clk.onWait = nil
	empty()
	if _, err := d.Sense(context.Background()); err == nil || !strings.Contains(err.Error(), "unexpected w1_slave content") {
		t.Fatalf("err %v, want a content error", err)
	}
	if w := clk.waited(); len(w) != 2 {
		t.Errorf("waited %v, want one retry each", w)
	}
}
