package modbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"syscall"
	"time"

	mb "github.com/simonvetter/modbus"

	"github.com/floorhub/floorhub/sensors"
)

// Errors a Read can fail with besides an Exception and the line's own I/O
// errors (a refused connection, a vanished serial adapter). Read wraps
// them all as "modbus: unit N: <table> <first>-<last>: <error>", so the
// three below have no prefix of their own.
var (
	// ErrTimeout means no reply came within the timeout: the device is
	// off, unplugged, on another unit id, baud rate or parity, or A and B
	// are swapped.
	ErrTimeout = errors.New("no reply (timeout)")
	// ErrCRC means a reply came damaged: noise, a missing termination, a
	// floating line (no biasing) or two devices answering at once.
	ErrCRC = errors.New("damaged reply (bad CRC)")
	// ErrFrame means a reply that is not a valid answer to the request:
	// a short frame, another unit id, another transaction.
	ErrFrame = errors.New("malformed reply")
	// ErrLineSettings means two devices on one serial line disagree on
	// its settings (baud, parity, stop bits).
	ErrLineSettings = errors.New("modbus: devices on one line must share its settings")
	// ErrClosed means the device was closed.
	ErrClosed = errors.New("modbus: device closed")
)

// Exception is an exception code a device replied with (Application
// Protocol §7): the device is there and answered, but refused the request.
type Exception uint8

// Exceptions of the Application Protocol §7.
const (
	IllegalFunction       Exception = 1
	IllegalDataAddress    Exception = 2
	IllegalDataValue      Exception = 3
	ServerDeviceFailure   Exception = 4
	Acknowledge           Exception = 5
	ServerDeviceBusy      Exception = 6
	MemoryParityError     Exception = 8
	GatewayPathUnavail    Exception = 10
	GatewayTargetNoAnswer Exception = 11
)

var exceptionNames = map[Exception]string{
	IllegalFunction:       "illegal function",
	IllegalDataAddress:    "illegal data address",
	IllegalDataValue:      "illegal data value",
	ServerDeviceFailure:   "server device failure",
	Acknowledge:           "acknowledge",
	ServerDeviceBusy:      "server device busy",
	MemoryParityError:     "memory parity error",
	GatewayPathUnavail:    "gateway path unavailable",
	GatewayTargetNoAnswer: "gateway target device failed to respond",
}

func (e Exception) Error() string {
	if n, ok := exceptionNames[e]; ok {
		return fmt.Sprintf("%s (exception %d)", n, uint8(e))
	}
	return fmt.Sprintf("exception %d", uint8(e))
}

// libErrors maps the client library's errors to this package's.
var libErrors = map[error]error{
	mb.ErrIllegalFunction:         IllegalFunction,
	mb.ErrIllegalDataAddress:      IllegalDataAddress,
	mb.ErrIllegalDataValue:        IllegalDataValue,
	mb.ErrServerDeviceFailure:     ServerDeviceFailure,
	mb.ErrAcknowledge:             Acknowledge,
	mb.ErrServerDeviceBusy:        ServerDeviceBusy,
	mb.ErrMemoryParityError:       MemoryParityError,
	mb.ErrGWPathUnavailable:       GatewayPathUnavail,
	mb.ErrGWTargetFailedToRespond: GatewayTargetNoAnswer,
	mb.ErrRequestTimedOut:         ErrTimeout,
	mb.ErrBadCRC:                  ErrCRC,
	mb.ErrShortFrame:              ErrFrame,
	mb.ErrProtocolError:           ErrFrame,
	mb.ErrBadUnitId:               ErrFrame,
	mb.ErrBadTransactionId:        ErrFrame,
}

func mapError(err error) error {
	var le mb.Error
	if errors.As(err, &le) {
		if e, ok := libErrors[le]; ok {
			return e
		}
	}
	return err
}

// Dev is one device: a unit id on a line and its register map.
type Dev struct {
	line    *Line
	unit    uint8
	timeout time.Duration
	retries int
	regs    []Register
	plan    []Request

	mu     sync.Mutex
	closed bool
}

// Open validates the options and returns the device on its line, opening
// the line if no other device has it open. Nothing is sent until Read.
func Open(o *Options) (*Dev, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	l, err := lines.get(o)
	if err != nil {
		return nil, err
	}
	regs := append([]Register(nil), o.Registers...)
	return &Dev{line: l, unit: uint8(o.unitID()), timeout: o.timeout(), retries: o.Retries, regs: regs, plan: Plan(regs)}, nil
}

// Metrics returns the metric names a Read reports, in map order.
func (o *Options) Metrics() []string {
	m := make([]string, len(o.Registers))
	for i, r := range o.Registers {
		m[i] = r.Metric
	}
	return m
}

// Requests is the number of requests one Read sends (without retries).
func (d *Dev) Requests() int { return len(d.plan) }

// Read reads the whole register map and returns one reading per entry, in
// map order. Any failed request fails the Read: a partial map would make a
// device that half answers look well.
func (d *Dev) Read(ctx context.Context) ([]sensors.Reading, error) {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	out := make([]sensors.Reading, len(d.regs))
	for _, q := range d.plan {
		bits, raw, err := d.line.read(ctx, d.unit, d.timeout, q, d.retries)
		if err != nil {
			return nil, fmt.Errorf("modbus: unit %d: %s %d-%d: %w", d.unit, q.Table, q.Address, q.Address+q.Count-1, err)
		}
		for _, i := range q.Entries {
			r := &d.regs[i]
			off := r.Address - q.Address
			var v float64
			if q.Table.Bits() {
				if bits[off] {
					v = 1
				}
			} else {
				v = decode(r, raw[2*off:2*(off+r.count())])
			}
			out[i] = sensors.Reading{Metric: r.Metric, Value: v, Unit: r.Unit}
		}
	}
	return out, nil
}

// Close releases the device's share of its line; the last device on a
// line closes it.
func (d *Dev) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	return lines.release(d.line)
}

// Line is one connection to a Modbus TCP server or one serial port, shared
// by the devices on it. Requests on it are serialized.
type Line struct {
	key      string
	settings string // what devices sharing the line must agree on
	conf     mb.ClientConfiguration
	users    int // guarded by lines.mu

	// turn is the line's token: whoever holds it may talk. A channel
	// rather than a mutex so that a waiting Read gives up when its
	// context ends.
	turn chan struct{}
	// clients are the open connections by timeout, held with turn: the
	// client library fixes a connection's timeout when it opens it, so
	// devices with different timeouts each get one (over TCP a connection
	// each, on a serial port a descriptor each of the one port).
	clients map[time.Duration]*mb.ModbusClient
}

// pool hands out the lines, one per TCP address or serial port.
type pool struct {
	mu sync.Mutex
	m  map[string]*Line
}

var lines = &pool{m: map[string]*Line{}}

// discard is the client library's logger: it would write to stdout, and
// every failure it logs reaches the device status instead.
var discard = log.New(io.Discard, "", 0)

func (p *pool) get(o *Options) (*Line, error) {
	var key, settings string
	conf := mb.ClientConfiguration{Logger: discard}
	if o.TCP != "" {
		key = "tcp://" + o.tcpAddr()
	} else {
		key = "rtu://" + o.Serial
		settings = fmt.Sprintf("%d baud, parity %v, %d stop bits", o.baud(), o.Parity, o.stopBits())
		conf.Speed = uint(o.baud())
		conf.DataBits = 8
		conf.StopBits = uint(o.stopBits())
		conf.Parity = map[Parity]uint{Even: mb.PARITY_EVEN, NoParity: mb.PARITY_NONE, Odd: mb.PARITY_ODD}[o.Parity]
	}
	conf.URL = key
	p.mu.Lock()
	defer p.mu.Unlock()
	if l, ok := p.m[key]; ok {
		if l.settings != settings {
			return nil, fmt.Errorf("%w: %s is open with %s, this device wants %s", ErrLineSettings, key, l.settings, settings)
		}
		l.users++
		return l, nil
	}
	l := &Line{key: key, settings: settings, conf: conf, users: 1, turn: make(chan struct{}, 1), clients: map[time.Duration]*mb.ModbusClient{}}
	p.m[key] = l
	return l, nil
}

func (p *pool) release(l *Line) error {
	p.mu.Lock()
	l.users--
	last := l.users == 0
	if last {
		delete(p.m, l.key)
	}
	p.mu.Unlock()
	if !last {
		return nil
	}
	// Wait for a Read still on the line, then close it.
	l.turn <- struct{}{}
	defer func() { <-l.turn }()
	return l.closeClients()
}

// closeClients closes the line's connections; the caller holds the turn.
func (l *Line) closeClients() error {
	var errs []error
	for t, c := range l.clients {
		errs = append(errs, c.Close())
		delete(l.clients, t)
	}
	return errors.Join(errs...)
}

// read sends one request for unit, again after a timeout or a damaged
// reply up to retries times, and returns the bits (coils, discrete inputs)
// or the registers' bytes as on the wire.
func (l *Line) read(ctx context.Context, unit uint8, timeout time.Duration, q Request, retries int) (bits []bool, raw []byte, err error) {
	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		// Another device on the line held it for the whole read budget
		// (typically its own requests timing out): say so, or the log
		// blames this device's silence.
		return nil, nil, fmt.Errorf("waiting for the line (another device's requests held it): %w", ctx.Err())
	}
	defer func() { <-l.turn }()
	reconnected := false
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		reused := l.clients[timeout] != nil
		bits, raw, err = l.once(unit, timeout, q)
		if err == nil {
			return bits, raw, nil
		}
		var ex Exception
		if errors.As(err, &ex) {
			return nil, nil, err
		}
		// The line may hold a late or partial reply: start afresh, so it
		// is not taken for the next request's.
		_ = l.closeClients()
		// Many TCP servers close a connection that was idle for a while:
		// the first request on it finds it gone. That is no fault of the
		// device; ask again, once, on a new connection.
		if reused && !reconnected && connLost(err) {
			reconnected = true
			attempt--
			continue
		}
		if attempt >= retries || !(errors.Is(err, ErrTimeout) || errors.Is(err, ErrCRC) || errors.Is(err, ErrFrame)) {
			return nil, nil, err
		}
	}
}

// connLost tells whether err says the peer closed the connection.
func connLost(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// once sends one request; the caller holds the turn.
func (l *Line) once(unit uint8, timeout time.Duration, q Request) ([]bool, []byte, error) {
	c := l.clients[timeout]
	if c == nil {
		conf := l.conf
		conf.Timeout = timeout
		var err error
		if c, err = mb.NewClient(&conf); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", l.key, err)
		}
		if err := c.Open(); err != nil {
			return nil, nil, fmt.Errorf("open %s: %w", l.key, err)
		}
		l.clients[timeout] = c
	}
	if err := c.SetUnitId(unit); err != nil {
		return nil, nil, mapError(err)
	}
	addr, n := uint16(q.Address), uint16(q.Count)
	var (
		bits []bool
		raw  []byte
		err  error
	)
	switch q.Table {
	case Coil:
		bits, err = c.ReadCoils(addr, n)
	case DiscreteInput:
		bits, err = c.ReadDiscreteInputs(addr, n)
	case InputRegister:
		raw, err = c.ReadRawBytes(addr, 2*n, mb.INPUT_REGISTER)
	default:
		raw, err = c.ReadRawBytes(addr, 2*n, mb.HOLDING_REGISTER)
	}
	if err != nil {
		return nil, nil, mapError(err)
	}
	if (q.Table.Bits() && len(bits) != q.Count) || (!q.Table.Bits() && len(raw) != 2*q.Count) {
		return nil, nil, ErrFrame
	}
	return bits, raw, nil
}
