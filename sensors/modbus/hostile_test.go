package modbus_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/sensors/modbus"
)

// hostileServer is a Modbus TCP server that answers each request with
// what reply returns for its MBAP header and PDU (nil: no answer) and
// then closes the connection if reply says so. It counts connections.
type hostileServer struct {
	addr string

	mu       sync.Mutex
	accepted int
}

func startHostile(t *testing.T, reply func(hdr, pdu []byte) (out []byte, hangUp bool)) *hostileServer {
	t.Helper()
	ln, addr := testkit.ListenAddr(t)
	s := &hostileServer{addr: addr}
	var wg sync.WaitGroup
	conns := map[net.Conn]bool{}
	var connsMu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for c, err := ln.Accept(); err == nil; c, err = ln.Accept() {
			s.mu.Lock()
			s.accepted++
			s.mu.Unlock()
			connsMu.Lock()
			conns[c] = true
			connsMu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				for {
					hdr := make([]byte, 7)
					if _, err := io.ReadFull(c, hdr); err != nil {
						return
					}
					pdu := make([]byte, int(binary.BigEndian.Uint16(hdr[4:6]))-1)
					if _, err := io.ReadFull(c, pdu); err != nil {
						return
					}
					out, hangUp := reply(hdr, pdu)
					if len(out) > 0 {
						if _, err := c.Write(out); err != nil {
							return
						}
					}
					if hangUp {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		connsMu.Lock()
		for c := range conns {
			c.Close()
		}
		connsMu.Unlock()
		wg.Wait()
	})
	return s
}

func (s *hostileServer) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// frame builds an MBAP frame: txn, unit, then the PDU.
func frame(txn uint16, unit byte, pdu ...byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, txn)
	b = append(b, 0, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(1+len(pdu)))
	b = append(b, unit)
	return append(b, pdu...)
}

// goodPDU is the reply to a read of one holding register: the value 7.
var goodPDU = []byte{3, 2, 0, 7}

// Hostile and broken TCP servers: every misbehaviour ends the read within
// the request timeout times the attempts, with the error that names it,
// and the device reads well again once the server behaves.
func TestTCPHostileServers(t *testing.T) {
	const timeout = 150 * time.Millisecond
	for _, tc := range []struct {
		name    string
		reply   func(hdr, pdu []byte) ([]byte, bool)
		want    error  // errors.Is target, or nil to check only that it fails
		text    string // or a substring of the error
		minTime time.Duration
	}{
		{name: "silent", reply: func(h, p []byte) ([]byte, bool) { return nil, false },
			want: modbus.ErrTimeout, minTime: 2 * timeout},
		{name: "wrong transaction id", reply: func(h, p []byte) ([]byte, bool) {
			return frame(binary.BigEndian.Uint16(h)+1, h[6], goodPDU...), false
		}, want: modbus.ErrTimeout, minTime: 2 * timeout},
		{name: "endless replies to other transactions", reply: func(h, p []byte) ([]byte, bool) {
			var out []byte
			for i := range 2000 {
				out = append(out, frame(binary.BigEndian.Uint16(h)+1+uint16(i), h[6], goodPDU...)...)
			}
			return out, false
		}, want: modbus.ErrTimeout},
		{name: "wrong unit id", reply: func(h, p []byte) ([]byte, bool) {
			return frame(binary.BigEndian.Uint16(h), h[6]+1, goodPDU...), false
		}, want: modbus.ErrFrame},
		{name: "wrong function code", reply: func(h, p []byte) ([]byte, bool) {
			return frame(binary.BigEndian.Uint16(h), h[6], 4, 2, 0, 7), false
		}, want: modbus.ErrFrame},
		{name: "byte count disagrees", reply: func(h, p []byte) ([]byte, bool) {
			return frame(binary.BigEndian.Uint16(h), h[6], 3, 4, 0, 7), false
		}, want: modbus.ErrFrame},
		{name: "too few registers", reply: func(h, p []byte) ([]byte, bool) {
			return frame(binary.BigEndian.Uint16(h), h[6], 3, 0), false
		}, want: modbus.ErrFrame},
		{name: "length over the protocol's frame", reply: func(h, p []byte) ([]byte, bool) {
			f := frame(binary.BigEndian.Uint16(h), h[6], goodPDU...)
			binary.BigEndian.PutUint16(f[4:6], 0xffff)
			return f, false
		}, want: modbus.ErrFrame},
		{name: "short frame", reply: func(h, p []byte) ([]byte, bool) {
			f := frame(binary.BigEndian.Uint16(h), h[6], goodPDU...)
			return f[:len(f)-1], false
		}, want: modbus.ErrTimeout},
		{name: "closes mid-reply", reply: func(h, p []byte) ([]byte, bool) {
			f := frame(binary.BigEndian.Uint16(h), h[6], goodPDU...)
			return f[:9], true
		}, text: "EOF"},
		{name: "closes without a reply", reply: func(h, p []byte) ([]byte, bool) { return nil, true }, text: "EOF"},
		{name: "exception", reply: func(h, p []byte) ([]byte, bool) {
			return frame(binary.BigEndian.Uint16(h), h[6], 0x83, 2), false
		}, want: modbus.IllegalDataAddress},
		{name: "unknown exception", reply: func(h, p []byte) ([]byte, bool) {
			return frame(binary.BigEndian.Uint16(h), h[6], 0x83, 0x42), false
		}, text: "exception"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			hostile := true
			s := startHostile(t, func(h, p []byte) ([]byte, bool) {
				mu.Lock()
				defer mu.Unlock()
				if hostile {
					return tc.reply(h, p)
				}
				return frame(binary.BigEndian.Uint16(h), h[6], goodPDU...), false
			})
			d := open(t, modbus.Options{TCP: s.addr, Timeout: timeout, Retries: 1, Registers: []modbus.Register{{Metric: "x"}}})
			start := time.Now()
			_, err := d.Read(context.Background())
			took := time.Since(start)
			t.Logf("%v after %v", err, took)
			switch {
			case err == nil:
				t.Fatal("read succeeded")
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Errorf("err = %v, want %v", err, tc.want)
			case tc.text != "" && !contains(err.Error(), tc.text):
				t.Errorf("err = %v, want it to say %q", err, tc.text)
			}
			// Two attempts of one request, and a second connection's
			// dial: well under a second either way.
			if took < tc.minTime || took > 2*timeout+time.Second {
				t.Errorf("failed after %v; want %v to %v", took, tc.minTime, 2*timeout+time.Second)
			}
			mu.Lock()
			hostile = false
			mu.Unlock()
			rs, err := d.Read(context.Background())
			if err != nil || rs[0].Value != 7 {
				t.Fatalf("after the server behaves: %v, %v", rs, err)
			}
		})
	}
}

// A device that answers each request just under its timeout holds the
// line one request at a time: the line is handed over in turn, so another
// device on it waits for one of the slow device's requests, not for its
// whole read, at every read.
func TestTCPSlowDeviceTakesTurns(t *testing.T) {
	const slow = 200 * time.Millisecond
	aOnLine := make(chan struct{})
	var once sync.Once
	var aAnswered atomic.Int64 // the slow device's requests answered
	s := startHostile(t, func(h, p []byte) ([]byte, bool) {
		if h[6] == 1 {
			once.Do(func() { close(aOnLine) })
			time.Sleep(slow) // the slow device's own latency
			aAnswered.Add(1)
		}
		return frame(binary.BigEndian.Uint16(h), h[6], goodPDU...), false
	})
	var regs []modbus.Register
	for i := range 5 { // gaps: five requests a read
		regs = append(regs, modbus.Register{Metric: string(rune('a' + i)), Address: 10 * i})
	}
	// Timeouts far above the latency: the test is about turns, and a
	// loaded machine must not make the slow device time out.
	a := open(t, modbus.Options{TCP: s.addr, UnitID: 1, Timeout: slow + 10*time.Second, Registers: regs})
	b := open(t, modbus.Options{TCP: s.addr, UnitID: 2, Timeout: slow + 10*time.Second, Registers: []modbus.Register{{Metric: "x"}}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if _, err := a.Read(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("slow device: %v", err)
			}
		}
	}()
	defer wg.Wait()
	defer cancel()
	<-aOnLine
	for i := range 5 {
		before := aAnswered.Load()
		if _, err := b.Read(context.Background()); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		// One slow request to wait for (the one on the line), not the
		// rest of the slow device's read (five requests): counted, not
		// timed, so that a loaded machine cannot fail it.
		if n := aAnswered.Load() - before; n > 2 {
			t.Errorf("read %d waited for %d of the slow device's requests, want at most 2 (the one on the line, and one begun as it read)", i, n)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
