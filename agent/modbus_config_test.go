package agent

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// A register map's error names the line of the entry's key, and a rule may
// watch a metric of the map.
func TestConfigModbusRegisterMap(t *testing.T) {
	const bad = `devices:
  - id: 1
    driver: modbus-tcp
    settings:
      host: 127.0.0.1:502
      registers:
        - {metric: a, address: 10, type: float32}
        - metric: b
          address: 11
`
	_, err := ParseConfig("gw.yaml", []byte(bad))
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Line != 9 || ce.Field != "devices[0].settings" ||
		!strings.Contains(err.Error(), `registers[1].address: holding_register 11 overlaps registers[0] ("a", holding_register 10-11)`) {
		t.Fatalf("got %v", err)
	}
	good := strings.Replace(bad, "address: 11", "address: 12", 1) + "rules:\n  - {name: r, metric: b, above: 5}\n"
	if _, err := ParseConfig("gw.yaml", []byte(good)); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseConfig("gw.yaml", []byte(strings.Replace(good, "metric: b, above", "metric: c, above", 1))); err == nil {
		t.Fatal("a rule on a metric no register reports was accepted")
	}
}

// The commented-out Modbus devices of the example config are valid once
// uncommented.
func TestExampleConfigModbus(t *testing.T) {
	b, err := os.ReadFile("../systemd/floorhub.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var src strings.Builder
	src.WriteString("devices:\n")
	on := false
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "  # - id: 20") {
			on = true
		}
		if on && !strings.HasPrefix(l, "  # ") {
			break
		}
		if on {
			src.WriteString("  " + strings.TrimPrefix(l, "  # ") + "\n")
		}
	}
	c, err := ParseConfig("example", []byte(src.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, src.String())
	}
	if len(c.Devices) != 2 || c.Devices[0].Driver != "modbus-tcp" || c.Devices[1].Driver != "modbus-rtu" {
		t.Fatalf("%+v", c.Devices)
	}
}
