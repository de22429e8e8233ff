package catalog

import (
	"errors"
	"fmt"
	"sync"

	"periph.io/x/conn/v3/onewire"

	"github.com/floorhub/floorhub/sensors/ds18b20"
	"github.com/floorhub/floorhub/sensors/ds18b20/ds2482"
)

// dsSettings is the `settings:` block of "ds18b20": one device entry per
// probe, addressed by its ROM id.
//
//	rom: 28-0000075e6b1a      # as listed in /sys/bus/w1/devices
//	resolution: 12            # 9 to 12 bits; default: as the probe has it
//	bus: w1                   # w1 (the kernel's, default) or ds2482
//	metrics: {temperature: oven_temp}
//
// The entry's own bus may also say w1. With bus: ds2482, the entry's own bus and address are the bridge's I²C
// bus and address (default 0x18); probes on one bridge share it.
type dsSettings struct {
	ROM        string            `yaml:"rom"`
	Resolution int               `yaml:"resolution"`
	Bus        string            `yaml:"bus"`
	Metrics    map[string]string `yaml:"metrics"`
}

type dsConfig struct {
	rom     onewire.Address
	opts    ds18b20.Opts
	bridge  bool
	i2cBus  string
	i2cAddr uint16
	names   map[string]string
}

func parseDS18B20(s *Spec) (*dsConfig, error) {
	if err := unused(s, false, false, true); err != nil {
		return nil, err
	}
	var set dsSettings
	if err := s.Decode(&set); err != nil {
		return nil, err
	}
	if set.ROM == "" {
		return nil, errors.New("settings: rom: missing: the probe's ROM id, e.g. 28-0000075e6b1a (see /sys/bus/w1/devices)")
	}
	c := &dsConfig{opts: ds18b20.Opts{Resolution: set.Resolution}, names: set.Metrics}
	var err error
	if c.rom, err = ds18b20.ParseROM(set.ROM); err != nil {
		return nil, err
	}
	if set.Resolution != 0 && (set.Resolution < 9 || set.Resolution > 12) {
		return nil, fmt.Errorf("settings: resolution %d: want 9 to 12 bits", set.Resolution)
	}
	mode := set.Bus
	if mode == "" && s.Bus == "w1" {
		mode = "w1" // the entry's own bus: w1 says the same
	}
	switch mode {
	case "", "w1":
		if s.Bus == "w1" {
			break
		}
		if err := unused(s, true, true, false); err != nil {
			return nil, fmt.Errorf("%w (set settings.bus: ds2482 for a probe behind a DS2482 bridge)", err)
		}
	case "ds2482":
		c.bridge = true
		if c.i2cBus, err = i2cBus(s); err != nil {
			return nil, err
		}
		if c.i2cAddr, err = i2cAddress(s, 0x18, 0x18, 0x1B); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("settings: bus %q: want w1 (the kernel's 1-Wire bus) or ds2482", set.Bus)
	}
	return c, checkRenames(set.Metrics, "temperature")
}

// bridges are the DS2482s opened so far: every probe behind one shares it,
// so that its bus lock serialises them and they convert together (probes
// that ds18b20.New opens on one bus share its conversions).
var bridges struct {
	sync.Mutex
	m map[string]bridge
}

type bridge struct {
	bus any
	dev *ds2482.Dev
}

func openBridge(hw Hardware, bus string, addr uint16) (*ds2482.Dev, error) {
	b, err := hw.I2C(bus)
	if err != nil {
		return nil, fmt.Errorf("ds18b20: DS2482 bridge: %w", err)
	}
	key := fmt.Sprintf("%s 0x%02x", bus, addr)
	bridges.Lock()
	defer bridges.Unlock()
	if br, ok := bridges.m[key]; ok && sameBus(br.bus, b) {
		return br.dev, nil
	}
	d, err := ds2482.New(b, addr, nil)
	if err != nil {
		return nil, err
	}
	if bridges.m == nil {
		bridges.m = map[string]bridge{}
	}
	bridges.m[key] = bridge{bus: b, dev: d}
	return d, nil
}

func init() {
	Register("ds18b20", Driver{
		Check: func(s *Spec) error {
			_, err := parseDS18B20(s)
			return err
		},
		Claims: func(s *Spec) []string {
			c, err := parseDS18B20(s)
			if err != nil {
				return nil
			}
			return []string{"w1 " + ds18b20.ROMString(c.rom)}
		},
		Metrics: func(s *Spec) []string {
			c, err := parseDS18B20(s)
			if err != nil {
				return nil
			}
			return renamedMetrics(c.names, "temperature")
		},
		Build: func(s *Spec, hw Hardware) (Sensor, error) {
			c, err := parseDS18B20(s)
			if err != nil {
				return nil, err
			}
			var d *ds18b20.Dev
			if c.bridge {
				br, err := openBridge(hw, c.i2cBus, c.i2cAddr)
				if err != nil {
					return nil, err
				}
				d, err = ds18b20.New(br, c.rom, &c.opts)
				if err != nil {
					return nil, err
				}
			} else {
				if d, err = ds18b20.NewW1(hw.W1Dir(), c.rom, &c.opts); err != nil {
					return nil, err
				}
			}
			return rename(d, c.names), nil
		},
	})
}
