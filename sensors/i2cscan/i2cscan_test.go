package i2cscan

import (
	"context"
	"testing"

	"periph.io/x/conn/v3/i2c/i2ctest"
)

// A playback that errors on anything unexpected behaves like a bus where
// only the listed devices acknowledge: every other address NACKs.
func TestScan(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x18, R: []byte{0}}, {Addr: 0x18, W: []byte{0xF0}, R: []byte{0x18}},
		{Addr: 0x19, R: []byte{0}}, {Addr: 0x19, W: []byte{0xF0}, R: []byte{0x00}},
		{Addr: 0x3C, R: []byte{0}},
		{Addr: 0x48, R: []byte{0}}, {Addr: 0x48, W: []byte{0x01}, R: []byte{0x85, 0x83}},
		{Addr: 0x49, R: []byte{0}}, {Addr: 0x49, W: []byte{0x01}, R: []byte{0xC1, 0x83}},
		{Addr: 0x4A, R: []byte{0}}, {Addr: 0x4A, W: []byte{0x01}, R: []byte{0x60, 0xA0}},
		{Addr: 0x61, R: []byte{0}},
		{Addr: 0x76, R: []byte{0}}, {Addr: 0x76, W: []byte{0xD0}, R: []byte{0x60}},
		{Addr: 0x77, R: []byte{0}}, {Addr: 0x77, W: []byte{0xD0}, R: []byte{0x58}},
	}}
	got, err := Scan(context.Background(), bus, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		addr uint16
		chip string
	}{{0x18, "DS2482-100"}, {0x19, ""}, {0x3C, ""}, {0x48, "ADS1115/ADS1015"}, {0x49, "ADS1115/ADS1015"},
		{0x4A, ""}, {0x61, ""}, {0x76, "BME280"}, {0x77, "BMP280"}}
	if len(got) != len(want) {
		t.Fatalf("found %+v", got)
	}
	for i, w := range want {
		if got[i].Addr != w.addr || got[i].Chip != w.chip {
			t.Errorf("#%d: %+v, want 0x%02X %q", i, got[i], w.addr, w.chip)
		}
		t.Logf("0x%02X %-16s %s", got[i].Addr, got[i].Chip, got[i].Detail)
	}
	if got[2].Detail == "" {
		t.Error("no hint for 0x3C")
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestScanRangeAndCancel(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{{Addr: 0x20, R: []byte{0}}}}
	got, err := Scan(context.Background(), bus, &Opts{First: 0x20, Last: 0x20})
	if err != nil || len(got) != 1 || got[0].Addr != 0x20 {
		t.Fatalf("%+v, %v", got, err)
	}
	if _, err := Scan(context.Background(), bus, &Opts{First: 0x30, Last: 0x20}); err == nil {
		t.Error("reversed range accepted")
	}
	if _, err := Scan(context.Background(), bus, &Opts{Last: 0x80}); err == nil {
		t.Error("10-bit range accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Scan(ctx, bus, nil); err == nil {
		t.Error("canceled scan succeeded")
	}
	if _, err := Scan(context.Background(), nil, nil); err == nil {
		t.Error("nil bus accepted")
	}
}
