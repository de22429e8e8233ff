package catalog_test

import (
	"context"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/sensors/catalog"
)

const goodModbus = `
devices:
  - id: 1
    name: meter
    driver: modbus-tcp
    settings:
      host: 127.0.0.1:1502
      unit_id: 3
      timeout: 500ms
      retries: 1
      registers:
        - {metric: voltage, unit: V, table: input_register, address: 0, type: float32, word_order: little}
        - {metric: energy, unit: kWh, address: 100, type: uint32, scale: 0.01}
        - {metric: running, table: coil, address: 0}
  - id: 2
    driver: modbus-rtu
    settings:
      port: /dev/ttyUSB0
      baud: 9600
      parity: none
      unit_id: 7
      registers:
        - {metric: temperature, unit: °C, address: 0, type: int16, byte_order: little, scale: 0.1, offset: -40}
        - {metric: alarm, table: discrete_input, address: 5}
`

func TestModbusValidate(t *testing.T) {
	s := specs(t, goodModbus)
	if err := catalog.Validate(s); err != nil {
		t.Fatal(err)
	}
	for i, want := range [][]string{{"voltage", "energy", "running"}, {"temperature", "alarm"}} {
		got, err := catalog.Metrics(&s[i])
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("device %d: Metrics = %v, %v; want %v", s[i].ID, got, err, want)
		}
	}
}

// Each error names the line of the key at fault and the key.
func TestModbusValidateBad(t *testing.T) {
	for _, c := range []struct {
		name, settings string
		driver         string
		want           []string
	}{
		{"no host", "registers: [{metric: x}]", "modbus-tcp", []string{"line 5", "host: missing"}},
		{"no port", "registers: [{metric: x}]", "modbus-rtu", []string{"line 5", "port: missing"}},
		{"serial keys on tcp", "host: h\nbaud: 9600\nregisters: [{metric: x}]", "modbus-tcp", []string{"line 6", "baud: baud, parity and stop_bits are for modbus-rtu"}},
		{"parity", "port: /dev/ttyS0\nparity: mark\nregisters: [{metric: x}]", "modbus-rtu", []string{"line 6", `parity: "mark"`}},
		{"baud", "port: /dev/ttyS0\nbaud: 12345\nregisters: [{metric: x}]", "modbus-rtu", []string{"line 6", "baud: 12345"}},
		{"unit 0", "port: /dev/ttyS0\nunit_id: 0\nregisters: [{metric: x}]", "modbus-rtu", []string{"line 6", "unit_id: 0 is the broadcast"}},
		{"unit 248", "port: /dev/ttyS0\nunit_id: 248\nregisters: [{metric: x}]", "modbus-rtu", []string{"line 6", "unit_id: 248"}},
		{"timeout", "host: h\ntimeout: 0s\nregisters: [{metric: x}]", "modbus-tcp", []string{"line 6", "timeout: 0s"}},
		{"no map", "host: h", "modbus-tcp", []string{"line 5", "registers: missing"}},
		{"unknown key", "host: h\nregisters:\n  - {metric: x, adress: 3}", "modbus-tcp", []string{"adress"}},
		{"table", "host: h\nregisters:\n  - metric: x\n  - metric: y\n    table: register", "modbus-tcp", []string{"line 9", `registers[1].table: "register"`}},
		{"type", "host: h\nregisters:\n  - metric: x\n    type: int64", "modbus-tcp", []string{"line 8", `registers[0].type: "int64"`}},
		{"order", "host: h\nregisters:\n  - metric: x\n    type: int32\n    word_order: middle", "modbus-tcp", []string{"line 9", `registers[0].word_order: "middle"`}},
		{"scale 0", "host: h\nregisters:\n  - metric: x\n    scale: 0", "modbus-tcp", []string{"line 8", "registers[0].scale: 0"}},
		{"bool register", "host: h\nregisters:\n  - metric: x\n    type: bool", "modbus-tcp", []string{"line 8", "registers[0].type: bool: a holding_register is 16 bits"}},
		{"float coil", "host: h\nregisters:\n  - metric: x\n    table: coil\n    type: float32", "modbus-tcp", []string{"line 9", "registers[0].type: float32: a coil is one bit"}},
		{"word order of int16", "host: h\nregisters:\n  - metric: x\n    type: int16\n    word_order: little", "modbus-tcp", []string{"line 9", "registers[0].word_order: int16 takes one register"}},
		{"past the end", "host: h\nregisters:\n  - metric: x\n    address: 65533\n    type: float64", "modbus-tcp", []string{"line 8", "registers[0].address: 65533"}},
		{"overlap", "host: h\nregisters:\n  - {metric: a, address: 10, type: float64}\n  - metric: b\n    address: 13", "modbus-tcp", []string{"line 9", `registers[1].address: holding_register 13 overlaps registers[0] ("a", holding_register 10-13)`}},
		{"metric twice", "host: h\nregisters:\n  - {metric: a}\n  - {metric: a, address: 1}", "modbus-tcp", []string{"line 8", `registers[1].metric: "a" is already`}},
		{"bus", "host: h\nregisters: [{metric: x}]", "modbus-tcp", nil},
	} {
		src := "devices:\n  - id: 1\n    driver: " + c.driver + "\n    settings:\n      " + strings.ReplaceAll(c.settings, "\n", "\n      ") + "\n"
		if c.name == "bus" {
			src = "devices:\n  - {id: 1, driver: modbus-tcp, bus: 1, settings: {host: h, registers: [{metric: x}]}}\n"
			c.want = []string{"takes no bus"}
		}
		err := catalog.Validate(specs(t, src))
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range append([]string{"device 1"}, c.want...) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", c.name, err, w)
			}
		}
	}
}

// Build opens nothing; the first Read finds the server gone, and the
// device closes.
func TestModbusBuild(t *testing.T) {
	addr := testkit.RefusedAddr(t)
	s := specs(t, "devices:\n  - {id: 1, driver: modbus-tcp, settings: {host: \""+addr+"\", registers: [{metric: x}]}}\n")
	sen, err := catalog.Build(&s[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sen.Read(context.Background()); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("read from nothing: %v", err)
	}
	if err := sen.(io.Closer).Close(); err != nil {
		t.Fatal(err)
	}
}

// The Modbus example in docs/sensors.md is a valid configuration.
func TestModbusDocsExample(t *testing.T) {
	b, err := os.ReadFile("../../docs/sensors.md")
	if err != nil {
		t.Skip("docs/sensors.md not found:", err)
	}
	_, rest, ok := strings.Cut(string(b), "```yaml\ndevices:\n  - id: 20\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no Modbus yaml block in docs/sensors.md")
	}
	s := specs(t, "devices:\n  - id: 20\n"+block)
	if len(s) != 3 {
		t.Fatalf("%d devices in the example", len(s))
	}
	if err := catalog.Validate(s); err != nil {
		t.Fatal(err)
	}
}
