package modbus_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/sensors"
	"github.com/floorhub/floorhub/sensors/modbus"
)

// typeMap is every data type in every byte and word order, as
// testdata/server.py lays them out for unit 1, with the values it holds.
func typeMap() ([]modbus.Register, []float64) {
	var regs []modbus.Register
	var want []float64
	add := func(r modbus.Register, v float64) {
		regs = append(regs, r)
		want = append(want, v)
	}
	orders := []struct {
		name       string
		byte, word bool
	}{{"abcd", false, false}, {"badc", true, false}, {"cdab", false, true}, {"dcba", true, true}}
	for k, o := range orders[:2] {
		add(modbus.Register{Metric: "int16_" + o.name, Address: 0 + k, Type: modbus.Int16, ByteSwap: o.byte}, -1234)
		add(modbus.Register{Metric: "uint16_" + o.name, Address: 2 + k, Type: modbus.Uint16, ByteSwap: o.byte}, 54321)
	}
	for k, o := range orders {
		add(modbus.Register{Metric: "int32_" + o.name, Address: 10 + 2*k, Type: modbus.Int32, ByteSwap: o.byte, WordSwap: o.word}, -123456789)
		add(modbus.Register{Metric: "uint32_" + o.name, Address: 20 + 2*k, Type: modbus.Uint32, ByteSwap: o.byte, WordSwap: o.word}, 3000000000)
		add(modbus.Register{Metric: "float32_" + o.name, Address: 30 + 2*k, Type: modbus.Float32, ByteSwap: o.byte, WordSwap: o.word}, -1234.5)
		add(modbus.Register{Metric: "float64_" + o.name, Address: 40 + 4*k, Type: modbus.Float64, ByteSwap: o.byte, WordSwap: o.word}, 12345.678901)
	}
	add(modbus.Register{Metric: "scaled", Unit: "bar", Table: modbus.InputRegister, Address: 0, Scale: 0.1, Offset: -1}, 3.2)
	add(modbus.Register{Metric: "coil0", Table: modbus.Coil, Address: 0}, 1)
	add(modbus.Register{Metric: "coil1", Table: modbus.Coil, Address: 1, Type: modbus.Bool}, 0)
	add(modbus.Register{Metric: "coil2", Table: modbus.Coil, Address: 2}, 1)
	add(modbus.Register{Metric: "di0", Table: modbus.DiscreteInput, Address: 0}, 0)
	add(modbus.Register{Metric: "di1", Table: modbus.DiscreteInput, Address: 1}, 1)
	return regs, want
}

func open(t testing.TB, o modbus.Options) *modbus.Dev {
	t.Helper()
	d, err := modbus.Open(&o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func checkTypes(t *testing.T, d *modbus.Dev) {
	t.Helper()
	regs, want := typeMap()
	rs, err := d.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != len(want) {
		t.Fatalf("%d readings, want %d", len(rs), len(want))
	}
	for i, r := range rs {
		if r.Metric != regs[i].Metric || math.Abs(r.Value-want[i]) > 1e-9*math.Max(1, math.Abs(want[i])) {
			t.Errorf("reading %d: %s = %v, want %s = %v", i, r.Metric, r.Value, regs[i].Metric, want[i])
		}
	}
	if rs[len(rs)-6].Unit != "bar" {
		t.Errorf("unit %q, want bar", rs[len(rs)-6].Unit)
	}
}

// Every type and order over TCP, read in the fewest requests.
func TestTCPTypes(t *testing.T) {
	_, addr := tcpServer(t)
	regs, _ := typeMap()
	d := open(t, modbus.Options{TCP: addr, Timeout: 2 * time.Second, Registers: regs})
	// Holding 0-3, 10-17, 20-27, 30-37, 40-55; input 0; coils 0-2; discrete 0-1.
	if d.Requests() != 8 {
		t.Errorf("%d requests, want 8", d.Requests())
	}
	checkTypes(t, d)
}

// An exception is the read's error, named; the device then reads again.
func TestTCPException(t *testing.T) {
	_, addr := tcpServer(t)
	bad := open(t, modbus.Options{TCP: addr, Timeout: 2 * time.Second, Registers: []modbus.Register{{Metric: "x", Address: 1000}}})
	good := open(t, modbus.Options{TCP: addr, Timeout: 2 * time.Second, Registers: []modbus.Register{{Metric: "x", Address: 2}}})
	_, err := bad.Read(context.Background())
	if !errors.Is(err, modbus.IllegalDataAddress) || !strings.Contains(err.Error(), "illegal data address") || !strings.Contains(err.Error(), "holding_register 1000-1000") {
		t.Fatalf("err = %v, want illegal data address at holding_register 1000", err)
	}
	rs, err := good.Read(context.Background())
	if err != nil || rs[0].Value != 54321 {
		t.Fatalf("the other device on the line: %v, %v", rs, err)
	}
}

// A unit id the server does not have: pymodbus drops the request, as a
// serial line would (a TCP gateway may instead answer "gateway target
// device failed to respond"): a timeout. The right unit on the same
// connection is unaffected.
func TestTCPWrongUnit(t *testing.T) {
	_, addr := tcpServer(t)
	wrong := open(t, modbus.Options{TCP: addr, UnitID: 9, Timeout: 300 * time.Millisecond, Registers: []modbus.Register{{Metric: "x"}}})
	two := open(t, modbus.Options{TCP: addr, UnitID: 2, Timeout: 300 * time.Millisecond, Registers: []modbus.Register{{Metric: "x"}}})
	_, err := wrong.Read(context.Background())
	if !errors.Is(err, modbus.ErrTimeout) || !strings.Contains(err.Error(), "unit 9") {
		t.Fatalf("err = %v, want unit 9: no reply", err)
	}
	rs, err := two.Read(context.Background())
	if err != nil || rs[0].Value != 7777 {
		t.Fatalf("unit 2: %v, %v", rs, err)
	}
}

// A server that stops answering times out (after the retries), and the
// device reads again by itself once it answers.
func TestTCPStopsAnswering(t *testing.T) {
	s, addr := tcpServer(t)
	d := open(t, modbus.Options{TCP: addr, Timeout: 200 * time.Millisecond, Retries: 1, Registers: []modbus.Register{{Metric: "x", Address: 2}}})
	if _, err := d.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.stop(t)
	start := time.Now()
	_, err := d.Read(context.Background())
	if !errors.Is(err, modbus.ErrTimeout) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if e := time.Since(start); e < 400*time.Millisecond {
		t.Errorf("failed after %v: the retry was not made", e)
	}
	s.resume(t)
	var rs []sensors.Reading
	testkit.Eventually(t, "a good read after the server resumed", 10*time.Second, func() bool {
		rs, err = d.Read(context.Background())
		return err == nil
	})
	if rs[0].Value != 54321 {
		t.Fatalf("read %v", rs)
	}
}

// A Read gives up waiting for a busy line when its context ends.
func TestReadContext(t *testing.T) {
	s, addr := tcpServer(t)
	slow := open(t, modbus.Options{TCP: addr, Timeout: 5 * time.Second, Registers: []modbus.Register{{Metric: "x"}}})
	other := open(t, modbus.Options{TCP: addr, Timeout: 5 * time.Second, UnitID: 2, Registers: []modbus.Register{{Metric: "x"}}})
	if _, err := slow.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.stop(t)
	done := make(chan error, 1)
	go func() { _, err := slow.Read(context.Background()); done <- err }()
	// other waits for the line that slow holds, and gives up at its deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	testkit.Eventually(t, "slow on the line", 5*time.Second, func() bool {
		_, err := other.Read(ctx)
		return errors.Is(err, context.DeadlineExceeded)
	})
	s.resume(t)
	<-done
}

// A server that closes an idle connection (as many do after a minute or
// so) costs no failed read: the next request finds the connection gone
// and is sent again on a new one.
func TestTCPIdleClose(t *testing.T) {
	_, addr := tcpServer(t)
	p := newProxy(t, addr)
	d := open(t, modbus.Options{TCP: p.addr, Timeout: 2 * time.Second, Registers: []modbus.Register{{Metric: "x", Address: 2}}})
	for i := 0; i < 3; i++ {
		if rs, err := d.Read(context.Background()); err != nil || rs[0].Value != 54321 {
			t.Fatalf("read %d: %v, %v", i, rs, err)
		}
		p.drop()
	}
	if n := p.accepted(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

// Devices on one TCP server with different timeouts each get theirs.
func TestTCPTimeouts(t *testing.T) {
	s, addr := tcpServer(t)
	short := open(t, modbus.Options{TCP: addr, Timeout: 100 * time.Millisecond, Registers: []modbus.Register{{Metric: "x"}}})
	long := open(t, modbus.Options{TCP: addr, Timeout: 1500 * time.Millisecond, Registers: []modbus.Register{{Metric: "x"}}})
	s.stop(t)
	for _, c := range []struct {
		d        *modbus.Dev
		min, max time.Duration
	}{{short, 100 * time.Millisecond, time.Second}, {long, 1500 * time.Millisecond, 10 * time.Second}} {
		start := time.Now()
		_, err := c.d.Read(context.Background())
		if e := time.Since(start); !errors.Is(err, modbus.ErrTimeout) || e < c.min || e > c.max {
			t.Errorf("timed out after %v (%v); want %v to %v", e, err, c.min, c.max)
		}
	}
}
