package modbus_test

import (
	"context"
	"testing"
	"time"

	"github.com/floorhub/floorhub/sensors/modbus"
)

// inputs is n input registers from address 0, every step-th one.
func inputs(n, step int) []modbus.Register {
	regs := make([]modbus.Register, n)
	for i := range regs {
		regs[i] = modbus.Register{Metric: "r" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Table: modbus.InputRegister, Address: i * step}
	}
	return regs
}

func benchRead(b *testing.B, d *modbus.Dev, regs int) {
	b.Helper()
	ctx := context.Background()
	if _, err := d.Read(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := d.Read(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(regs*b.N)/b.Elapsed().Seconds(), "regs/s")
	b.ReportMetric(float64(d.Requests()), "requests/read")
}

// One TCP device (pymodbus on loopback): 125 contiguous input registers,
// one request a read, against the same 125 registers with a gap between
// each two, 125 requests a read.
func BenchmarkTCP(b *testing.B) {
	_, addr := tcpServer(b)
	for _, c := range []struct {
		name string
		step int
	}{{"contiguous", 1}, {"scattered", 2}} {
		b.Run(c.name, func(b *testing.B) {
			benchRead(b, open(b, modbus.Options{TCP: addr, Timeout: 2 * time.Second, Registers: inputs(125, c.step)}), 125)
		})
	}
}

// baud is the emulated RS-485 line's speed.
const baud = 19200

// charTime is one character on the line: start bit, 8 data bits, parity
// (or a second stop bit) and a stop bit, 11 bits (Serial Line §2.5.1).
const charTime = 11 * time.Second / baud

// rtuLimit is the most registers a second one line at baud can carry
// with requests of n registers (function 04): the request is 8
// characters (unit, function, address, quantity, CRC), the reply 5 + 2n
// (unit, function, byte count, data, CRC), and each frame is followed by
// a silence of 3.5 characters. The device's own turnaround is not counted.
func rtuLimit(n int) float64 {
	chars := 8 + 3.5 + 5 + 2*float64(n) + 3.5
	return float64(n) / (chars * charTime.Seconds())
}

// One RTU line at 19,200 baud: 125 contiguous input registers, one request
// a read. Pseudo-terminals pass bytes at any speed, so the client's socat
// pair and the server's are joined by a relay that delivers each byte one
// character time after the previous one, in either direction (RS-485 is
// half duplex): a 19,200-baud line. The limit for the same request size
// is reported beside it, and the ratio.
func BenchmarkRTU19200(b *testing.B) {
	client, relayA := ptyPair(b)
	relayB, srv := ptyPair(b)
	startServer(b, "rtu", srv, "19200")
	relay(b, relayA, relayB, charTime, nil)
	for _, n := range []int{125, 10} {
		b.Run(map[int]string{125: "125-per-request", 10: "10-per-request"}[n], func(b *testing.B) {
			d := open(b, modbus.Options{Serial: client, Parity: modbus.NoParity, Timeout: time.Second, Registers: inputs(n, 1)})
			benchRead(b, d, n)
			got := float64(n*b.N) / b.Elapsed().Seconds()
			b.ReportMetric(rtuLimit(n), "limit-regs/s")
			b.ReportMetric(got/rtuLimit(n), "of-limit")
		})
	}
}
