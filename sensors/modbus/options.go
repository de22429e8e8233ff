package modbus

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// ErrOptions is wrapped by every *FieldError of Options.Validate.
var ErrOptions = errors.New("modbus: invalid options")

// FieldError is an Options field that Validate refuses. Field is the Go
// field's name; Register is the index of the register map entry it belongs
// to, or -1 for a field of Options itself.
type FieldError struct {
	Register int
	Field    string
	Reason   string
}

func (e *FieldError) Error() string {
	if e.Register >= 0 {
		return fmt.Sprintf("modbus: invalid options: Registers[%d].%s %s", e.Register, e.Field, e.Reason)
	}
	return "modbus: invalid options: " + e.Field + " " + e.Reason
}

// Unwrap returns ErrOptions.
func (e *FieldError) Unwrap() error { return ErrOptions }

// Table is one of the four data tables of the Modbus data model
// (Application Protocol §4.3).
type Table uint8

// Tables. The zero value is the holding registers, the table most devices
// put their values in.
const (
	HoldingRegister Table = iota // 16-bit, read with function 03
	InputRegister                // 16-bit, read-only, function 04
	Coil                         // 1 bit, function 01
	DiscreteInput                // 1 bit, read-only, function 02
)

var tableNames = [...]string{"holding_register", "input_register", "coil", "discrete_input"}

func (t Table) String() string {
	if int(t) < len(tableNames) {
		return tableNames[t]
	}
	return fmt.Sprintf("Table(%d)", uint8(t))
}

// Bits tells whether the table holds bits (coils, discrete inputs) rather
// than 16-bit registers.
func (t Table) Bits() bool { return t == Coil || t == DiscreteInput }

// maxCount is the most items one read request may ask for: 2000 bits or
// 125 registers (Application Protocol §6.1-6.4), so that a reply fits the
// 253-byte PDU.
func (t Table) maxCount() int {
	if t.Bits() {
		return 2000
	}
	return 125
}

// ParseTable parses a table's config name: coil, discrete_input,
// input_register or holding_register.
func ParseTable(s string) (Table, error) {
	for i, n := range tableNames {
		if s == n {
			return Table(i), nil
		}
	}
	return 0, fmt.Errorf("%q: want coil, discrete_input, input_register or holding_register", s)
}

// Type is how a value is laid out in its table.
type Type uint8

// Types. The zero value means the table's natural type: Bool for coils and
// discrete inputs, Uint16 for registers.
const (
	Default Type = iota
	Bool
	Int16
	Uint16
	Int32
	Uint32
	Float32 // IEEE 754 single precision
	Float64 // IEEE 754 double precision
)

var typeNames = [...]string{"", "bool", "int16", "uint16", "int32", "uint32", "float32", "float64"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// ParseType parses a type's config name.
func ParseType(s string) (Type, error) {
	for i, n := range typeNames {
		if i > 0 && s == n {
			return Type(i), nil
		}
	}
	return 0, fmt.Errorf("%q: want bool, int16, uint16, int32, uint32, float32 or float64", s)
}

// words is the number of 16-bit registers (or of bits, for Bool) a value
// of the type takes.
func (t Type) words() int {
	switch t {
	case Int32, Uint32, Float32:
		return 2
	case Float64:
		return 4
	}
	return 1
}

// Parity of a serial line.
type Parity uint8

// Parities. The zero value is even parity, the default of the Serial Line
// specification (§2.5.1).
const (
	Even Parity = iota
	NoParity
	Odd
)

var parityNames = [...]string{"even", "none", "odd"}

func (p Parity) String() string {
	if int(p) < len(parityNames) {
		return parityNames[p]
	}
	return fmt.Sprintf("Parity(%d)", uint8(p))
}

// ParseParity parses even, none or odd.
func ParseParity(s string) (Parity, error) {
	for i, n := range parityNames {
		if s == n {
			return Parity(i), nil
		}
	}
	return 0, fmt.Errorf("%q: want even, none or odd", s)
}

// Register is one entry of a register map: one value, one metric.
type Register struct {
	// Metric is the reported name, e.g. "active_power". Required, unique
	// in the map.
	Metric string
	// Unit is the reported unit, e.g. "kW"; may be empty.
	Unit string
	// Table holds the value. Default HoldingRegister.
	Table Table
	// Address is the protocol address of the value's first register or bit,
	// 0 to 65535 (a device's documented "register 40001" is holding
	// register address 0).
	Address int
	// Type is the value's layout. Default: Bool for coils and discrete
	// inputs, Uint16 for registers. Bit tables take only Bool, registers
	// only the numeric types.
	Type Type
	// ByteSwap means the low byte of each register comes first on the wire
	// (the protocol sends the high byte first).
	ByteSwap bool
	// WordSwap means a 32- or 64-bit value's least significant register
	// comes first (the protocol has no rule; most devices send the most
	// significant first).
	WordSwap bool
	// Scale multiplies the raw value; 0 means 1. Not for Bool.
	Scale float64
	// Offset is added after Scale. Not for Bool.
	Offset float64
}

// typ is the entry's type with the default applied.
func (r *Register) typ() Type {
	if r.Type != Default {
		return r.Type
	}
	if r.Table.Bits() {
		return Bool
	}
	return Uint16
}

// count is the number of registers or bits the entry takes.
func (r *Register) count() int { return r.typ().words() }

// Options configures one device: where its line is, its unit id and its
// register map. The zero value of each field but the line and the map
// means the default.
type Options struct {
	// TCP is the Modbus TCP server's host:port; the port defaults to 502.
	// Exactly one of TCP and Serial is set.
	TCP string
	// Serial is the serial port of an RTU line, e.g. /dev/ttyUSB0.
	Serial string
	// Baud is the serial line's speed in bit/s. Default 19200 (the
	// specification's default).
	Baud int
	// Parity of the serial line. Default Even.
	Parity Parity
	// StopBits is 1 or 2; default 1 with parity, 2 without (the
	// specification keeps every character 11 bits long).
	StopBits int
	// UnitID is the device's address on the line: 1 to 247 on a serial
	// line, 0 to 255 over TCP. Default 1.
	UnitID int
	// Timeout bounds one request, from sending it to the end of the reply.
	// Default 1s.
	Timeout time.Duration
	// Retries is how many times a request that timed out or came back
	// damaged (CRC) is sent again before the read fails; 0 to 10.
	// Exceptions are never retried: the device answered.
	Retries int
	// Registers is the register map: at least one entry, no two
	// overlapping.
	Registers []Register
}

// Defaults.
const (
	DefaultBaud    = 19200
	DefaultTimeout = time.Second
	DefaultTCPPort = "502"
)

func (o *Options) baud() int {
	if o.Baud == 0 {
		return DefaultBaud
	}
	return o.Baud
}

func (o *Options) stopBits() int {
	if o.StopBits != 0 {
		return o.StopBits
	}
	if o.Parity == NoParity {
		return 2
	}
	return 1
}

func (o *Options) unitID() int {
	if o.UnitID == 0 {
		return 1
	}
	return o.UnitID
}

func (o *Options) timeout() time.Duration {
	if o.Timeout == 0 {
		return DefaultTimeout
	}
	return o.Timeout
}

// tcpAddr is TCP with the default port filled in.
func (o *Options) tcpAddr() string {
	if o.TCP == "" {
		return ""
	}
	if strings.HasPrefix(o.TCP, "[") || strings.Count(o.TCP, ":") == 1 {
		if _, port, ok := strings.Cut(o.TCP[strings.LastIndex(o.TCP, "]")+1:], ":"); ok && port != "" {
			return o.TCP
		}
	}
	if strings.Count(o.TCP, ":") > 1 && !strings.HasPrefix(o.TCP, "[") {
		return "[" + o.TCP + "]:" + DefaultTCPPort // a bare IPv6 address
	}
	return strings.TrimSuffix(o.TCP, ":") + ":" + DefaultTCPPort
}

var baudRates = []int{1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400}

// Validate checks the options; every error is a *FieldError.
func (o *Options) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &FieldError{Register: -1, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case o.TCP == "" && o.Serial == "":
		return bad("TCP", "missing: set the server's host:port, or a serial port")
	case o.TCP != "" && o.Serial != "":
		return bad("Serial", "%q: a device is on TCP or on a serial line, not both", o.Serial)
	}
	if o.TCP != "" {
		if strings.ContainsAny(o.TCP, " /") {
			return bad("TCP", "%q: want host:port, e.g. 192.168.1.20:502", o.TCP)
		}
		if o.Baud != 0 || o.StopBits != 0 || o.Parity != Even {
			return bad("Baud", "baud, parity and stop bits are for serial lines")
		}
		if o.UnitID < 0 || o.UnitID > 255 {
			return bad("UnitID", "%d: want 0 to 255", o.UnitID)
		}
	} else {
		if o.Baud != 0 && !containsInt(baudRates, o.Baud) {
			return bad("Baud", "%d: want one of %v", o.Baud, baudRates)
		}
		if o.Parity > Odd {
			return bad("Parity", "%v: want even, none or odd", o.Parity)
		}
		if o.StopBits != 0 && o.StopBits != 1 && o.StopBits != 2 {
			return bad("StopBits", "%d: want 1 or 2", o.StopBits)
		}
		if o.UnitID < 0 || o.UnitID > 247 {
			return bad("UnitID", "%d: want 1 to 247 (0 is the broadcast address, which no device answers)", o.UnitID)
		}
	}
	if o.Timeout < 0 || o.Timeout > time.Minute {
		return bad("Timeout", "%v: want more than 0 and at most 1m", o.Timeout)
	}
	if o.Timeout != 0 && o.Timeout < 10*time.Millisecond {
		return bad("Timeout", "%v: want at least 10ms", o.Timeout)
	}
	if o.Retries < 0 || o.Retries > 10 {
		return bad("Retries", "%d: want 0 to 10", o.Retries)
	}
	return checkMap(o.Registers)
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// checkMap checks a register map: each entry on its own, then metric names
// and address ranges across entries.
func checkMap(regs []Register) error {
	if len(regs) == 0 {
		return &FieldError{Register: -1, Field: "Registers", Reason: "missing: list the values to read"}
	}
	metrics := map[string]int{}
	for i := range regs {
		r := &regs[i]
		bad := func(field, format string, args ...any) error {
			return &FieldError{Register: i, Field: field, Reason: fmt.Sprintf(format, args...)}
		}
		if strings.TrimSpace(r.Metric) == "" {
			return bad("Metric", "missing: the name to report the value under")
		}
		if j, dup := metrics[r.Metric]; dup {
			return bad("Metric", "%q is already the metric of registers[%d]", r.Metric, j)
		}
		metrics[r.Metric] = i
		if r.Table > DiscreteInput {
			return bad("Table", "%v: want coil, discrete_input, input_register or holding_register", r.Table)
		}
		if r.Type > Float64 {
			return bad("Type", "%v: unknown type", r.Type)
		}
		t := r.typ()
		if r.Table.Bits() && t != Bool {
			return bad("Type", "%v: a %s is one bit, so its type is bool", t, r.Table)
		}
		if !r.Table.Bits() && t == Bool {
			return bad("Type", "bool: a %s is 16 bits; read it as uint16", r.Table)
		}
		if r.Address < 0 || r.Address > 0xFFFF {
			return bad("Address", "%d: want 0 to 65535", r.Address)
		}
		if end := r.Address + r.count() - 1; end > 0xFFFF {
			return bad("Address", "%d: a %v takes %d registers, so it would end at %d, past 65535", r.Address, t, r.count(), end)
		}
		if t == Bool && (r.ByteSwap || r.WordSwap) {
			return bad("ByteSwap", "a bit has no byte or word order")
		}
		if r.WordSwap && r.count() == 1 {
			return bad("WordSwap", "%v takes one register, so it has no word order", t)
		}
		if t == Bool && (r.Scale != 0 || r.Offset != 0) {
			return bad("Scale", "a bool is reported as 0 or 1; it takes no scale or offset")
		}
		if math.IsNaN(r.Scale) || math.IsInf(r.Scale, 0) {
			return bad("Scale", "%v: want a finite number", r.Scale)
		}
		if math.IsNaN(r.Offset) || math.IsInf(r.Offset, 0) {
			return bad("Offset", "%v: want a finite number", r.Offset)
		}
	}
	// Overlaps, table by table, in address order.
	idx := byTableAddress(regs)
	for k := 1; k < len(idx); k++ {
		p, c := &regs[idx[k-1]], &regs[idx[k]]
		if p.Table == c.Table && c.Address < p.Address+p.count() {
			i, j := idx[k], idx[k-1]
			if i < j {
				i, j = j, i
			}
			return &FieldError{Register: i, Field: "Address", Reason: fmt.Sprintf("%s %d overlaps registers[%d] (%q, %s %d-%d)",
				regs[i].Table, regs[i].Address, j, regs[j].Metric, regs[j].Table, regs[j].Address, regs[j].Address+regs[j].count()-1)}
		}
	}
	return nil
}
