package bme280

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"

	"github.com/floorhub/floorhub/sensors"
)

// Errors a Read can fail with besides the bus's own (a NACK, a vanished
// bus), which are wrapped and can be told apart with errors.Is/As.
var (
	// ErrChipID means the chip at the address is not the one expected:
	// another chip, a BMP280 where a BME280 was configured, or a bus that
	// reads back garbage.
	ErrChipID = errors.New("bme280: unexpected chip id")
	// ErrStuck means the chip returned its reset value (0x80000) or the
	// same raw values too many times in a row to be a real measurement.
	ErrStuck = errors.New("bme280: reading stuck")
	// ErrTimeout means a measurement did not finish in time.
	ErrTimeout = errors.New("bme280: measurement did not finish")
)

// Chip is a chip variant, named by its chip-id register (0xD0).
type Chip uint8

// Chip ids.
const (
	// Any accepts either chip.
	Any Chip = 0
	// BME280 measures temperature, humidity and pressure.
	BME280 Chip = 0x60
	// BMP280 measures temperature and pressure.
	BMP280 Chip = 0x58
)

func (c Chip) String() string {
	switch c {
	case BME280:
		return "BME280"
	case BMP280:
		return "BMP280"
	case Any:
		return "BME280 or BMP280"
	}
	return fmt.Sprintf("chip id 0x%02X", uint8(c))
}

// Addresses the chip answers on, chosen by its SDO pin.
const (
	AddrLow  = 0x76 // SDO to GND
	AddrHigh = 0x77 // SDO to VDDIO
)

// Opts configures a device. The zero value means: either chip, every
// measurement oversampled once, no IIR filter.
type Opts struct {
	// Chip is the variant expected; a different chip id is ErrChipID.
	// Any (0) accepts both.
	Chip Chip
	// Temperature, Pressure and Humidity are the oversampling factors:
	// samples averaged per measurement, 1, 2, 4, 8 or 16; 0 means 1.
	// Humidity is ignored on a BMP280.
	Temperature, Pressure, Humidity int
	// Filter is the IIR filter coefficient applied to temperature and
	// pressure across reads: 0 (off), 2, 4, 8 or 16.
	Filter int
	// StuckAfter is how many consecutive reads with bit-identical raw
	// temperature and pressure make ErrStuck: with 20-bit converters,
	// noise alone makes that implausible. 0 means 20; negative never.
	StuckAfter int
}

// Env is one measurement.
type Env struct {
	// Temperature in °C.
	Temperature float64
	// Pressure in hPa.
	Pressure float64
	// Humidity in % relative humidity; valid only when HasHumidity.
	Humidity    float64
	HasHumidity bool
}

// Registers (datasheet section 5.3).
const (
	regCalib1   = 0x88 // 26 bytes: dig_T1..dig_P9, unused 0xA0, dig_H1
	regChipID   = 0xD0
	regCalib2   = 0xE1 // 7 bytes: dig_H2..dig_H6
	regCtrlHum  = 0xF2
	regStatus   = 0xF3
	regCtrlMeas = 0xF4
	regConfig   = 0xF5
	regData     = 0xF7 // press[3], temp[3], hum[2]

	statusMeasuring = 1 << 3
	modeForced      = 0x01

	// skipped20 is what a 20-bit data register holds after reset or when
	// the measurement is skipped; skipped16 likewise for humidity.
	skipped20 = 0x80000
	skipped16 = 0x8000
)

// Dev is one BME280 or BMP280. It is safe for concurrent use.
type Dev struct {
	bus  i2c.Bus
	addr uint16
	opts Opts
	// osrs are the register codes of the three oversampling settings.
	osrsT, osrsP, osrsH, filter byte
	// sleep waits; tests replace it to skip real waits.
	sleep func(ctx context.Context, d time.Duration) error

	mu      sync.Mutex
	chip    Chip
	ready   bool // calibration loaded and configuration written
	cal     calibration
	lastT   int32
	lastP   int32
	repeats int
}

// NewI2C opens the chip at addr (0x76 or 0x77) on b: it checks the chip id,
// loads the calibration and writes the configuration.
func NewI2C(b i2c.Bus, addr uint16, opts *Opts) (*Dev, error) {
	if b == nil {
		return nil, errors.New("bme280: no I²C bus")
	}
	if addr != AddrLow && addr != AddrHigh {
		return nil, fmt.Errorf("bme280: address 0x%02X: the chip answers only on 0x76 or 0x77", addr)
	}
	d := &Dev{bus: b, addr: addr, sleep: sensors.Wait}
	if opts != nil {
		d.opts = *opts
	}
	if err := d.opts.Validate(); err != nil {
		return nil, err
	}
	d.osrsT, _ = OversamplingCode(d.opts.Temperature)
	d.osrsP, _ = OversamplingCode(d.opts.Pressure)
	d.osrsH, _ = OversamplingCode(d.opts.Humidity)
	d.filter, _ = FilterCode(d.opts.Filter)
	if d.opts.StuckAfter == 0 {
		d.opts.StuckAfter = 20
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.init(); err != nil {
		return nil, err
	}
	return d, nil
}

// Validate checks the options without touching hardware.
func (o *Opts) Validate() error {
	if o.Chip != Any && o.Chip != BME280 && o.Chip != BMP280 {
		return fmt.Errorf("bme280: unknown chip %s", o.Chip)
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"temperature", o.Temperature}, {"pressure", o.Pressure}, {"humidity", o.Humidity}} {
		if _, err := OversamplingCode(v.n); err != nil {
			return fmt.Errorf("%w (%s)", err, v.name)
		}
	}
	_, err := FilterCode(o.Filter)
	return err
}

// OversamplingCode returns the register code of an oversampling factor
// (1, 2, 4, 8 or 16; 0 means 1).
func OversamplingCode(n int) (byte, error) {
	switch n {
	case 0, 1:
		return 1, nil
	case 2:
		return 2, nil
	case 4:
		return 3, nil
	case 8:
		return 4, nil
	case 16:
		return 5, nil
	}
	return 0, fmt.Errorf("bme280: oversampling %d: want 1, 2, 4, 8 or 16", n)
}

// FilterCode returns the register code of an IIR filter coefficient (0 for
// off, 2, 4, 8 or 16).
func FilterCode(n int) (byte, error) {
	switch n {
	case 0:
		return 0, nil
	case 2:
		return 1, nil
	case 4:
		return 2, nil
	case 8:
		return 3, nil
	case 16:
		return 4, nil
	}
	return 0, fmt.Errorf("bme280: filter %d: want 0 (off), 2, 4, 8 or 16", n)
}

func (d *Dev) String() string {
	return fmt.Sprintf("%s at 0x%02X on %s", d.chip, d.addr, d.bus)
}

// Chip returns the variant found by the last successful initialisation.
func (d *Dev) Chip() Chip {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.chip
}

// Sense measures once.
func (d *Dev) Sense(ctx context.Context) (Env, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return Env{}, err
	}
	if !d.ready {
		if err := d.init(); err != nil {
			return Env{}, err
		}
	}
	e, err := d.measure(ctx)
	if err != nil && ctx.Err() == nil {
		// Whatever went wrong (a NACK, a reset chip, a stuck value), start
		// over from the chip id on the next read.
		d.ready = false
	}
	return e, err
}

// Read measures once and returns temperature (°C), humidity (%, BME280
// only) and pressure (hPa), rounded to 0.01.
func (d *Dev) Read(ctx context.Context) ([]sensors.Reading, error) {
	e, err := d.Sense(ctx)
	if err != nil {
		return nil, err
	}
	out := []sensors.Reading{{Metric: "temperature", Value: round2(e.Temperature), Unit: "°C"}}
	if e.HasHumidity {
		out = append(out, sensors.Reading{Metric: "humidity", Value: round2(e.Humidity), Unit: "%"})
	}
	return append(out, sensors.Reading{Metric: "pressure", Value: round2(e.Pressure), Unit: "hPa"}), nil
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// init checks the chip id, loads the calibration and writes the
// configuration, leaving the chip asleep. Caller holds d.mu.
func (d *Dev) init() error {
	var id [1]byte
	if err := d.bus.Tx(d.addr, []byte{regChipID}, id[:]); err != nil {
		return fmt.Errorf("bme280: read chip id at 0x%02X: %w", d.addr, err)
	}
	chip := Chip(id[0])
	switch {
	case chip == 0x56 || chip == 0x57:
		chip = BMP280 // engineering samples of the BMP280
	case chip != BME280 && chip != BMP280:
		return fmt.Errorf("%w 0x%02X at 0x%02X (want 0x60 BME280 or 0x58 BMP280)", ErrChipID, id[0], d.addr)
	}
	if d.opts.Chip != Any && chip != d.opts.Chip {
		return fmt.Errorf("%w: found %s at 0x%02X, configured %s", ErrChipID, chip, d.addr, d.opts.Chip)
	}
	var c1 [26]byte
	if err := d.bus.Tx(d.addr, []byte{regCalib1}, c1[:]); err != nil {
		return fmt.Errorf("bme280: read calibration: %w", err)
	}
	var c2 [7]byte
	if chip == BME280 {
		if err := d.bus.Tx(d.addr, []byte{regCalib2}, c2[:]); err != nil {
			return fmt.Errorf("bme280: read calibration: %w", err)
		}
	}
	cal := parseCalibration(c1[:], c2[:], chip == BME280)
	if cal.t1 == 0 || cal.p1 == 0 {
		// An all-zero NVM would divide by zero below; it means a broken chip
		// or a bus reading zeros.
		return fmt.Errorf("%w: calibration reads as zero at 0x%02X", ErrChipID, d.addr)
	}
	// ctrl_hum takes effect only after a write to ctrl_meas (5.4.3), which
	// comes last. Registers are written in sleep mode, where config is
	// guaranteed to be taken (5.4.6).
	if chip == BME280 {
		if err := d.bus.Tx(d.addr, []byte{regCtrlHum, d.osrsH}, nil); err != nil {
			return fmt.Errorf("bme280: write ctrl_hum: %w", err)
		}
	}
	if err := d.bus.Tx(d.addr, []byte{regConfig, d.filter << 2}, nil); err != nil {
		return fmt.Errorf("bme280: write config: %w", err)
	}
	if err := d.bus.Tx(d.addr, []byte{regCtrlMeas, d.ctrlMeas(0)}, nil); err != nil {
		return fmt.Errorf("bme280: write ctrl_meas: %w", err)
	}
	d.chip, d.cal, d.ready, d.repeats = chip, cal, true, 0
	return nil
}

func (d *Dev) ctrlMeas(mode byte) byte { return d.osrsT<<5 | d.osrsP<<2 | mode }

// measureTime is the datasheet's maximum measurement time (section 9.1).
func (d *Dev) measureTime() time.Duration {
	factor := func(code byte) float64 { return float64(int(1) << (code - 1)) }
	ms := 1.25 + 2.3*factor(d.osrsT) + 2.3*factor(d.osrsP) + 0.575
	if d.chip == BME280 {
		ms += 2.3*factor(d.osrsH) + 0.575
	}
	return time.Duration(ms * float64(time.Millisecond))
}

// measure runs one forced-mode measurement. Caller holds d.mu.
func (d *Dev) measure(ctx context.Context) (Env, error) {
	if err := d.bus.Tx(d.addr, []byte{regCtrlMeas, d.ctrlMeas(modeForced)}, nil); err != nil {
		return Env{}, fmt.Errorf("bme280: start measurement: %w", err)
	}
	if err := d.sleep(ctx, d.measureTime()); err != nil {
		return Env{}, err
	}
	for i := 0; ; i++ {
		var st [1]byte
		if err := d.bus.Tx(d.addr, []byte{regStatus}, st[:]); err != nil {
			return Env{}, fmt.Errorf("bme280: read status: %w", err)
		}
		if st[0]&statusMeasuring == 0 {
			break
		}
		if i == 10 {
			return Env{}, ErrTimeout
		}
		if err := d.sleep(ctx, 2*time.Millisecond); err != nil {
			return Env{}, err
		}
	}
	n := 6
	if d.chip == BME280 {
		n = 8
	}
	var raw [8]byte
	if err := d.bus.Tx(d.addr, []byte{regData}, raw[:n]); err != nil {
		return Env{}, fmt.Errorf("bme280: read data: %w", err)
	}
	adcP := int32(raw[0])<<12 | int32(raw[1])<<4 | int32(raw[2])>>4
	adcT := int32(raw[3])<<12 | int32(raw[4])<<4 | int32(raw[5])>>4
	adcH := int32(raw[6])<<8 | int32(raw[7])
	if adcT == skipped20 || adcP == skipped20 || (d.chip == BME280 && adcH == skipped16) {
		return Env{}, fmt.Errorf("%w: data registers hold their reset value (T 0x%05X, P 0x%05X)", ErrStuck, adcT, adcP)
	}
	if adcT == d.lastT && adcP == d.lastP {
		d.repeats++
	} else {
		d.lastT, d.lastP, d.repeats = adcT, adcP, 0
	}
	if d.opts.StuckAfter > 0 && d.repeats >= d.opts.StuckAfter {
		d.repeats = 0
		return Env{}, fmt.Errorf("%w: identical raw values %d reads in a row", ErrStuck, d.opts.StuckAfter+1)
	}
	t, fine := d.cal.temperature(adcT)
	e := Env{Temperature: t, Pressure: d.cal.pressure(adcP, fine) / 100}
	if d.chip == BME280 {
		e.Humidity, e.HasHumidity = d.cal.humidity(adcH, fine), true
	}
	return e, nil
}

// calibration holds the trimming words from the chip's NVM (datasheet
// table 16 and 18).
type calibration struct {
	t1             uint16
	t2, t3         int16
	p1             uint16
	p2, p3, p4, p5 int16
	p6, p7, p8, p9 int16
	h1, h3         uint8
	h2, h4, h5     int16
	h6             int8
}

func parseCalibration(c1, c2 []byte, humidity bool) calibration {
	u := func(i int) uint16 { return binary.LittleEndian.Uint16(c1[i:]) }
	s := func(i int) int16 { return int16(u(i)) }
	c := calibration{
		t1: u(0), t2: s(2), t3: s(4),
		p1: u(6), p2: s(8), p3: s(10), p4: s(12), p5: s(14), p6: s(16), p7: s(18), p8: s(20), p9: s(22),
	}
	if humidity {
		c.h1 = c1[25]
		c.h2 = int16(binary.LittleEndian.Uint16(c2[0:]))
		c.h3 = c2[2]
		// dig_H4 is 0xE4[7:0] | 0xE5[3:0] and dig_H5 is 0xE6[7:0] | 0xE5[7:4],
		// both signed 12-bit.
		c.h4 = int16(int8(c2[3]))<<4 | int16(c2[4]&0x0F)
		c.h5 = int16(int8(c2[5]))<<4 | int16(c2[4]>>4)
		c.h6 = int8(c2[6])
	}
	return c
}

// temperature returns °C and t_fine, with the double-precision formula of
// the datasheet's appendix (section 8.1).
func (c *calibration) temperature(adc int32) (float64, float64) {
	a := float64(adc)
	v1 := (a/16384 - float64(c.t1)/1024) * float64(c.t2)
	x := a/131072 - float64(c.t1)/8192
	v2 := x * x * float64(c.t3)
	fine := v1 + v2
	return fine / 5120, fine
}

// pressure returns Pa.
func (c *calibration) pressure(adc int32, fine float64) float64 {
	v1 := fine/2 - 64000
	v2 := v1 * v1 * float64(c.p6) / 32768
	v2 += v1 * float64(c.p5) * 2
	v2 = v2/4 + float64(c.p4)*65536
	v1 = (float64(c.p3)*v1*v1/524288 + float64(c.p2)*v1) / 524288
	v1 = (1 + v1/32768) * float64(c.p1)
	if v1 == 0 {
		return 0
	}
	p := 1048576 - float64(adc)
	p = (p - v2/4096) * 6250 / v1
	v1 = float64(c.p9) * p * p / 2147483648
	v2 = p * float64(c.p8) / 32768
	return p + (v1+v2+float64(c.p7))/16
}

// humidity returns % relative humidity, clamped to 0..100.
func (c *calibration) humidity(adc int32, fine float64) float64 {
	h := fine - 76800
	h = (float64(adc) - (float64(c.h4)*64 + float64(c.h5)/16384*h)) *
		(float64(c.h2) / 65536 * (1 + float64(c.h6)/67108864*h*(1+float64(c.h3)/67108864*h)))
	h *= 1 - float64(c.h1)*h/524288
	return math.Max(0, math.Min(100, h))
}
