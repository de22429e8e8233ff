package catalog

import (
	"errors"
	"fmt"

	"github.com/floorhub/floorhub/sensors/ads1x15"
)

// adsSettings is the `settings:` block of "ads1115" and "ads1015":
//
//	channels:
//	  - input: 0              # 0-3 single-ended, or "0-1", "0-3", "1-3", "2-3"
//	    gain: 6.144           # full scale ±V: 6.144, 4.096, 2.048, 1.024, 0.512, 0.256
//	    data_rate: 128        # samples/s; default 128 (ADS1115), 1600 (ADS1015)
//	    shunt_ohms: 250       # measure mA through a shunt
//	    scale: {from: [4, 20], to: [0, 10]}
//	    metric: line_pressure # default ain0, ain0_1...
//	    unit: bar             # default V (mA with a shunt); required with scale
type adsSettings struct {
	Channels []adsChannel `yaml:"channels"`
}

type adsChannel struct {
	Input     string  `yaml:"input"`
	Gain      float64 `yaml:"gain"`
	DataRate  int     `yaml:"data_rate"`
	ShuntOhms float64 `yaml:"shunt_ohms"`
	Scale     *struct {
		From []float64 `yaml:"from"`
		To   []float64 `yaml:"to"`
	} `yaml:"scale"`
	Metric string `yaml:"metric"`
	Unit   string `yaml:"unit"`
}

func parseADS(s *Spec, chip ads1x15.Chip) (string, uint16, *ads1x15.Opts, error) {
	if err := unused(s, false, false, true); err != nil {
		return "", 0, nil, err
	}
	bus, err := i2cBus(s)
	if err != nil {
		return "", 0, nil, err
	}
	addr, err := i2cAddress(s, ads1x15.AddrGND, ads1x15.AddrGND, ads1x15.AddrSCL)
	if err != nil {
		return "", 0, nil, err
	}
	var set adsSettings
	if err := s.Decode(&set); err != nil {
		return "", 0, nil, err
	}
	if len(set.Channels) == 0 {
		return "", 0, nil, errors.New("settings: channels: missing: list the inputs to convert")
	}
	o := &ads1x15.Opts{Chip: chip}
	for i, c := range set.Channels {
		in, err := ads1x15.ParseInput(c.Input)
		if err != nil {
			return "", 0, nil, fmt.Errorf("settings: channels[%d]: %w", i, err)
		}
		ch := ads1x15.Channel{Input: in, FullScale: c.Gain, DataRate: c.DataRate, ShuntOhms: c.ShuntOhms, Metric: c.Metric, Unit: c.Unit}
		if c.Scale != nil {
			if len(c.Scale.From) != 2 || len(c.Scale.To) != 2 {
				return "", 0, nil, fmt.Errorf("settings: channels[%d]: scale: from and to take two numbers each, e.g. {from: [4, 20], to: [0, 10]}", i)
			}
			ch.Scale = &ads1x15.Scale{From: [2]float64{c.Scale.From[0], c.Scale.From[1]}, To: [2]float64{c.Scale.To[0], c.Scale.To[1]}}
		}
		o.Channels = append(o.Channels, ch)
	}
	return bus, addr, o, o.Validate()
}

func init() {
	for _, v := range []struct {
		name string
		chip ads1x15.Chip
	}{{"ads1115", ads1x15.ADS1115}, {"ads1015", ads1x15.ADS1015}} {
		v := v
		Register(v.name, Driver{
			Check: func(s *Spec) error {
				_, _, _, err := parseADS(s, v.chip)
				return err
			},
			Claims: func(s *Spec) []string {
				bus, addr, _, err := parseADS(s, v.chip)
				if err != nil {
					return nil
				}
				return []string{i2cClaim(bus, addr)}
			},
			Metrics: func(s *Spec) []string {
				_, _, o, err := parseADS(s, v.chip)
				if err != nil {
					return nil
				}
				return o.Metrics()
			},
			Build: func(s *Spec, hw Hardware) (Sensor, error) {
				bus, addr, o, err := parseADS(s, v.chip)
				if err != nil {
					return nil, err
				}
				b, err := hw.I2C(bus)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", v.name, err)
				}
				return ads1x15.NewI2C(b, addr, o)
			},
		})
	}
}
