package ds18b20

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/onewire"

	"github.com/floorhub/floorhub/sensors"
)

// Errors besides the bus's own, which are wrapped.
var (
	// ErrNotFound means the probe did not answer: unplugged, a broken
	// wire, or a ROM id that is not on the bus.
	ErrNotFound = errors.New("ds18b20: probe not found")
	// ErrCRC means the scratchpad arrived garbled (noise, a long line, a
	// weak pull-up).
	ErrCRC = errors.New("ds18b20: scratchpad CRC mismatch")
	// ErrStuck means the probe returned its power-on value, 85 °C: it lost
	// power (often a parasite-powered probe without a strong pull-up)
	// before the conversion finished.
	ErrStuck = errors.New("ds18b20: reading stuck at the power-on value 85 °C")
)

// Families of probes with the DS18B20's scratchpad format.
var families = map[byte]string{0x28: "DS18B20", 0x22: "DS1822", 0x3B: "DS1825"}

// ParseROM parses a ROM id as the kernel names it, "28-0000075e6b1a": the
// family code, then the 48-bit serial number in hex. The CRC byte is
// computed.
func ParseROM(s string) (onewire.Address, error) {
	fam, ser, ok := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "-")
	if !ok || len(fam) != 2 || len(ser) != 12 {
		return 0, fmt.Errorf("ds18b20: ROM id %q: want the form 28-0000075e6b1a", s)
	}
	f, err1 := strconv.ParseUint(fam, 16, 8)
	n, err2 := strconv.ParseUint(ser, 16, 48)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("ds18b20: ROM id %q: not hex", s)
	}
	if _, ok := families[byte(f)]; !ok {
		return 0, fmt.Errorf("ds18b20: ROM id %q: family 0x%02X is not a DS18B20 (0x28), DS1822 (0x22) or DS1825 (0x3B)", s, f)
	}
	a := onewire.Address(f | n<<8)
	b := make([]byte, 7)
	for i := range b {
		b[i] = byte(a >> (8 * i))
	}
	return a | onewire.Address(onewire.CalcCRC(b))<<56, nil
}

// ROMString formats a ROM id the way the kernel names it.
func ROMString(a onewire.Address) string {
	return fmt.Sprintf("%02x-%012x", byte(a), uint64(a)>>8&(1<<48-1))
}

// Opts configures a probe. The zero value keeps the probe's resolution.
type Opts struct {
	// Resolution is 9, 10, 11 or 12 bits (0.5, 0.25, 0.125 or 0.0625 °C;
	// conversions of 94, 188, 375 or 750 ms). 0 keeps what the probe has,
	// 12 bits from the factory. It is set in the volatile scratchpad, not
	// copied to EEPROM, so a probe that lost power gets it rewritten.
	Resolution int
}

// Commands (datasheet "Function Commands").
const (
	cmdConvert    = 0x44
	cmdWriteScr   = 0x4E
	cmdReadScr    = 0xBE
	powerOnRaw    = 0x0550
	scratchpadLen = 9
)

// Dev is one probe. It is safe for concurrent use.
type Dev struct {
	// One of the two is set.
	bus   onewire.Bus
	share *sharedBus // bus's conversions, shared with its other probes
	dir   string     // the probe's sysfs directory
	w1    *w1Bus     // the kernel bus master's bulk conversions; nil: none
	alone string     // why w1 is nil, for Notice
	clk   clock      // times the retry of an empty w1_slave read

	rom  onewire.Address
	want int // resolution to set, 0 to keep

	mu    sync.Mutex
	ready bool
	res   int // resolution in use
}

// New opens the probe with ROM id rom on a 1-Wire bus. It reads the
// scratchpad once, to check the probe answers, and sets the resolution.
//
// The probes opened on one bus (the same pointer, such as one ds2482.Dev)
// convert together: a probe asking for a reading joins the conversion
// under way or just ended (see decide), or sends Convert T to every probe
// at once (SKIP ROM), then reads its own scratchpad. N probes read at one
// point thus take one conversion time plus N scratchpad reads, not N
// conversion times. The bus is held for Convert T and for each read, not
// during the wait; if it is a BusLocker (ds2482.Dev is), through LockBus,
// so other drivers on it do not interleave either.
func New(bus onewire.Bus, rom onewire.Address, opts *Opts) (*Dev, error) {
	if bus == nil {
		return nil, errors.New("ds18b20: no 1-Wire bus")
	}
	d, err := newDev(rom, opts)
	if err != nil {
		return nil, err
	}
	d.bus = bus
	d.share = shareBus(bus)
	d.mu.Lock()
	defer d.mu.Unlock()
	// New has no context; a minute bounds the wait behind other probes.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.share.acquire(ctx); err != nil {
		return nil, err
	}
	defer d.share.unlock()
	sp, err := d.readScratchpad()
	if err != nil {
		return nil, err
	}
	if err := d.setResolution(sp); err != nil {
		return nil, err
	}
	return d, nil
}

// NewW1 opens the probe with ROM id rom through the kernel's w1 devices
// directory (normally /sys/bus/w1/devices) and sets the resolution if
// asked, which needs a kernel whose w1_therm has the resolution file.
// Each read blocks in the kernel for the conversion (up to 750 ms at 12
// bits), which a context cannot interrupt. Where the probe's bus master
// has a therm_bulk_read the agent may write, the probes on it convert
// together (see w1Bus); waiting for another probe's conversion ends with
// the context.
func NewW1(dir string, rom onewire.Address, opts *Opts) (*Dev, error) {
	if dir == "" {
		return nil, errors.New("ds18b20: no w1 devices directory")
	}
	d, err := newDev(rom, opts)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("ds18b20: no kernel 1-Wire bus (%w); enable it with dtoverlay=w1-gpio in config.txt", err)
	}
	d.dir = filepath.Join(dir, ROMString(rom))
	d.clk = realClock{}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.initW1(); err != nil {
		return nil, err
	}
	return d, nil
}

func newDev(rom onewire.Address, opts *Opts) (*Dev, error) {
	if _, ok := families[byte(rom)]; !ok {
		return nil, fmt.Errorf("ds18b20: ROM %016x: family 0x%02X is not a DS18B20", uint64(rom), byte(rom))
	}
	d := &Dev{rom: rom, res: 12}
	if opts != nil {
		d.want = opts.Resolution
	}
	if d.want != 0 && (d.want < 9 || d.want > 12) {
		return nil, fmt.Errorf("ds18b20: resolution %d bits: want 9 to 12", d.want)
	}
	return d, nil
}

func (d *Dev) String() string {
	if d.bus != nil {
		return fmt.Sprintf("%s %s on %s", families[byte(d.rom)], ROMString(d.rom), d.bus)
	}
	return fmt.Sprintf("%s %s on w1", families[byte(d.rom)], ROMString(d.rom))
}

// Notice says why a probe read through the kernel's w1 converts on its
// own, one after the other with the other probes of its bus, instead of
// together with them; "" when it converts with them, or is behind a
// DS2482 (always together). With several probes on one kernel bus, their
// reads then take one conversion time each. A bus whose therm_bulk_read
// the agent may not write tries it again every minute (offFor), and its
// probes join once it can.
func (d *Dev) Notice() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	why := d.alone
	if d.w1 != nil {
		why = d.w1.offReason()
	}
	if why == "" {
		return ""
	}
	return fmt.Sprintf("%s converts on its own, not together with the other probes of its bus: %s", ROMString(d.rom), why)
}

// ROM returns the probe's ROM id.
func (d *Dev) ROM() onewire.Address { return d.rom }

// BusLocker is a 1-Wire bus that can be held across several transactions.
// LockBus waits at most until ctx ends.
type BusLocker interface {
	LockBus(ctx context.Context) error
	UnlockBus()
}

// Sense returns °C from one conversion: its own, or one it shares with
// the other probes of its bus (see New and NewW1).
func (d *Dev) Sense(ctx context.Context) (float64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var t float64
	var err error
	if d.bus != nil {
		t, err = d.senseBus(ctx)
	} else {
		t, err = d.senseW1(ctx)
	}
	if err != nil && ctx.Err() == nil {
		d.ready = false
	}
	return t, err
}

// Read returns the temperature in °C, as Sense.
func (d *Dev) Read(ctx context.Context) ([]sensors.Reading, error) {
	t, err := d.Sense(ctx)
	if err != nil {
		return nil, err
	}
	return []sensors.Reading{{Metric: "temperature", Value: t, Unit: "°C"}}, nil
}

// setResolution takes the resolution from a valid scratchpad sp and
// writes the one asked for if it differs. Caller holds d.mu and the bus.
func (d *Dev) setResolution(sp []byte) error {
	d.res = resolution(sp[4])
	if d.want != 0 && d.res != d.want {
		// Keep the alarm bytes TH and TL as they are.
		cfg := byte(d.want-9)<<5 | 0x1F
		dev := onewire.Dev{Bus: d.bus, Addr: d.rom}
		if err := dev.Tx([]byte{cmdWriteScr, sp[2], sp[3], cfg}, nil); err != nil {
			return fmt.Errorf("ds18b20: %s: write scratchpad: %w", ROMString(d.rom), err)
		}
		d.res = d.want
	}
	d.share.cover(convTime(d.res))
	d.ready = true
	return nil
}

// senseBus joins or starts a conversion of every probe on the bus, then
// reads this probe's scratchpad. A probe that is not ready (after a fault
// or a power loss) has its resolution set again from the same read: it
// converted with the others at whatever resolution it had, so it asks for
// the longest conversion time. Its faults are its own: the conversion the
// others share does not depend on it.
func (d *Dev) senseBus(ctx context.Context) (float64, error) {
	need := convTime(12)
	if d.ready {
		need = convTime(d.res)
	}
	if err := d.share.convert(ctx, need); err != nil {
		return 0, err
	}
	if err := d.share.acquire(ctx); err != nil {
		return 0, err
	}
	defer d.share.unlock()
	sp, err := d.readScratchpad()
	if err != nil {
		return 0, err
	}
	if !d.ready {
		if err := d.setResolution(sp); err != nil {
			return 0, err
		}
	} else if d.want != 0 && resolution(sp[4]) != d.want {
		// The probe lost power and reloaded its EEPROM: this value is
		// good, the resolution is set again before the next one.
		d.ready = false
	}
	return temperature(sp)
}

func (d *Dev) readScratchpad() ([]byte, error) {
	sp := make([]byte, scratchpadLen)
	dev := onewire.Dev{Bus: d.bus, Addr: d.rom}
	if err := dev.Tx([]byte{cmdReadScr}, sp); err != nil {
		return nil, fmt.Errorf("ds18b20: %s: read scratchpad: %w", ROMString(d.rom), err)
	}
	return sp, d.checkScratchpad(sp)
}

// checkScratchpad rejects what a missing probe or a bad line produce.
func (d *Dev) checkScratchpad(sp []byte) error {
	allFF := true
	for _, b := range sp {
		allFF = allFF && b == 0xFF
	}
	if allFF {
		// Nobody drove the line: the pull-up reads as ones.
		return fmt.Errorf("%w: %s does not answer", ErrNotFound, ROMString(d.rom))
	}
	if !onewire.CheckCRC(sp) {
		return fmt.Errorf("%w (%s: % x)", ErrCRC, ROMString(d.rom), sp)
	}
	// The configuration register's fixed bits: bit 7 is 0, bits 4:0 are 1.
	// An all-zero scratchpad passes the CRC but not this.
	if sp[4]&0x9F != 0x1F {
		return fmt.Errorf("%w (%s: config byte 0x%02X is impossible)", ErrCRC, ROMString(d.rom), sp[4])
	}
	return nil
}

func resolution(cfg byte) int { return 9 + int(cfg>>5&3) }

// convTime is the datasheet's maximum conversion time.
func convTime(res int) time.Duration {
	return 750 * time.Millisecond >> (12 - res)
}

// temperature decodes a valid scratchpad. Bits below the resolution are
// undefined (datasheet, "Operation — Measuring Temperature").
func temperature(sp []byte) (float64, error) {
	raw := int16(uint16(sp[1])<<8 | uint16(sp[0]))
	raw &^= 1<<(12-resolution(sp[4])) - 1
	if raw == powerOnRaw {
		return 0, ErrStuck
	}
	return math.Round(float64(raw)/16*10000) / 10000, nil
}

// initW1 checks the probe is listed and sets the resolution. Caller holds
// d.mu.
func (d *Dev) initW1() error {
	if _, err := os.Stat(d.dir); err != nil {
		return fmt.Errorf("%w: %s is not on the kernel's w1 bus (%v)", ErrNotFound, ROMString(d.rom), err)
	}
	if d.want != 0 {
		f := filepath.Join(d.dir, "resolution")
		if err := os.WriteFile(f, []byte(strconv.Itoa(d.want)+"\n"), 0); err != nil {
			return fmt.Errorf("ds18b20: %s: set resolution through the kernel (needs w1_therm with a resolution file, and write access): %w", ROMString(d.rom), err)
		}
		d.res = d.want
	}
	d.w1, d.alone = shareW1(d.dir)
	d.ready = true
	return nil
}

// senseW1 reads w1_slave, which makes the kernel convert, read the
// scratchpad and check its CRC:
//
//	72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
//	72 01 4b 46 7f ff 0e 10 57 t=23125
//
// The scratchpad bytes are decoded here, not the kernel's t=, so the same
// checks apply on both paths. Where the kernel can, the probes of a bus
// convert together (see w1Bus). Caller holds d.mu.
func (d *Dev) senseW1(ctx context.Context) (float64, error) {
	if !d.ready {
		if err := d.initW1(); err != nil {
			return 0, err
		}
	}
	file := filepath.Join(d.dir, "w1_slave")
	b, err := d.readW1(ctx, file)
	if err == nil && len(b) == 0 {
		// The kernel's w1_slave reads empty while a bulk conversion is
		// under way, perhaps triggered by another process, and when its
		// own read failed: once more after the longest conversion (the
		// bulk one waits for the slowest probe on the bus).
		if err := d.clk.waitUntil(ctx, d.clk.now().Add(convTime(12))); err != nil {
			return 0, err
		}
		b, err = d.readW1(ctx, file)
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0, err
		}
		if errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("%w: %s left the kernel's w1 bus", ErrNotFound, ROMString(d.rom))
		}
		return 0, fmt.Errorf("ds18b20: %s: %w", ROMString(d.rom), err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	hexs, verdict, ok := strings.Cut(line, ":")
	fields := strings.Fields(hexs)
	if !ok || len(fields) != scratchpadLen {
		return 0, fmt.Errorf("ds18b20: %s: unexpected w1_slave content %q", ROMString(d.rom), line)
	}
	sp := make([]byte, scratchpadLen)
	for i, f := range fields {
		v, err := strconv.ParseUint(f, 16, 8)
		if err != nil {
			return 0, fmt.Errorf("ds18b20: %s: unexpected w1_slave content %q", ROMString(d.rom), line)
		}
		sp[i] = byte(v)
	}
	if err := d.checkScratchpad(sp); err != nil {
		return 0, err
	}
	if !strings.HasSuffix(strings.TrimSpace(verdict), "YES") {
		return 0, fmt.Errorf("%w (%s: kernel says %q)", ErrCRC, ROMString(d.rom), strings.TrimSpace(verdict))
	}
	if d.want != 0 && resolution(sp[4]) != d.want {
		d.ready = false
	}
	return temperature(sp)
}

// readW1 reads w1_slave, through the bus master's bulk conversions if it
// has them. Caller holds d.mu.
func (d *Dev) readW1(ctx context.Context, file string) ([]byte, error) {
	if d.w1 != nil {
		return d.w1.read(ctx, file, convTime(d.res))
	}
	return os.ReadFile(file)
}
