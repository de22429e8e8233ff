package catalog

import (
	"fmt"
	"strconv"

	"github.com/floorhub/floorhub/internal/yamlconf"
	"github.com/floorhub/floorhub/sensors/bme280"
)

// bmeSettings is the `settings:` block of "bme280" and "bmp280":
//
//	oversampling: {temperature: 2, pressure: 16, humidity: 1}  # 1, 2, 4, 8, 16
//	filter: 4                                                  # off, 2, 4, 8, 16
//	metrics: {temperature: temp_room}                          # renames
type bmeSettings struct {
	Oversampling struct {
		Temperature int `yaml:"temperature"`
		Pressure    int `yaml:"pressure"`
		Humidity    int `yaml:"humidity"`
	} `yaml:"oversampling"`
	Filter  filterSetting     `yaml:"filter"`
	Metrics map[string]string `yaml:"metrics"`
}

// filterSetting is an IIR coefficient or "off".
type filterSetting int

func (f *filterSetting) UnmarshalYAML(n *yamlconf.Node) error {
	if n.Value == "off" {
		*f = 0
		return nil
	}
	v, err := strconv.Atoi(n.Value)
	if n.Kind != yamlconf.ScalarNode || err != nil {
		return fmt.Errorf("filter %q: want off, 2, 4, 8 or 16", n.Value)
	}
	*f = filterSetting(v)
	return nil
}

func init() {
	for _, v := range []struct {
		name string
		chip bme280.Chip
	}{{"bme280", bme280.BME280}, {"bmp280", bme280.BMP280}} {
		v := v
		parse := func(s *Spec) (bus string, addr uint16, o *bme280.Opts, names map[string]string, err error) {
			if err = unused(s, false, false, true); err != nil {
				return
			}
			if bus, err = i2cBus(s); err != nil {
				return
			}
			if addr, err = i2cAddress(s, bme280.AddrLow, bme280.AddrLow, bme280.AddrHigh); err != nil {
				return
			}
			var set bmeSettings
			if err = s.Decode(&set); err != nil {
				return
			}
			metrics := []string{"temperature", "humidity", "pressure"}
			if v.chip == bme280.BMP280 {
				if set.Oversampling.Humidity != 0 {
					err = fmt.Errorf("oversampling: humidity: the BMP280 has no humidity sensor")
					return
				}
				metrics = []string{"temperature", "pressure"}
			}
			if err = checkRenames(set.Metrics, metrics...); err != nil {
				return
			}
			o = &bme280.Opts{Chip: v.chip, Temperature: set.Oversampling.Temperature, Pressure: set.Oversampling.Pressure,
				Humidity: set.Oversampling.Humidity, Filter: int(set.Filter)}
			err = o.Validate()
			return bus, addr, o, set.Metrics, err
		}
		Register(v.name, Driver{
			Check: func(s *Spec) error {
				_, _, _, _, err := parse(s)
				return err
			},
			Claims: func(s *Spec) []string {
				bus, addr, _, _, err := parse(s)
				if err != nil {
					return nil
				}
				return []string{i2cClaim(bus, addr)}
			},
			Metrics: func(s *Spec) []string {
				_, _, _, names, err := parse(s)
				if err != nil {
					return nil
				}
				if v.chip == bme280.BMP280 {
					return renamedMetrics(names, "temperature", "pressure")
				}
				return renamedMetrics(names, "temperature", "humidity", "pressure")
			},
			Build: func(s *Spec, hw Hardware) (Sensor, error) {
				bus, addr, o, names, err := parse(s)
				if err != nil {
					return nil, err
				}
				b, err := hw.I2C(bus)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", v.name, err)
				}
				d, err := bme280.NewI2C(b, addr, o)
				if err != nil {
					return nil, err
				}
				return rename(d, names), nil
			},
		})
	}
}
