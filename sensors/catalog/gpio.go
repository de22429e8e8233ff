package catalog

import (
	"fmt"

	"periph.io/x/conn/v3/gpio"

	"github.com/floorhub/floorhub/sensors/gpio/gpioin"
	"github.com/floorhub/floorhub/sensors/gpio/pulse"
)

// inputSettings is the `settings:` block of "gpio-input":
//
//	pull: up              # up, down, float; default: as the pin is
//	debounce: 20ms        # or off; default 20ms
//	invert: true          # report low as 1 (a contact to ground)
//	metrics: {level: door_open}   # the change count follows: door_open_changes
type inputSettings struct {
	Pull     string            `yaml:"pull"`
	Debounce switchDuration    `yaml:"debounce"`
	Invert   bool              `yaml:"invert"`
	Metrics  map[string]string `yaml:"metrics"`
}

// counterSettings is the `settings:` block of "gpio-counter":
//
//	edge: rising          # rising (default), falling, both
//	pull: up
//	debounce: 5ms         # default off
//	per_pulse: 0.001      # units per pulse; default 1
//	unit: kWh             # default count; the rate is in unit/s
//	metrics: {total: energy, rate: power}
type counterSettings struct {
	Edge     string            `yaml:"edge"`
	Pull     string            `yaml:"pull"`
	Debounce switchDuration    `yaml:"debounce"`
	PerPulse float64           `yaml:"per_pulse"`
	Unit     string            `yaml:"unit"`
	Metrics  map[string]string `yaml:"metrics"`
}

func parsePull(s string) (gpio.Pull, error) {
	switch s {
	case "":
		return gpio.PullNoChange, nil
	case "up":
		return gpio.PullUp, nil
	case "down":
		return gpio.PullDown, nil
	case "float", "none":
		return gpio.Float, nil
	}
	return 0, fmt.Errorf("settings: pull %q: want up, down or float", s)
}

func parseInput(s *Spec) (string, *gpioin.Opts, error) {
	if err := unused(s, true, true, false); err != nil {
		return "", nil, err
	}
	pin, err := pinName(s)
	if err != nil {
		return "", nil, err
	}
	var set inputSettings
	if err := s.Decode(&set); err != nil {
		return "", nil, err
	}
	o := &gpioin.Opts{Invert: set.Invert, Debounce: set.Debounce.d}
	if set.Debounce.off {
		o.Debounce = -1
	}
	if o.Pull, err = parsePull(set.Pull); err != nil {
		return "", nil, err
	}
	if err := checkRenames(set.Metrics, "level"); err != nil {
		return "", nil, err
	}
	o.Metric = set.Metrics["level"]
	return pin, o, o.Validate()
}

func parseCounter(s *Spec) (string, *pulse.Opts, error) {
	if err := unused(s, true, true, false); err != nil {
		return "", nil, err
	}
	pin, err := pinName(s)
	if err != nil {
		return "", nil, err
	}
	var set counterSettings
	if err := s.Decode(&set); err != nil {
		return "", nil, err
	}
	o := &pulse.Opts{Debounce: set.Debounce.d, PerPulse: set.PerPulse, Unit: set.Unit}
	switch set.Edge {
	case "", "rising":
		o.Edge = gpio.RisingEdge
	case "falling":
		o.Edge = gpio.FallingEdge
	case "both":
		o.Edge = gpio.BothEdges
	default:
		return "", nil, fmt.Errorf("settings: edge %q: want rising, falling or both", set.Edge)
	}
	if o.Pull, err = parsePull(set.Pull); err != nil {
		return "", nil, err
	}
	if set.PerPulse < 0 {
		return "", nil, fmt.Errorf("settings: per_pulse %v: want a positive number", set.PerPulse)
	}
	if err := checkRenames(set.Metrics, "total", "rate"); err != nil {
		return "", nil, err
	}
	o.Total, o.Rate = set.Metrics["total"], set.Metrics["rate"]
	return pin, o, o.Validate()
}

func pinDriver(parse func(s *Spec) (string, error), metrics func(s *Spec) []string, build func(s *Spec, p gpio.PinIO) (Sensor, error)) Driver {
	return Driver{
		Metrics: metrics,
		Check: func(s *Spec) error {
			_, err := parse(s)
			return err
		},
		Claims: func(s *Spec) []string {
			pin, err := parse(s)
			if err != nil {
				return nil
			}
			return []string{"pin " + pin}
		},
		Build: func(s *Spec, hw Hardware) (Sensor, error) {
			pin, err := parse(s)
			if err != nil {
				return nil, err
			}
			p, err := hw.Pin(pin)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.Driver, err)
			}
			return build(s, p)
		},
	}
}

func init() {
	Register("gpio-input", pinDriver(
		func(s *Spec) (string, error) { pin, _, err := parseInput(s); return pin, err },
		func(s *Spec) []string {
			if _, o, err := parseInput(s); err == nil {
				return o.Metrics()
			}
			return nil
		},
		func(s *Spec, p gpio.PinIO) (Sensor, error) {
			_, o, err := parseInput(s)
			if err != nil {
				return nil, err
			}
			return gpioin.New(p, o)
		}))
	Register("gpio-counter", pinDriver(
		func(s *Spec) (string, error) { pin, _, err := parseCounter(s); return pin, err },
		func(s *Spec) []string {
			if _, o, err := parseCounter(s); err == nil {
				return o.Metrics()
			}
			return nil
		},
		func(s *Spec, p gpio.PinIO) (Sensor, error) {
			_, o, err := parseCounter(s)
			if err != nil {
				return nil, err
			}
			return pulse.New(p, o)
		}))
}
