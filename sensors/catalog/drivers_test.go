package catalog_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/onewire"

	"github.com/floorhub/floorhub/internal/yamlconf"
	"github.com/floorhub/floorhub/sensors/catalog"
)

// specs parses a devices list the way the agent's config does: the
// settings stay a yamlconf.Node, and each device has its line.
func specs(t *testing.T, src string) []catalog.Spec {
	t.Helper()
	var doc struct {
		Devices []yamlconf.Node `yaml:"devices"`
	}
	root, err := yamlconf.Parse([]byte(src))
	if err == nil {
		err = yamlconf.Decode(root, &doc)
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []catalog.Spec
	for _, n := range doc.Devices {
		var d struct {
			ID       int           `yaml:"id"`
			Name     string        `yaml:"name"`
			Driver   string        `yaml:"driver"`
			Bus      string        `yaml:"bus"`
			Address  int           `yaml:"address"`
			Pin      string        `yaml:"pin"`
			Settings yamlconf.Node `yaml:"settings"`
			// The agent's keys, which the catalog does not see.
			Interval     any `yaml:"interval"`
			Jitter       any `yaml:"jitter"`
			Timeout      any `yaml:"timeout"`
			OfflineAfter any `yaml:"offline_after"`
		}
		if err := yamlconf.Decode(&n, &d); err != nil {
			t.Fatal(err)
		}
		out = append(out, catalog.Spec{ID: d.ID, Name: d.Name, Driver: d.Driver, Bus: d.Bus, Address: d.Address, Pin: d.Pin, Settings: d.Settings, Line: n.Line})
	}
	return out
}

const good = `
devices:
  - id: 1
    name: hall
    driver: bme280
    bus: /dev/i2c-1
    address: 0x77
    settings:
      oversampling: {temperature: 2, pressure: 16, humidity: 1}
      filter: 4
      metrics: {temperature: temp_room}
  - id: 2
    driver: bmp280
    bus: 1
    settings: {filter: off}
  - id: 3
    driver: ds18b20
    settings: {rom: 28-0000075e6b1a, resolution: 11}
  - id: 10
    driver: ds18b20
    bus: w1
    settings: {rom: 28-0000075e6b1b}
  - id: 4
    driver: ds18b20
    bus: 1
    address: 0x18
    settings: {rom: 28-00000a1b2c3d, bus: ds2482}
  - id: 5
    driver: ds18b20
    bus: 1
    settings: {rom: 28-00000a1b2c3e, bus: ds2482, metrics: {temperature: oven}}
  - id: 6
    driver: gpio-input
    pin: GPIO17
    settings: {pull: up, debounce: 50ms, invert: true, metrics: {level: door_open}}
  - id: 7
    driver: gpio-counter
    pin: "27"
    settings: {edge: falling, debounce: off, per_pulse: 0.001, unit: kWh, metrics: {total: energy, rate: power}}
  - id: 8
    driver: ads1115
    bus: 1
    address: 0x48
    settings:
      channels:
        - {input: 0, gain: 6.144, shunt_ohms: 250, scale: {from: [4, 20], to: [0, 10]}, metric: line_pressure, unit: bar}
        - {input: "2-3", data_rate: 860}
  - id: 9
    driver: ads1015
    bus: 1
    address: 0x49
    settings:
      channels: [{input: 3}]
`

func TestValidateGood(t *testing.T) {
	if err := catalog.Validate(specs(t, good)); err != nil {
		t.Fatal(err)
	}
}

func TestValidateBad(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		want       []string // in the error, besides the device and line
	}{
		{"unknown driver", "{id: 1, driver: bme290, bus: 1}", []string{"unknown driver", "bme290"}},
		{"bad address", "{id: 1, name: hall, driver: bme280, bus: 1, address: 0x99}", []string{"device 1 (hall)", "0x99", "0x76 or 0x77"}},
		{"no bus", "{id: 1, driver: ads1115, settings: {channels: [{input: 0}]}}", []string{"bus: missing"}},
		{"bad bus", "{id: 1, driver: bme280, bus: i2c-one}", []string{"i2c-one"}},
		{"pin on i2c", "{id: 1, driver: bme280, bus: 1, pin: GPIO4}", []string{"takes no pin"}},
		{"unknown key", "{id: 1, driver: bme280, bus: 1, settings: {oversampling: {temprature: 2}}}", []string{"temprature"}},
		{"unknown top key", "{id: 1, driver: gpio-input, pin: GPIO5, settings: {debunce: 5ms}}", []string{"debunce"}},
		{"oversampling", "{id: 1, driver: bme280, bus: 1, settings: {oversampling: {pressure: 3}}}", []string{"oversampling 3"}},
		{"filter", "{id: 1, driver: bme280, bus: 1, settings: {filter: 5}}", []string{"filter 5"}},
		{"bmp humidity", "{id: 1, driver: bmp280, bus: 1, settings: {oversampling: {humidity: 1}}}", []string{"no humidity"}},
		{"rename unknown", "{id: 1, driver: bmp280, bus: 1, settings: {metrics: {humidity: h}}}", []string{`"humidity" is not a metric`}},
		{"no rom", "{id: 1, driver: ds18b20}", []string{"rom: missing"}},
		{"bad rom", "{id: 1, driver: ds18b20, settings: {rom: 10-0000075e6b1a}}", []string{"family 0x10"}},
		{"resolution", "{id: 1, driver: ds18b20, settings: {rom: 28-0000075e6b1a, resolution: 8}}", []string{"resolution 8"}},
		{"w1 with bus", "{id: 1, driver: ds18b20, bus: 1, settings: {rom: 28-0000075e6b1a}}", []string{"ds2482"}},
		{"bridge address", "{id: 1, driver: ds18b20, bus: 1, address: 0x20, settings: {rom: 28-0000075e6b1a, bus: ds2482}}", []string{"0x20"}},
		{"no pin", "{id: 1, driver: gpio-input}", []string{"pin: missing"}},
		{"pull", "{id: 1, driver: gpio-input, pin: GPIO5, settings: {pull: sideways}}", []string{"sideways"}},
		{"debounce", "{id: 1, driver: gpio-input, pin: GPIO5, settings: {debounce: soon}}", []string{"soon"}},
		{"edge", "{id: 1, driver: gpio-counter, pin: GPIO5, settings: {edge: up}}", []string{`edge "up"`}},
		{"same names", "{id: 1, driver: gpio-counter, pin: GPIO5, settings: {metrics: {total: x, rate: x}}}", []string{`"x" is reported twice`}},
		{"no channels", "{id: 1, driver: ads1115, bus: 1}", []string{"channels: missing"}},
		{"ads input", "{id: 1, driver: ads1115, bus: 1, settings: {channels: [{input: 0-2}]}}", []string{"0-2"}},
		{"ads gain", "{id: 1, driver: ads1115, bus: 1, settings: {channels: [{input: 0, gain: 5}]}}", []string{"±5 V"}},
		{"ads rate", "{id: 1, driver: ads1015, bus: 1, settings: {channels: [{input: 0, data_rate: 860}]}}", []string{"860"}},
		{"ads scale", "{id: 1, driver: ads1115, bus: 1, settings: {channels: [{input: 0, scale: {from: [4], to: [0, 10]}, unit: bar}]}}", []string{"two numbers"}},
		{"ads address", "{id: 1, driver: ads1115, bus: 1, address: 0x76, settings: {channels: [{input: 0}]}}", []string{"0x48 to 0x4B"}},
	} {
		src := "devices:\n  - " + c.yaml + "\n"
		err := catalog.Validate(specs(t, src))
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		msg := err.Error()
		for _, w := range append([]string{"line 2", "device 1"}, c.want...) {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %q lacks %q", c.name, msg, w)
			}
		}
	}
}

func TestValidateClaims(t *testing.T) {
	for _, c := range []struct{ name, yaml, want string }{
		{"pin twice", `
devices:
  - {id: 1, driver: gpio-input, pin: GPIO17}
  - {id: 2, name: flow, driver: gpio-counter, pin: "17"}
`, "line 4: device 2 (flow): pin GPIO17 is already used by device 1"},
		{"i2c twice", `
devices:
  - {id: 1, driver: bme280, bus: /dev/i2c-1, address: 0x76}
  - {id: 2, driver: bmp280, bus: 1}
`, "line 4: device 2: i2c 1 0x76 is already used by device 1"},
		{"probe twice", `
devices:
  - {id: 1, driver: ds18b20, settings: {rom: 28-0000075e6b1a}}
  - {id: 2, driver: ds18b20, bus: 1, settings: {rom: 28-0000075E6B1A, bus: ds2482}}
`, "line 4: device 2: w1 28-0000075e6b1a is already used by device 1"},
	} {
		err := catalog.Validate(specs(t, c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.name, err, c.want)
		}
	}
}

// hardware hands out periph's fakes.
type hardware struct {
	i2c  map[string]i2c.Bus
	pins map[string]gpio.PinIO
	w1   string
}

func (h *hardware) I2C(name string) (i2c.Bus, error) {
	if b, ok := h.i2c[name]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("no bus %q", name)
}

func (h *hardware) Pin(name string) (gpio.PinIO, error) {
	if p, ok := h.pins[name]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("no pin %q", name)
}

func (h *hardware) W1Dir() string { return h.w1 }

func scratchpad(raw uint16, cfg byte) []byte {
	sp := []byte{byte(raw), byte(raw >> 8), 0x4B, 0x46, cfg, 0xFF, 0x0C, 0x10, 0}
	sp[8] = onewire.CalcCRC(sp[:8])
	return sp
}

func TestBuild(t *testing.T) {
	all := specs(t, good)
	byID := func(id int) *catalog.Spec {
		for i := range all {
			if all[i].ID == id {
				return &all[i]
			}
		}
		t.Fatalf("no device %d", id)
		return nil
	}
	// The kernel's w1 tree with probe 3 on it.
	w1 := t.TempDir()
	probe := filepath.Join(w1, "28-0000075e6b1a")
	if err := os.MkdirAll(probe, 0o755); err != nil {
		t.Fatal(err)
	}
	sp := scratchpad(0x0192, 0x5F) // 11 bits: 25.125 °C
	line := strings.TrimSpace(fmt.Sprintf("% x", sp))
	if err := os.WriteFile(filepath.Join(probe, "w1_slave"), []byte(line+" : crc=xx YES\n"+line+" t=25125\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(probe, "resolution"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The ADS1115 on bus 1: probe, then AIN0 at ±6.144 V, 128/s (config
	// 0xC183) reading 16000 codes = 3 V = 12 mA = 5 bar.
	bus := &i2ctest.Playback{Ops: []i2ctest.IO{
		{Addr: 0x48, W: []byte{0x01}, R: []byte{0x85, 0x83}},
		{Addr: 0x48, W: []byte{0x01, 0xC1, 0x83}},
		{Addr: 0x48, W: []byte{0x01}, R: []byte{0xC1, 0x83}},
		{Addr: 0x48, W: []byte{0x00}, R: []byte{0x3E, 0x80}},
		// AIN2−AIN3 (011), ±2.048 V (010), 860/s (111): 1011 0101 1110 0011.
		{Addr: 0x48, W: []byte{0x01, 0xB5, 0xE3}},
		{Addr: 0x48, W: []byte{0x01}, R: []byte{0xB5, 0xE3}},
		{Addr: 0x48, W: []byte{0x00}, R: []byte{0x10, 0x00}},
	}}
	door := &gpiotest.Pin{N: "GPIO17", Num: 17, EdgesChan: make(chan gpio.Level)}
	meter := &gpiotest.Pin{N: "GPIO27", Num: 27, EdgesChan: make(chan gpio.Level)}
	hw := &hardware{i2c: map[string]i2c.Bus{"1": bus}, pins: map[string]gpio.PinIO{"GPIO17": door, "GPIO27": meter}, w1: w1}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	s, err := catalog.Build(byID(3), hw)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := s.Read(ctx)
	if err != nil || len(rs) != 1 || rs[0].Value != 25.125 || rs[0].Unit != "°C" {
		t.Fatalf("ds18b20: %+v, %v", rs, err)
	}
	if b, _ := os.ReadFile(filepath.Join(probe, "resolution")); string(b) != "11\n" {
		t.Errorf("resolution written %q", b)
	}

	s, err = catalog.Build(byID(8), hw)
	if err != nil {
		t.Fatal(err)
	}
	rs, err = s.Read(ctx)
	if err != nil || len(rs) != 2 || rs[0].Metric != "line_pressure" || rs[0].Unit != "bar" || math.Abs(rs[0].Value-5) > 1e-9 ||
		rs[1].Metric != "ain2_3" || math.Abs(rs[1].Value-0.256) > 1e-9 {
		t.Fatalf("ads1115: %+v, %v", rs, err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}

	in, err := catalog.Build(byID(6), hw)
	if err != nil {
		t.Fatal(err)
	}
	if door.Pull() != gpio.PullUp {
		t.Errorf("pull %v", door.Pull())
	}
	changes, ok := in.(interface{ Changes() <-chan struct{} })
	if !ok {
		t.Fatal("gpio-input does not notify changes")
	}
	door.EdgesChan <- gpio.Low // the contact to ground closes: inverted, 1
	select {
	case <-changes.Changes():
	case <-ctx.Done():
		t.Fatal("no change notified")
	}
	rs, err = in.Read(ctx)
	if err != nil || rs[0].Metric != "door_open" || rs[0].Value != 1 || rs[1].Metric != "door_open_changes" {
		t.Fatalf("gpio-input: %+v, %v", rs, err)
	}

	cnt, err := catalog.Build(byID(7), hw)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		meter.EdgesChan <- gpio.Low
	}
	// The counter's goroutine has taken the third edge; wait until it is
	// counted.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		rs, err = cnt.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rs[0].Value >= 0.003-1e-12 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("pulses not counted")
		case <-tick.C:
		}
	}
	if rs[0].Metric != "energy" || rs[0].Unit != "kWh" || math.Abs(rs[0].Value-0.003) > 1e-12 || rs[1].Metric != "power" || rs[1].Unit != "kWh/s" {
		t.Fatalf("gpio-counter: %+v", rs)
	}
	for _, s := range []catalog.Sensor{in, cnt} {
		c, ok := s.(io.Closer)
		if !ok {
			t.Fatalf("%T has no Close", s)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBuildBME280Renamed(t *testing.T) {
	all := specs(t, good)
	// Chip id 0x60, then calibration and configuration; a NACK on the
	// chip id makes Build fail with the bus's error, which the agent
	// retries.
	nack := &i2ctest.Playback{DontPanic: true}
	hw := &hardware{i2c: map[string]i2c.Bus{"1": nack}}
	if _, err := catalog.Build(&all[0], hw); err == nil || !strings.Contains(err.Error(), "device 1 (hall)") {
		t.Fatalf("err %v", err)
	}
	hw.i2c = nil
	if _, err := catalog.Build(&all[0], hw); err == nil || !strings.Contains(err.Error(), `no bus "1"`) {
		t.Fatalf("err %v", err)
	}
}

func TestBridgeShared(t *testing.T) {
	all := specs(t, good)
	// Device reset and config once for both probes behind the bridge,
	// then each probe's scratchpad read. The transcript is long, so the
	// bridge only has to answer: no device on the line.
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x18, W: []byte{0xF0}, R: []byte{0x18}},
		{Addr: 0x18, W: []byte{0xD2, 0xE1}, R: []byte{0x01}},
		{Addr: 0x18, W: []byte{0xB4}}, {Addr: 0x18, R: []byte{0x08}}, // probe 4: no presence
		{Addr: 0x18, W: []byte{0xB4}}, {Addr: 0x18, R: []byte{0x08}}, // probe 5: no presence
	}}
	hw := &hardware{i2c: map[string]i2c.Bus{"1": bus}}
	for _, i := range []int{4, 5} { // devices 4 and 5
		id := all[i].ID
		_, err := catalog.Build(&all[i], hw)
		if err == nil || !strings.Contains(err.Error(), "no device on the 1-Wire bus") {
			t.Fatalf("device %d: err %v", id, err)
		}
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err) // a second device reset would have been unexpected
	}
}

// Only drivers whose devices wait for each other on one line have their
// reads spread by default; DS18B20 probes on one bus convert together
// instead.
func TestSharesLine(t *testing.T) {
	for _, c := range []struct {
		driver string
		want   bool
	}{
		{"modbus-tcp", true},
		{"modbus-rtu", true},
		{"ds18b20", false},
		{"bme280", false},
		{"sim", false},
		{"no-such-driver", false},
	} {
		if got := catalog.SharesLine(c.driver); got != c.want {
			t.Errorf("SharesLine(%q) = %v, want %v", c.driver, got, c.want)
		}
	}
}
