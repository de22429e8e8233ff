package ds2482

import (
	"context"
	"errors"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/onewire"
)

// Transcript pieces, from the datasheet's command descriptions. The status
// register bits: 1WB 0x01, PPD 0x02, SD 0x04, LL 0x08, RST 0x10, SBR 0x20,
// TSB 0x40, DIR 0x80.
const addr = 0x18

func deviceReset() i2ctest.IO { return i2ctest.IO{Addr: addr, W: []byte{0xF0}, R: []byte{0x18}} }

// config: the low nibble and its one's complement in the high nibble; the
// chip reads back the low nibble.
func config(c byte) i2ctest.IO {
	return i2ctest.IO{Addr: addr, W: []byte{0xD2, c | (^c)<<4}, R: []byte{c}}
}

func status(s byte) i2ctest.IO { return i2ctest.IO{Addr: addr, R: []byte{s}} }

// owReset is the 1-Wire reset that opens every transaction: busy once,
// then done with the given status.
func owReset(st byte) []i2ctest.IO {
	return []i2ctest.IO{{Addr: addr, W: []byte{0xB4}}, status(0x01), status(st)}
}

func writeByte(b byte) []i2ctest.IO {
	return []i2ctest.IO{{Addr: addr, W: []byte{0xA5, b}}, status(0x01), status(0x08)}
}

func readByte(v byte) []i2ctest.IO {
	return []i2ctest.IO{{Addr: addr, W: []byte{0x96}}, status(0x08),
		{Addr: addr, W: []byte{0xE1, 0xE1}, R: []byte{v}}}
}

func cat(parts ...[]i2ctest.IO) []i2ctest.IO {
	var out []i2ctest.IO
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestTx(t *testing.T) {
	bus := &i2ctest.Playback{Ops: cat(
		[]i2ctest.IO{deviceReset(), config(0x01)}, // active pull-up
		owReset(0x0A), // presence, line high
		writeByte(0xCC), writeByte(0xBE),
		readByte(0x50), readByte(0x05),
	)}
	d, err := New(bus, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := make([]byte, 2)
	if err := d.Tx([]byte{0xCC, 0xBE}, r, onewire.WeakPullup); err != nil {
		t.Fatal(err)
	}
	if r[0] != 0x50 || r[1] != 0x05 {
		t.Fatalf("read % X", r)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestStrongPullup(t *testing.T) {
	// The strong pull-up (SPU 0x04) is armed just before the last byte.
	bus := &i2ctest.Playback{Ops: cat(
		[]i2ctest.IO{deviceReset(), config(0x01)},
		owReset(0x0A), writeByte(0xCC),
		[]i2ctest.IO{config(0x05)}, writeByte(0x44),
	)}
	d, err := New(bus, 0x18, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Tx([]byte{0xCC, 0x44}, nil, onewire.StrongPullup); err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestLineFaults(t *testing.T) {
	bus := &i2ctest.Playback{Ops: cat(
		[]i2ctest.IO{deviceReset(), config(0x00)},
		owReset(0x08), // no presence pulse
		owReset(0x0E), // short detected
	)}
	d, err := New(bus, 0x18, &Opts{PassivePullup: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Tx([]byte{0xCC}, nil, onewire.WeakPullup); !errors.Is(err, ErrNoPresence) {
		t.Errorf("err %v, want ErrNoPresence", err)
	}
	if err := d.Tx([]byte{0xCC}, nil, onewire.WeakPullup); !errors.Is(err, ErrShorted) {
		t.Errorf("err %v, want ErrShorted", err)
	}
}

func TestStuckBusy(t *testing.T) {
	ops := []i2ctest.IO{deviceReset(), config(0x01), {Addr: addr, W: []byte{0xB4}}}
	for i := 0; i < maxPolls; i++ {
		ops = append(ops, status(0x01))
	}
	d, err := New(&i2ctest.Playback{Ops: ops}, 0x18, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Tx(nil, nil, onewire.WeakPullup); !errors.Is(err, ErrBusy) {
		t.Errorf("err %v, want ErrBusy", err)
	}
}

func TestNotABridge(t *testing.T) {
	// An MCP9808 temperature sensor also lives at 0x18; it does not set RST.
	bus := &i2ctest.Playback{Ops: []i2ctest.IO{{Addr: addr, W: []byte{0xF0}, R: []byte{0x00}}}}
	if _, err := New(bus, 0x18, nil); !errors.Is(err, ErrNotBridge) {
		t.Fatalf("err %v, want ErrNotBridge", err)
	}
	if _, err := New(bus, 0x20, nil); err == nil {
		t.Fatal("address 0x20 accepted")
	}
}

func TestSearchOneDevice(t *testing.T) {
	// A DS18B20's ROM: family 0x28, serial, CRC in the top byte.
	rom := onewire.Address(0x0000075e6b1a28)
	b := make([]byte, 7)
	for i := range b {
		b[i] = byte(rom >> (8 * i))
	}
	rom |= onewire.Address(onewire.CalcCRC(b)) << 56
	ops := cat([]i2ctest.IO{deviceReset(), config(0x01)}, owReset(0x0A), writeByte(0xF0))
	for bit := 0; bit < 64; bit++ {
		// One device: it sends its bit and the complement; the bridge
		// takes the bit's direction. Search asks for 0 at every bit.
		v := byte(rom>>bit) & 1
		st := v<<5 | (1-v)<<6 | v<<7
		ops = append(ops, i2ctest.IO{Addr: addr, W: []byte{0x78, 0x00}}, status(st|0x01), status(st))
	}
	bus := &i2ctest.Playback{Ops: ops}
	d, err := New(bus, 0x18, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Search(false)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != rom {
		t.Fatalf("found %x, want %x", got, rom)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRecoversAfterI2CError(t *testing.T) {
	// The bridge vanishes (the playback runs dry: every transaction
	// fails), then comes back power-cycled: the next Tx resets and
	// configures it before the 1-Wire reset.
	pb := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{deviceReset(), config(0x01)}}
	d, err := New(pb, 0x18, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Tx([]byte{0xCC}, nil, onewire.WeakPullup); err == nil {
		t.Fatal("Tx on a vanished bridge succeeded")
	}
	pb.Lock()
	pb.Ops = append(pb.Ops, cat([]i2ctest.IO{deviceReset(), config(0x01)}, owReset(0x0A), writeByte(0xCC))...)
	pb.Unlock()
	if err := d.Tx([]byte{0xCC}, nil, onewire.WeakPullup); err != nil {
		t.Fatalf("after the bridge came back: %v", err)
	}
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestLockBusHonoursDeadline(t *testing.T) {
	d, err := New(&i2ctest.Playback{Ops: []i2ctest.IO{deviceReset(), config(0x01)}}, 0x18, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.LockBus(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := d.LockBus(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second LockBus: %v, want the deadline", err)
	}
	d.UnlockBus()
	if err := d.LockBus(context.Background()); err != nil {
		t.Fatalf("after UnlockBus: %v", err)
	}
	d.UnlockBus()
}
