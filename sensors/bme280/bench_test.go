package bme280

import (
	"context"
	"testing"

	"periph.io/x/conn/v3/i2c/i2ctest"
)

// BenchmarkSense is one forced measurement with compensation, against a
// replayed bus; compare with BenchmarkTxBaseline, the same transactions
// issued straight on the bus, for the driver's own cost.
func BenchmarkSense(b *testing.B) {
	init := initOps(0x77, 0x60, example, 1, 0, 0x24)
	bus := &i2ctest.Playback{Ops: append(init, measureOps(0x77, 0x24, 519888, 415148, 30000, true)...)}
	d, err := NewI2C(bus, 0x77, nil)
	if err != nil {
		b.Fatal(err)
	}
	noWait(d)
	d.opts.StuckAfter = -1 // the replay repeats one raw value
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		bus.Count = len(init)
		if _, err := d.Sense(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTxBaseline(b *testing.B) {
	ops := measureOps(0x77, 0x24, 519888, 415148, 30000, true)
	bus := &i2ctest.Playback{Ops: ops}
	bufs := make([][]byte, len(ops))
	for i, o := range ops {
		bufs[i] = make([]byte, len(o.R))
	}
	b.ReportAllocs()
	for b.Loop() {
		bus.Count = 0
		for i, o := range ops {
			if err := bus.Tx(o.Addr, o.W, bufs[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
}
