package ads1x15

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"

	"github.com/floorhub/floorhub/sensors"
)

// Errors a Read can fail with besides the bus's own (a NACK, a vanished
// bus), which are wrapped.
var (
	// ErrTimeout means a conversion never finished: the chip is stuck or
	// not the chip configured.
	ErrTimeout = errors.New("ads1x15: conversion did not finish")
	// ErrReset means the config register no longer holds what was written:
	// the chip was power-cycled mid-conversion or another master wrote it.
	ErrReset = errors.New("ads1x15: config register changed under us")
	// ErrSaturated means the input is at or beyond the full-scale range,
	// so the value is meaningless: a broken wire, a short, or a range set
	// too small.
	ErrSaturated = errors.New("ads1x15: input saturated")
)

// Chip is the converter model.
type Chip int

// Models.
const (
	// ADS1115 is 16-bit, 8 to 860 samples/s.
	ADS1115 Chip = iota
	// ADS1015 is 12-bit, 128 to 3300 samples/s.
	ADS1015
)

func (c Chip) String() string {
	if c == ADS1015 {
		return "ADS1015"
	}
	return "ADS1115"
}

// Input is an input multiplexer setting (config register bits 14:12).
type Input uint8

// Inputs: single-ended against GND, or differential.
const (
	Diff01 Input = 0 // AIN0 − AIN1
	Diff03 Input = 1 // AIN0 − AIN3
	Diff13 Input = 2 // AIN1 − AIN3
	Diff23 Input = 3 // AIN2 − AIN3
	AIN0   Input = 4
	AIN1   Input = 5
	AIN2   Input = 6
	AIN3   Input = 7
)

var inputNames = [8]string{"0-1", "0-3", "1-3", "2-3", "0", "1", "2", "3"}

func (in Input) String() string {
	if int(in) < len(inputNames) {
		return inputNames[in]
	}
	return fmt.Sprintf("Input(%d)", uint8(in))
}

// ParseInput parses "0" to "3" (single-ended) or "0-1", "0-3", "1-3",
// "2-3" (differential): the pairs the multiplexer offers.
func ParseInput(s string) (Input, error) {
	for i, n := range inputNames {
		if s == n {
			return Input(i), nil
		}
	}
	return 0, fmt.Errorf("ads1x15: input %q: want 0, 1, 2, 3 or the pairs 0-1, 0-3, 1-3, 2-3", s)
}

// fullScales are the PGA ranges in volts, by register code (bits 11:9).
var fullScales = []float64{6.144, 4.096, 2.048, 1.024, 0.512, 0.256}

// dataRates by register code (bits 7:5), samples/s.
var dataRates = map[Chip][8]int{
	ADS1115: {8, 16, 32, 64, 128, 250, 475, 860},
	ADS1015: {128, 250, 490, 920, 1600, 2400, 3300, 3300},
}

// Scale maps a measured quantity linearly onto an engineering unit: From[0]
// becomes To[0] and From[1] becomes To[1]; values outside extrapolate.
type Scale struct {
	From [2]float64
	To   [2]float64
}

// Channel is one conversion per Read.
type Channel struct {
	// Input selects the multiplexer setting.
	Input Input
	// FullScale is the programmable-gain range in volts: 6.144, 4.096,
	// 2.048, 1.024, 0.512 or 0.256. 0 means 2.048 (the power-on range). No
	// input may exceed VDD + 0.3 V whatever the range.
	FullScale float64
	// DataRate is samples/s, one of the chip's rates; 0 means 128 on the
	// ADS1115 and 1600 on the ADS1015 (the power-on rates).
	DataRate int
	// ShuntOhms, when above 0, turns the measured volts into milliamperes
	// through a shunt of that many ohms before scaling.
	ShuntOhms float64
	// Scale, when set, maps volts (or mA with a shunt) to the unit.
	Scale *Scale
	// Metric is the reported name; default "ain<input>", e.g. "ain0" or
	// "ain0_1".
	Metric string
	// Unit is the reported unit; default "V", or "mA" with a shunt. It
	// is required with a Scale.
	Unit string
}

// Opts configures a converter.
type Opts struct {
	// Chip is the model; the zero value is the ADS1115.
	Chip Chip
	// Channels are converted in order on each Read; at least one.
	Channels []Channel
}

// Addresses, chosen by the ADDR pin.
const (
	AddrGND = 0x48
	AddrVDD = 0x49
	AddrSDA = 0x4A
	AddrSCL = 0x4B
)

// Registers and config bits (datasheet 9.6).
const (
	regConversion = 0x00
	regConfig     = 0x01

	cfgOS         = 1 << 15 // write: start a conversion; read: 1 when idle
	cfgSingleShot = 1 << 8
	cfgCompQueOff = 0x3 // comparator disabled, ALERT/RDY high impedance
)

type channel struct {
	Channel
	config uint16
	wait   time.Duration
}

// Dev is one converter. It is safe for concurrent use.
type Dev struct {
	bus  i2c.Bus
	addr uint16
	chip Chip
	chs  []channel
	// sleep waits; tests replace it to skip real waits.
	sleep func(ctx context.Context, d time.Duration) error

	mu sync.Mutex
}

// NewI2C checks opts and that a chip answers at addr (0x48 to 0x4B) on b.
func NewI2C(b i2c.Bus, addr uint16, opts *Opts) (*Dev, error) {
	if b == nil {
		return nil, errors.New("ads1x15: no I²C bus")
	}
	if addr < AddrGND || addr > AddrSCL {
		return nil, fmt.Errorf("ads1x15: address 0x%02X: the chip answers only on 0x48 to 0x4B", addr)
	}
	chs, err := opts.channels()
	if err != nil {
		return nil, err
	}
	d := &Dev{bus: b, addr: addr, chip: opts.Chip, chs: chs, sleep: sensors.Wait}
	var cfg [2]byte
	if err := d.bus.Tx(addr, []byte{regConfig}, cfg[:]); err != nil {
		return nil, fmt.Errorf("ads1x15: probe 0x%02X: %w", addr, err)
	}
	return d, nil
}

// Validate checks the options without touching hardware.
func (o *Opts) Validate() error {
	_, err := o.channels()
	return err
}

// Metrics returns the names the channels report, in order (defaults
// filled in: "ain0", "a0_1"...), so that a configuration can check what
// its rules watch.
func (o *Opts) Metrics() []string {
	out := make([]string, 0, len(o.Channels))
	for _, c := range o.Channels {
		if c.Metric == "" {
			c.Metric = "ain" + inputMetric(c.Input)
		}
		out = append(out, c.Metric)
	}
	return out
}

func (o *Opts) channels() ([]channel, error) {
	if o == nil || len(o.Channels) == 0 {
		return nil, errors.New("ads1x15: no channels configured")
	}
	if o.Chip != ADS1115 && o.Chip != ADS1015 {
		return nil, fmt.Errorf("ads1x15: unknown chip %d", o.Chip)
	}
	var chs []channel
	metrics := map[string]bool{}
	for i, c := range o.Channels {
		ch, err := prepare(o.Chip, c)
		if err != nil {
			return nil, fmt.Errorf("ads1x15: channel %d: %w", i, err)
		}
		if metrics[ch.Metric] {
			return nil, fmt.Errorf("ads1x15: channel %d: metric %q is reported twice", i, ch.Metric)
		}
		metrics[ch.Metric] = true
		chs = append(chs, ch)
	}
	return chs, nil
}

func prepare(chip Chip, c Channel) (channel, error) {
	if c.Input > AIN3 {
		return channel{}, fmt.Errorf("unknown input %d", c.Input)
	}
	if c.FullScale == 0 {
		c.FullScale = 2.048
	}
	pga := -1
	for i, fs := range fullScales {
		if c.FullScale == fs {
			pga = i
		}
	}
	if pga < 0 {
		return channel{}, fmt.Errorf("full scale ±%g V: want 6.144, 4.096, 2.048, 1.024, 0.512 or 0.256", c.FullScale)
	}
	rates := dataRates[chip]
	if c.DataRate == 0 {
		c.DataRate = rates[4]
	}
	dr := -1
	for i, r := range rates {
		if c.DataRate == r && dr < 0 {
			dr = i
		}
	}
	if dr < 0 {
		return channel{}, fmt.Errorf("data rate %d/s: the %s takes %v", c.DataRate, chip, rates)
	}
	if c.ShuntOhms < 0 || math.IsNaN(c.ShuntOhms) || math.IsInf(c.ShuntOhms, 0) {
		return channel{}, fmt.Errorf("shunt %v Ω: want a positive resistance", c.ShuntOhms)
	}
	if s := c.Scale; s != nil {
		for _, v := range []float64{s.From[0], s.From[1], s.To[0], s.To[1]} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return channel{}, errors.New("scale: values must be finite")
			}
		}
		if s.From[0] == s.From[1] {
			return channel{}, fmt.Errorf("scale: from [%g, %g] is empty", s.From[0], s.From[1])
		}
		if c.Unit == "" {
			return channel{}, errors.New("scale: set the unit it maps to")
		}
	}
	if c.Metric == "" {
		c.Metric = "ain" + inputMetric(c.Input)
	}
	if c.Unit == "" {
		c.Unit = "V"
		if c.ShuntOhms > 0 {
			c.Unit = "mA"
		}
	}
	ch := channel{Channel: c}
	ch.config = cfgOS | uint16(c.Input)<<12 | uint16(pga)<<9 | cfgSingleShot | uint16(dr)<<5 | cfgCompQueOff
	// The conversion takes one sample period, ±10 % with the internal
	// oscillator (datasheet 7.5), plus the wake-up from power-down.
	ch.wait = time.Duration(1.1*float64(time.Second)/float64(c.DataRate)) + 100*time.Microsecond
	return ch, nil
}

func inputMetric(in Input) string {
	if in >= AIN0 {
		return inputNames[in]
	}
	return inputNames[in][:1] + "_" + inputNames[in][2:]
}

func (d *Dev) String() string { return fmt.Sprintf("%s at 0x%02X on %s", d.chip, d.addr, d.bus) }

// Read converts every channel once.
func (d *Dev) Read(ctx context.Context) ([]sensors.Reading, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]sensors.Reading, 0, len(d.chs))
	for i := range d.chs {
		ch := &d.chs[i]
		v, err := d.convert(ctx, ch)
		if err != nil {
			return nil, err
		}
		if ch.ShuntOhms > 0 {
			v = v / ch.ShuntOhms * 1000
		}
		if s := ch.Scale; s != nil {
			v = s.To[0] + (v-s.From[0])*(s.To[1]-s.To[0])/(s.From[1]-s.From[0])
		}
		out = append(out, sensors.Reading{Metric: ch.Metric, Value: math.Round(v*1e6) / 1e6, Unit: ch.Unit})
	}
	return out, nil
}

// convert runs one single-shot conversion of a channel and returns volts.
// Caller holds d.mu.
func (d *Dev) convert(ctx context.Context, ch *channel) (float64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	w := []byte{regConfig, byte(ch.config >> 8), byte(ch.config)}
	if err := d.bus.Tx(d.addr, w, nil); err != nil {
		return 0, fmt.Errorf("ads1x15: start conversion of input %s: %w", ch.Input, err)
	}
	if err := d.sleep(ctx, ch.wait); err != nil {
		return 0, err
	}
	var b [2]byte
	for i := 0; ; i++ {
		if err := d.bus.Tx(d.addr, []byte{regConfig}, b[:]); err != nil {
			return 0, fmt.Errorf("ads1x15: read config: %w", err)
		}
		got := uint16(b[0])<<8 | uint16(b[1])
		if got&^cfgOS != ch.config&^cfgOS {
			return 0, fmt.Errorf("%w: reads 0x%04X, wrote 0x%04X", ErrReset, got, ch.config)
		}
		if got&cfgOS != 0 {
			break
		}
		if i == 10 {
			return 0, fmt.Errorf("%w (input %s)", ErrTimeout, ch.Input)
		}
		if err := d.sleep(ctx, ch.wait/4+time.Millisecond); err != nil {
			return 0, err
		}
	}
	if err := d.bus.Tx(d.addr, []byte{regConversion}, b[:]); err != nil {
		return 0, fmt.Errorf("ads1x15: read conversion: %w", err)
	}
	code := int(int16(uint16(b[0])<<8 | uint16(b[1])))
	span := 32768
	if d.chip == ADS1015 {
		code >>= 4 // 12-bit result, left-justified
		span = 2048
	}
	if code >= span-1 || code <= -span {
		return 0, fmt.Errorf("%w: input %s at the ±%g V limit", ErrSaturated, ch.Input, ch.FullScale)
	}
	return float64(code) * ch.FullScale / float64(span), nil
}
