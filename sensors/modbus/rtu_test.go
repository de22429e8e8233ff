package modbus_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/sensors/modbus"
)

// rtuLine starts pymodbus on one end of a socat pseudo-terminal pair, at
// 19200 baud 8N2 (a pseudo-terminal refuses parity), and returns the other
// end's path. Devices on it use rtu(...).
func rtuLine(t testing.TB) (*server, string) {
	client, srv := ptyPair(t)
	s := startServer(t, "rtu", srv, "19200")
	if s.line != "ready" {
		t.Fatalf("server.py said %q", s.line)
	}
	return s, client
}

// rtu is the options of a device on the test line.
func rtu(port string, unit int, timeout time.Duration, regs ...modbus.Register) modbus.Options {
	return modbus.Options{Serial: port, Parity: modbus.NoParity, UnitID: unit, Timeout: timeout, Registers: regs}
}

// Every type and order over RTU.
func TestRTUTypes(t *testing.T) {
	_, port := rtuLine(t)
	regs, _ := typeMap()
	d := open(t, rtu(port, 1, time.Second, regs...))
	checkTypes(t, d)
}

// Two unit ids on one line share the port: reads from both, at once, are
// serialized and each gets its own unit's values; a third, silent unit
// times out without taking their reads with it; an exception is one
// device's error.
func TestRTUSharedLine(t *testing.T) {
	_, port := rtuLine(t)
	regs, _ := typeMap()
	one := open(t, rtu(port, 1, time.Second, regs...))
	two := open(t, rtu(port, 2, time.Second, modbus.Register{Metric: "marker"}))
	silent := open(t, rtu(port, 9, 200*time.Millisecond, modbus.Register{Metric: "x"}))
	bad := open(t, rtu(port, 1, time.Second, modbus.Register{Metric: "x", Address: 1000}))

	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for _, d := range []*modbus.Dev{one, two, silent, bad} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 4; i++ {
				rs, err := d.Read(context.Background())
				switch d {
				case one:
					if err != nil || len(rs) != len(regs) || rs[1].Value != 54321 {
						errs <- errors.New("unit 1: " + errString(err))
					}
				case two:
					if err != nil || rs[0].Value != 7777 {
						errs <- errors.New("unit 2: " + errString(err))
					}
				case silent:
					if !errors.Is(err, modbus.ErrTimeout) || !strings.Contains(err.Error(), "unit 9") {
						errs <- errors.New("unit 9: want a timeout, got " + errString(err))
					}
				case bad:
					if !errors.Is(err, modbus.IllegalDataAddress) {
						errs <- errors.New("unit 1 at 1000: want illegal data address, got " + errString(err))
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkTypes(t, one)
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

// A server that stops answering on the line times out; once it answers
// again (with the replies to the requests it missed arriving late) the
// device reads good values by itself.
func TestRTUStopsAnswering(t *testing.T) {
	s, port := rtuLine(t)
	o := rtu(port, 2, 200*time.Millisecond, modbus.Register{Metric: "marker"})
	o.Retries = 1
	d := open(t, o)
	if _, err := d.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.stop(t)
	if _, err := d.Read(context.Background()); !errors.Is(err, modbus.ErrTimeout) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	s.resume(t)
	testkit.Eventually(t, "a good read after the server resumed", 10*time.Second, func() bool {
		rs, err := d.Read(context.Background())
		return err == nil && rs[0].Value == 7777
	})
}

// Devices on one serial line must agree on its settings.
func TestRTULineSettings(t *testing.T) {
	port := t.TempDir() + "/tty"
	open(t, modbus.Options{Serial: port, Registers: []modbus.Register{{Metric: "x"}}})
	_, err := modbus.Open(&modbus.Options{Serial: port, UnitID: 2, Baud: 9600, Registers: []modbus.Register{{Metric: "x"}}})
	if !errors.Is(err, modbus.ErrLineSettings) || !strings.Contains(err.Error(), "19200 baud") {
		t.Fatalf("err = %v, want ErrLineSettings", err)
	}
}

// A reply damaged on the line is a CRC error, named; with a retry the
// read succeeds; and the device reads well again by itself.
func TestRTUBadCRC(t *testing.T) {
	client, relayA := ptyPair(t)
	relayB, srv := ptyPair(t)
	startServer(t, "rtu", srv, "19200")
	dmg := &damage{}
	relay(t, relayA, relayB, 0, dmg)
	once := open(t, rtu(client, 2, time.Second, modbus.Register{Metric: "marker"}))
	o := rtu(client, 2, time.Second, modbus.Register{Metric: "marker2"})
	o.Retries = 1
	retried := open(t, o)
	if _, err := once.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	const replyLen = 7 // unit, function, byte count, one register, CRC
	dmg.arm(1, replyLen)
	_, err := once.Read(context.Background())
	if !errors.Is(err, modbus.ErrCRC) || !strings.Contains(err.Error(), "unit 2: holding_register 0-0: damaged reply (bad CRC)") {
		t.Fatalf("err = %v, want a bad CRC", err)
	}
	dmg.arm(1, replyLen)
	if rs, err := retried.Read(context.Background()); err != nil || rs[0].Value != 7777 {
		t.Fatalf("with a retry: %v, %v", rs, err)
	}
	if rs, err := once.Read(context.Background()); err != nil || rs[0].Value != 7777 {
		t.Fatalf("after the damage: %v, %v", rs, err)
	}
}
