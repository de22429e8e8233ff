package ads1x15

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"
)

// Config words below are assembled by hand from the datasheet's register
// description (SBAS444 table 8): OS | MUX[14:12] | PGA[11:9] | MODE | DR[7:5]
// | COMP_MODE | COMP_POL | COMP_LAT | COMP_QUE[1:0].
const (
	powerOn = 0x8583 // the datasheet's reset value

	// AIN0 single-ended (100), ±6.144 V (000), single-shot, 128/s (100),
	// comparator off (11): 1100 0001 1000 0011.
	cfgAIN0 = 0xC183
	// AIN0−AIN1 (000), ±2.048 V (010), single-shot, 860/s (111): 1000 0101
	// 1110 0011.
	cfgDiff01 = 0x85E3
	// ADS1015 AIN3 (111), ±4.096 V (001), single-shot, 1600/s (100): 1111
	// 0011 1000 0011.
	cfgAIN3 = 0xF383
)

func be(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }

func probe(addr uint16) i2ctest.IO {
	return i2ctest.IO{Addr: addr, W: []byte{0x01}, R: be(powerOn)}
}

// conversion is the transcript of one single-shot conversion: start, one
// busy poll, idle, the result.
func conversion(addr uint16, cfg uint16, result uint16) []i2ctest.IO {
	return []i2ctest.IO{
		{Addr: addr, W: []byte{0x01, byte(cfg >> 8), byte(cfg)}},
		{Addr: addr, W: []byte{0x01}, R: be(cfg &^ 0x8000)},
		{Addr: addr, W: []byte{0x01}, R: be(cfg)},
		{Addr: addr, W: []byte{0x00}, R: be(result)},
	}
}

func open(t *testing.T, bus i2c.Bus, addr uint16, o *Opts) *Dev {
	t.Helper()
	d, err := NewI2C(bus, addr, o)
	if err != nil {
		t.Fatal(err)
	}
	d.sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	return d
}

func TestChannels(t *testing.T) {
	// 12 mA through 250 Ω is 3.000 V = 16000 codes at ±6.144 V; 4–20 mA
	// maps to 0–10 bar, so 5 bar.
	ops := []i2ctest.IO{probe(0x48)}
	ops = append(ops, conversion(0x48, cfgAIN0, 16000)...)
	// −4096 codes at ±2.048 V is −0.256 V.
	ops = append(ops, conversion(0x48, cfgDiff01, 0xF000)...)
	bus := &i2ctest.Playback{Ops: ops}
	d := open(t, bus, 0x48, &Opts{Channels: []Channel{
		{Input: AIN0, FullScale: 6.144, ShuntOhms: 250, Scale: &Scale{From: [2]float64{4, 20}, To: [2]float64{0, 10}}, Metric: "line_pressure", Unit: "bar"},
		{Input: Diff01, DataRate: 860},
	}})
	rs, err := d.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 {
		t.Fatalf("readings %+v", rs)
	}
	if rs[0].Metric != "line_pressure" || rs[0].Unit != "bar" || math.Abs(rs[0].Value-5) > 1e-9 {
		t.Errorf("scaled channel: %+v, want line_pressure 5 bar", rs[0])
	}
	if rs[1].Metric != "ain0_1" || rs[1].Unit != "V" || math.Abs(rs[1].Value+0.256) > 1e-9 {
		t.Errorf("differential channel: %+v, want ain0_1 -0.256 V", rs[1])
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestADS1015(t *testing.T) {
	// 1000 codes, left-justified (0x3E80), at ±4.096 V over 2048 codes is
	// 2.000 V; through 100 Ω that is 20 mA.
	ops := append([]i2ctest.IO{probe(0x49)}, conversion(0x49, cfgAIN3, 0x3E80)...)
	bus := &i2ctest.Playback{Ops: ops}
	d := open(t, bus, 0x49, &Opts{Chip: ADS1015, Channels: []Channel{{Input: AIN3, FullScale: 4.096, ShuntOhms: 100}}})
	rs, err := d.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rs[0].Metric != "ain3" || rs[0].Unit != "mA" || math.Abs(rs[0].Value-20) > 1e-9 {
		t.Errorf("got %+v, want ain3 20 mA", rs[0])
	}
}

type failing struct {
	bus  i2c.Bus
	n    int
	fail map[int]error
}

func (f *failing) String() string { return "failing" }
func (f *failing) Tx(addr uint16, w, r []byte) error {
	n := f.n
	f.n++
	if err := f.fail[n]; err != nil {
		return err
	}
	return f.bus.Tx(addr, w, r)
}
func (f *failing) SetSpeed(physic.Frequency) error { return nil }

func TestFaults(t *testing.T) {
	one := &Opts{Channels: []Channel{{Input: AIN0, FullScale: 6.144}}}
	t.Run("nack then recovery", func(t *testing.T) {
		nack := errors.New("sysfs-i2c: remote I/O error")
		pb := &i2ctest.Playback{Ops: append([]i2ctest.IO{probe(0x48)}, conversion(0x48, cfgAIN0, 16000)...)}
		d := open(t, &failing{bus: pb, fail: map[int]error{1: nack}}, 0x48, one)
		if _, err := d.Read(context.Background()); !errors.Is(err, nack) {
			t.Fatalf("err %v", err)
		}
		rs, err := d.Read(context.Background())
		if err != nil || math.Abs(rs[0].Value-3) > 1e-9 {
			t.Fatalf("after recovery: %+v, %v", rs, err)
		}
	})
	t.Run("absent", func(t *testing.T) {
		nack := errors.New("sysfs-i2c: remote I/O error")
		if _, err := NewI2C(&failing{fail: map[int]error{0: nack}}, 0x48, one); !errors.Is(err, nack) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("power-cycled", func(t *testing.T) {
		bus := &i2ctest.Playback{Ops: []i2ctest.IO{
			probe(0x48),
			{Addr: 0x48, W: []byte{0x01, 0xC1, 0x83}},
			{Addr: 0x48, W: []byte{0x01}, R: be(powerOn)},
		}}
		d := open(t, bus, 0x48, one)
		if _, err := d.Read(context.Background()); !errors.Is(err, ErrReset) {
			t.Fatalf("err %v, want ErrReset", err)
		}
	})
	t.Run("never finishes", func(t *testing.T) {
		ops := []i2ctest.IO{probe(0x48), {Addr: 0x48, W: []byte{0x01, 0xC1, 0x83}}}
		for i := 0; i < 11; i++ {
			ops = append(ops, i2ctest.IO{Addr: 0x48, W: []byte{0x01}, R: be(cfgAIN0 &^ 0x8000)})
		}
		d := open(t, &i2ctest.Playback{Ops: ops}, 0x48, one)
		if _, err := d.Read(context.Background()); !errors.Is(err, ErrTimeout) {
			t.Fatalf("err %v, want ErrTimeout", err)
		}
	})
	t.Run("saturated", func(t *testing.T) {
		bus := &i2ctest.Playback{Ops: append([]i2ctest.IO{probe(0x48)}, conversion(0x48, cfgAIN0, 0x7FFF)...)}
		d := open(t, bus, 0x48, one)
		if _, err := d.Read(context.Background()); !errors.Is(err, ErrSaturated) {
			t.Fatalf("err %v, want ErrSaturated", err)
		}
	})
}

func TestBadOpts(t *testing.T) {
	bus := &i2ctest.Playback{}
	ch := func(c Channel) *Opts { return &Opts{Channels: []Channel{c}} }
	for name, c := range map[string]struct {
		addr uint16
		o    *Opts
	}{
		"address":      {0x47, ch(Channel{})},
		"no channels":  {0x48, &Opts{}},
		"full scale":   {0x48, ch(Channel{FullScale: 3})},
		"data rate":    {0x48, ch(Channel{DataRate: 100})},
		"1015 rate":    {0x48, &Opts{Chip: ADS1015, Channels: []Channel{{DataRate: 860}}}},
		"input":        {0x48, ch(Channel{Input: 8})},
		"shunt":        {0x48, ch(Channel{ShuntOhms: -1})},
		"scale unit":   {0x48, ch(Channel{Scale: &Scale{From: [2]float64{4, 20}, To: [2]float64{0, 10}}})},
		"empty scale":  {0x48, ch(Channel{Unit: "bar", Scale: &Scale{From: [2]float64{4, 4}, To: [2]float64{0, 10}}})},
		"metric twice": {0x48, &Opts{Channels: []Channel{{Input: AIN0}, {Input: AIN0}}}},
		"unknown chip": {0x48, &Opts{Chip: 7, Channels: []Channel{{}}}},
	} {
		if _, err := NewI2C(bus, c.addr, c.o); err == nil {
			t.Errorf("%s: no error", name)
		} else if err.Error()[:8] != "ads1x15:" {
			t.Errorf("%s: %q lacks the package prefix", name, err)
		}
	}
	for _, s := range []string{"0-2", "4", "", "a"} {
		if _, err := ParseInput(s); err == nil {
			t.Errorf("ParseInput(%q): no error", s)
		}
	}
	for s, want := range map[string]Input{"0": AIN0, "3": AIN3, "0-1": Diff01, "2-3": Diff23} {
		if got, err := ParseInput(s); err != nil || got != want {
			t.Errorf("ParseInput(%q) = %v, %v", s, got, err)
		}
	}
}
