package bme280

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"
)

// cal is a calibration as the datasheet names its words.
type cal struct {
	T1                             uint16
	T2, T3                         int16
	P1                             uint16
	P2, P3, P4, P5, P6, P7, P8, P9 int16
	H1, H3                         uint8
	H2, H4, H5                     int16
	H6                             int8
}

// example is the BMP280 datasheet's worked example (BST-BMP280-DS001,
// section 3.12, table 14) plus humidity words of a real BME280.
var example = cal{
	T1: 27504, T2: 26435, T3: -1000,
	P1: 36477, P2: -10685, P3: 3024, P4: 2855, P5: 140, P6: -7, P7: 15500, P8: -14600, P9: 6000,
	H1: 75, H2: 362, H3: 0, H4: 313, H5: 50, H6: 30,
}

// regs lays the words out as the register map does (tables 16 and 18).
func (c cal) regs() (c1 [26]byte, c2 [7]byte) {
	le := func(b []byte, v uint16) { b[0], b[1] = byte(v), byte(v>>8) }
	words := []uint16{c.T1, uint16(c.T2), uint16(c.T3), c.P1, uint16(c.P2), uint16(c.P3), uint16(c.P4),
		uint16(c.P5), uint16(c.P6), uint16(c.P7), uint16(c.P8), uint16(c.P9)}
	for i, w := range words {
		le(c1[2*i:], w)
	}
	c1[25] = c.H1
	le(c2[0:], uint16(c.H2))
	c2[2] = c.H3
	c2[3] = byte(c.H4 >> 4)
	c2[4] = byte(c.H4&0x0F) | byte(c.H5&0x0F)<<4
	c2[5] = byte(c.H5 >> 4)
	c2[6] = byte(c.H6)
	return
}

// initOps is the transcript of NewI2C or of a re-initialisation.
func initOps(addr uint16, chip byte, c cal, ctrlHum, config, ctrlMeas byte) []i2ctest.IO {
	c1, c2 := c.regs()
	ops := []i2ctest.IO{
		{Addr: addr, W: []byte{0xD0}, R: []byte{chip}},
		{Addr: addr, W: []byte{0x88}, R: c1[:]},
	}
	if chip == 0x60 {
		ops = append(ops, i2ctest.IO{Addr: addr, W: []byte{0xE1}, R: c2[:]},
			i2ctest.IO{Addr: addr, W: []byte{0xF2, ctrlHum}})
	}
	return append(ops,
		i2ctest.IO{Addr: addr, W: []byte{0xF5, config}},
		i2ctest.IO{Addr: addr, W: []byte{0xF4, ctrlMeas}})
}

// measureOps is the transcript of one forced measurement returning the raw
// ADC values (humidity only when bme).
func measureOps(addr uint16, ctrlMeas byte, adcT, adcP, adcH int32, bme bool) []i2ctest.IO {
	data := []byte{byte(adcP >> 12), byte(adcP >> 4), byte(adcP << 4), byte(adcT >> 12), byte(adcT >> 4), byte(adcT << 4)}
	if bme {
		data = append(data, byte(adcH>>8), byte(adcH))
	}
	return []i2ctest.IO{
		{Addr: addr, W: []byte{0xF4, ctrlMeas | 1}},
		{Addr: addr, W: []byte{0xF3}, R: []byte{0x08}}, // still measuring
		{Addr: addr, W: []byte{0xF3}, R: []byte{0x00}},
		{Addr: addr, W: []byte{0xF7}, R: data},
	}
}

// Reference compensation: the datasheet's fixed-point formulas (BME280
// section 4.2.3), written independently of the driver's floating-point
// ones so that each checks the other.
func refTemp(c cal, adc int32) (centi int32, fine int32) {
	v1 := ((adc >> 3) - int32(c.T1)<<1) * int32(c.T2) >> 11
	v2 := (((adc >> 4) - int32(c.T1)) * ((adc >> 4) - int32(c.T1)) >> 12) * int32(c.T3) >> 14
	fine = v1 + v2
	return (fine*5 + 128) >> 8, fine
}

func refPress(c cal, adc int32, fine int32) uint32 { // Pa in Q24.8
	v1 := int64(fine) - 128000
	v2 := v1 * v1 * int64(c.P6)
	v2 += (v1 * int64(c.P5)) << 17
	v2 += int64(c.P4) << 35
	v1 = (v1 * v1 * int64(c.P3) >> 8) + (v1 * int64(c.P2) << 12)
	v1 = ((int64(1) << 47) + v1) * int64(c.P1) >> 33
	if v1 == 0 {
		return 0
	}
	p := int64(1048576 - adc)
	p = ((p<<31 - v2) * 3125) / v1
	v1 = int64(c.P9) * (p >> 13) * (p >> 13) >> 25
	v2 = int64(c.P8) * p >> 19
	return uint32((p+v1+v2)>>8 + int64(c.P7)<<4)
}

func refHum(c cal, adc int32, fine int32) uint32 { // %RH in Q22.10
	v := fine - 76800
	// Go's * and >> share a precedence level; C's do not: parenthesise.
	v = ((adc<<14 - int32(c.H4)<<20 - int32(c.H5)*v + 16384) >> 15) *
		(((((((v*int32(c.H6))>>10)*(((v*int32(c.H3))>>11)+32768))>>10)+2097152)*int32(c.H2) + 8192) >> 14)
	v -= ((v >> 15) * (v >> 15) >> 7) * int32(c.H1) >> 4
	v = max(0, min(v, 419430400))
	return uint32(v >> 12)
}

func noWait(d *Dev) *Dev {
	d.sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	return d
}

func open(t *testing.T, bus i2c.Bus, addr uint16, o *Opts) *Dev {
	t.Helper()
	// NewI2C waits only when measuring; init never sleeps.
	d, err := NewI2C(bus, addr, o)
	if err != nil {
		t.Fatal(err)
	}
	return noWait(d)
}

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.4f, want %.4f ± %g", what, got, want, tol)
	}
}

func TestBMP280DatasheetExample(t *testing.T) {
	// ctrl_meas 0x24: osrs_t x1 (001), osrs_p x1 (001), sleep.
	ops := append(initOps(0x76, 0x58, example, 0, 0x00, 0x24),
		measureOps(0x76, 0x24, 519888, 415148, 0, false)...)
	bus := &i2ctest.Playback{Ops: ops}
	d := open(t, bus, 0x76, nil)
	e, err := d.Sense(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The datasheet's results: T = 25.08 °C, p = 100653.27 Pa.
	near(t, "temperature", e.Temperature, 25.08, 0.005)
	near(t, "pressure", e.Pressure, 1006.5327, 0.0005)
	if e.HasHumidity {
		t.Error("a BMP280 reported humidity")
	}
	if d.Chip() != BMP280 {
		t.Errorf("chip %v", d.Chip())
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBME280AgainstFixedPoint(t *testing.T) {
	// x16 on all three, filter 16: ctrl_hum 0x05, config 0x10, ctrl_meas
	// 101 101 00 = 0xB4.
	o := &Opts{Temperature: 16, Pressure: 16, Humidity: 16, Filter: 16}
	samples := []struct{ t, p, h int32 }{
		{519888, 415148, 30000},
		{500000, 350000, 25000},
		{540000, 450000, 35000},
		{480000, 300000, 20000},
	}
	ops := initOps(0x77, 0x60, example, 0x05, 0x10, 0xB4)
	for _, s := range samples {
		ops = append(ops, measureOps(0x77, 0xB4, s.t, s.p, s.h, true)...)
	}
	bus := &i2ctest.Playback{Ops: ops}
	d := open(t, bus, 0x77, o)
	for _, s := range samples {
		rs, err := d.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 3 || rs[0].Metric != "temperature" || rs[1].Metric != "humidity" || rs[2].Metric != "pressure" ||
			rs[0].Unit != "°C" || rs[1].Unit != "%" || rs[2].Unit != "hPa" {
			t.Fatalf("readings %+v", rs)
		}
		centi, fine := refTemp(example, s.t)
		near(t, "temperature", rs[0].Value, float64(centi)/100, 0.011)
		near(t, "humidity", rs[1].Value, float64(refHum(example, s.h, fine))/1024, 0.02)
		near(t, "pressure", rs[2].Value, float64(refPress(example, s.p, fine))/256/100, 0.011)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

// failing is a bus that fails chosen transactions the way a real one does
// when a chip does not acknowledge or the adapter is gone, and passes the
// others to the transcript.
type failing struct {
	mu   sync.Mutex
	bus  i2c.Bus
	n    int
	fail map[int]error
}

func (f *failing) String() string { return "failing" }

func (f *failing) Tx(addr uint16, w, r []byte) error {
	f.mu.Lock()
	n := f.n
	f.n++
	err := f.fail[n]
	f.mu.Unlock()
	if err != nil {
		return err
	}
	return f.bus.Tx(addr, w, r)
}

func (f *failing) SetSpeed(physic.Frequency) error { return nil }

var errNACK = errors.New("sysfs-i2c: remote I/O error") // what Linux says on a NACK

func TestNACKThenRecovery(t *testing.T) {
	ops := initOps(0x76, 0x60, example, 1, 0, 0x24)
	ops = append(ops, measureOps(0x76, 0x24, 519888, 415148, 30000, true)[:1]...) // start ok, then NACK on status
	// Next read: the driver starts over from the chip id.
	ops = append(ops, initOps(0x76, 0x60, example, 1, 0, 0x24)...)
	ops = append(ops, measureOps(0x76, 0x24, 519888, 415148, 30000, true)...)
	pb := &i2ctest.Playback{Ops: ops, DontPanic: true}
	bus := &failing{bus: pb, fail: map[int]error{7: errNACK}}
	d := open(t, bus, 0x76, nil)
	if _, err := d.Read(context.Background()); !errors.Is(err, errNACK) {
		t.Fatalf("err %v, want the bus's NACK", err)
	} else if got := err.Error(); got[:7] != "bme280:" {
		t.Errorf("error %q lacks the package prefix", got)
	}
	rs, err := d.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	near(t, "temperature", rs[0].Value, 25.08, 0.005)
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestWrongChip(t *testing.T) {
	// A BME680 answers 0x61 at the same addresses.
	bus := &i2ctest.Playback{Ops: []i2ctest.IO{{Addr: 0x77, W: []byte{0xD0}, R: []byte{0x61}}}}
	if _, err := NewI2C(bus, 0x77, nil); !errors.Is(err, ErrChipID) {
		t.Fatalf("err %v, want ErrChipID", err)
	}
	// A BMP280 where a BME280 is configured: a common mix-up of breakout
	// boards, worth a clear message.
	bus = &i2ctest.Playback{Ops: []i2ctest.IO{{Addr: 0x76, W: []byte{0xD0}, R: []byte{0x58}}}}
	_, err := NewI2C(bus, 0x76, &Opts{Chip: BME280})
	if !errors.Is(err, ErrChipID) {
		t.Fatalf("err %v, want ErrChipID", err)
	}
	t.Log(err)
}

func TestVanishedBusComesBack(t *testing.T) {
	gone := errors.New("sysfs-i2c: no such device")
	ops := initOps(0x76, 0x58, example, 0, 0, 0x24)
	ops = append(ops, initOps(0x76, 0x58, example, 0, 0, 0x24)...)
	ops = append(ops, measureOps(0x76, 0x24, 519888, 415148, 0, false)...)
	pb := &i2ctest.Playback{Ops: ops, DontPanic: true}
	// Transactions 4 (the first measurement) to 6 (two re-inits) fail.
	bus := &failing{bus: pb, fail: map[int]error{4: gone, 5: gone, 6: gone}}
	d := open(t, bus, 0x76, nil)
	for i := 0; i < 3; i++ {
		if _, err := d.Read(context.Background()); !errors.Is(err, gone) {
			t.Fatalf("read %d: err %v", i, err)
		}
	}
	if _, err := d.Read(context.Background()); err != nil {
		t.Fatalf("after the bus came back: %v", err)
	}
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestStuck(t *testing.T) {
	t.Run("reset value", func(t *testing.T) {
		ops := initOps(0x76, 0x58, example, 0, 0, 0x24)
		ops = append(ops, measureOps(0x76, 0x24, 0x80000, 0x80000, 0, false)...)
		ops = append(ops, initOps(0x76, 0x58, example, 0, 0, 0x24)...)
		ops = append(ops, measureOps(0x76, 0x24, 519888, 415148, 0, false)...)
		bus := &i2ctest.Playback{Ops: ops}
		d := open(t, bus, 0x76, nil)
		if _, err := d.Read(context.Background()); !errors.Is(err, ErrStuck) {
			t.Fatalf("err %v, want ErrStuck", err)
		}
		if _, err := d.Read(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := bus.Close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("repeated", func(t *testing.T) {
		ops := initOps(0x76, 0x58, example, 0, 0, 0x24)
		for i := 0; i < 3; i++ {
			ops = append(ops, measureOps(0x76, 0x24, 519888, 415148, 0, false)...)
		}
		bus := &i2ctest.Playback{Ops: ops}
		d := open(t, bus, 0x76, &Opts{StuckAfter: 2})
		for i := 0; i < 2; i++ {
			if _, err := d.Read(context.Background()); err != nil {
				t.Fatalf("read %d: %v", i, err)
			}
		}
		if _, err := d.Read(context.Background()); !errors.Is(err, ErrStuck) {
			t.Fatalf("err %v, want ErrStuck", err)
		}
	})
	t.Run("never finishes", func(t *testing.T) {
		ops := initOps(0x76, 0x58, example, 0, 0, 0x24)
		ops = append(ops, i2ctest.IO{Addr: 0x76, W: []byte{0xF4, 0x25}})
		for i := 0; i < 11; i++ {
			ops = append(ops, i2ctest.IO{Addr: 0x76, W: []byte{0xF3}, R: []byte{0x08}})
		}
		bus := &i2ctest.Playback{Ops: ops}
		d := open(t, bus, 0x76, nil)
		if _, err := d.Read(context.Background()); !errors.Is(err, ErrTimeout) {
			t.Fatalf("err %v, want ErrTimeout", err)
		}
	})
}

func TestBadOpts(t *testing.T) {
	bus := &i2ctest.Playback{}
	for _, c := range []struct {
		addr uint16
		o    Opts
	}{
		{0x99, Opts{}},
		{0x76, Opts{Temperature: 3}},
		{0x76, Opts{Humidity: 32}},
		{0x76, Opts{Filter: 5}},
		{0x76, Opts{Chip: 0x61}},
	} {
		if _, err := NewI2C(bus, c.addr, &c.o); err == nil {
			t.Errorf("0x%02X %+v: no error", c.addr, c.o)
		}
	}
	if _, err := NewI2C(nil, 0x76, nil); err == nil {
		t.Error("nil bus: no error")
	}
}

func TestCanceled(t *testing.T) {
	bus := &i2ctest.Playback{Ops: initOps(0x76, 0x58, example, 0, 0, 0x24)}
	d := open(t, bus, 0x76, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}
