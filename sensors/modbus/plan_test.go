package modbus_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/floorhub/floorhub/sensors/modbus"
)

func TestPlan(t *testing.T) {
	hr := func(addr int, typ modbus.Type) modbus.Register {
		return modbus.Register{Metric: "m", Address: addr, Type: typ}
	}
	coil := func(addr int) modbus.Register { return modbus.Register{Metric: "c", Table: modbus.Coil, Address: addr} }
	many := func(n int, mk func(i int) modbus.Register) []modbus.Register {
		out := make([]modbus.Register, n)
		for i := range out {
			out[i] = mk(i)
		}
		return out
	}
	seq := func(from, to int) []int {
		var s []int
		for i := from; i < to; i++ {
			s = append(s, i)
		}
		return s
	}
	for _, c := range []struct {
		name string
		regs []modbus.Register
		want []modbus.Request
	}{
		{"one", []modbus.Register{hr(5, 0)}, []modbus.Request{{Address: 5, Count: 1, Entries: []int{0}}}},
		{"contiguous, out of order", []modbus.Register{hr(2, modbus.Float32), hr(0, modbus.Int32), hr(4, modbus.Float64)},
			[]modbus.Request{{Address: 0, Count: 8, Entries: []int{1, 0, 2}}}},
		{"a gap splits", []modbus.Register{hr(0, 0), hr(2, 0)},
			[]modbus.Request{{Address: 0, Count: 1, Entries: []int{0}}, {Address: 2, Count: 1, Entries: []int{1}}}},
		{"tables apart", []modbus.Register{{Metric: "i", Table: modbus.InputRegister}, hr(0, 0), coil(0), {Metric: "d", Table: modbus.DiscreteInput}},
			[]modbus.Request{
				{Table: modbus.HoldingRegister, Address: 0, Count: 1, Entries: []int{1}},
				{Table: modbus.InputRegister, Address: 0, Count: 1, Entries: []int{0}},
				{Table: modbus.Coil, Address: 0, Count: 1, Entries: []int{2}},
				{Table: modbus.DiscreteInput, Address: 0, Count: 1, Entries: []int{3}},
			}},
		{"125 registers in one", many(125, func(i int) modbus.Register { return hr(i, 0) }),
			[]modbus.Request{{Address: 0, Count: 125, Entries: seq(0, 125)}}},
		{"126 registers in two", many(126, func(i int) modbus.Register { return hr(i, 0) }),
			[]modbus.Request{{Address: 0, Count: 125, Entries: seq(0, 125)}, {Address: 125, Count: 1, Entries: []int{125}}}},
		{"a value is never split", many(32, func(i int) modbus.Register { return hr(4*i, modbus.Float64) }),
			[]modbus.Request{{Address: 0, Count: 124, Entries: seq(0, 31)}, {Address: 124, Count: 4, Entries: []int{31}}}},
		{"2000 coils in one, the 2001st apart", many(2001, func(i int) modbus.Register { return coil(i) }),
			[]modbus.Request{{Table: modbus.Coil, Address: 0, Count: 2000, Entries: seq(0, 2000)}, {Table: modbus.Coil, Address: 2000, Count: 1, Entries: []int{2000}}}},
		{"top of the address space", []modbus.Register{hr(65534, 0), hr(65535, 0)},
			[]modbus.Request{{Address: 65534, Count: 2, Entries: []int{0, 1}}}},
	} {
		if got := modbus.Plan(c.regs); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := []modbus.Register{{Metric: "x"}}
	for _, c := range []struct {
		name  string
		o     modbus.Options
		reg   int // -1: a field of Options
		field string
		want  string
	}{
		{"no line", modbus.Options{Registers: ok}, -1, "TCP", "missing"},
		{"both lines", modbus.Options{TCP: "h:502", Serial: "/dev/ttyUSB0", Registers: ok}, -1, "Serial", "not both"},
		{"baud on tcp", modbus.Options{TCP: "h:502", Baud: 9600, Registers: ok}, -1, "Baud", "serial lines"},
		{"odd baud", modbus.Options{Serial: "/dev/ttyUSB0", Baud: 1234, Registers: ok}, -1, "Baud", "1234"},
		{"stop bits", modbus.Options{Serial: "/dev/ttyUSB0", StopBits: 3, Registers: ok}, -1, "StopBits", "1 or 2"},
		{"rtu broadcast id", modbus.Options{Serial: "/dev/ttyUSB0", UnitID: 248, Registers: ok}, -1, "UnitID", "1 to 247"},
		{"tcp unit id", modbus.Options{TCP: "h", UnitID: 256, Registers: ok}, -1, "UnitID", "0 to 255"},
		{"timeout", modbus.Options{TCP: "h", Timeout: -1, Registers: ok}, -1, "Timeout", "more than 0"},
		{"retries", modbus.Options{TCP: "h", Retries: 11, Registers: ok}, -1, "Retries", "0 to 10"},
		{"empty map", modbus.Options{TCP: "h"}, -1, "Registers", "missing"},
		{"no metric", modbus.Options{TCP: "h", Registers: []modbus.Register{{}}}, 0, "Metric", "missing"},
		{"metric twice", modbus.Options{TCP: "h", Registers: []modbus.Register{{Metric: "a"}, {Metric: "a", Address: 1}}}, 1, "Metric", "registers[0]"},
		{"address", modbus.Options{TCP: "h", Registers: []modbus.Register{{Metric: "a", Address: 70000}}}, 0, "Address", "0 to 65535"},
		{"past the end", modbus.Options{TCP: "h", Registers: []modbus.Register{{Metric: "a", Address: 65534, Type: modbus.Float64}}}, 0, "Address", "past 65535"},
		{"float coil", modbus.Options{TCP: "h", Registers: []modbus.Register{{Metric: "a", Table: modbus.Coil, Type: modbus.Float32}}}, 0, "Type", "bool"},
		{"bool register", modbus.Options{TCP: "h", Registers: []modbus.Register{{Metric: "a", Type: modbus.Bool}}}, 0, "Type", "uint16"},
		{"word order of 16 bits", modbus.Options{TCP: "h", Registers: []modbus.Register{{Metric: "a", Type: modbus.Int16, WordSwap: true}}}, 0, "WordSwap", "one register"},
		{"byte order of a bit", modbus.Options{TCP: "h", Registers: []modbus.Register{{Metric: "a", Table: modbus.Coil, ByteSwap: true}}}, 0, "ByteSwap", "bit"},
		{"scaled bool", modbus.Options{TCP: "h", Registers: []modbus.Register{{Metric: "a", Table: modbus.DiscreteInput, Scale: 2}}}, 0, "Scale", "0 or 1"},
		{"overlap", modbus.Options{TCP: "h", Registers: []modbus.Register{{Metric: "a", Address: 10, Type: modbus.Float32}, {Metric: "b", Address: 11}}}, 1, "Address", `overlaps registers[0] ("a", holding_register 10-11)`},
		{"overlap, later first", modbus.Options{TCP: "h", Registers: []modbus.Register{{Metric: "b", Address: 11}, {Metric: "a", Address: 8, Type: modbus.Float64}}}, 1, "Address", `overlaps registers[0] ("b"`},
	} {
		err := c.o.Validate()
		var fe *modbus.FieldError
		if !errors.As(err, &fe) || fe.Register != c.reg || fe.Field != c.field || !strings.Contains(fe.Reason, c.want) || !errors.Is(err, modbus.ErrOptions) {
			t.Errorf("%s: err = %v; want registers[%d].%s ...%s", c.name, err, c.reg, c.field, c.want)
		}
	}
	// Same addresses in different tables do not overlap.
	o := modbus.Options{TCP: "h", Registers: []modbus.Register{{Metric: "a"}, {Metric: "b", Table: modbus.InputRegister}, {Metric: "c", Table: modbus.Coil}}}
	if err := o.Validate(); err != nil {
		t.Error(err)
	}
}
