package catalog

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/floorhub/floorhub/internal/yamlconf"
	"github.com/floorhub/floorhub/sensors"
)

// Helpers shared by the hardware drivers' registrations.

// i2cBus returns the spec's I²C bus as a number: "1", "/dev/i2c-1" and
// "i2c-1" are all bus "1", so the claims of two spellings collide.
func i2cBus(s *Spec) (string, error) {
	b := strings.TrimSpace(s.Bus)
	if b == "" {
		return "", errors.New("bus: missing: the I²C bus, e.g. 1 or /dev/i2c-1")
	}
	n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimPrefix(b, "/dev/"), "i2c-"))
	if err != nil || n < 0 {
		return "", fmt.Errorf("bus %q: want an I²C bus number, e.g. 1 or /dev/i2c-1", s.Bus)
	}
	return strconv.Itoa(n), nil
}

// i2cAddress returns the spec's address, def when unset, checked against
// the addresses the chip can have.
func i2cAddress(s *Spec, def, first, last int) (uint16, error) {
	a := s.Address
	if a == 0 {
		a = def
	}
	if a < first || a > last {
		if first == last-1 {
			return 0, fmt.Errorf("address 0x%02X: the chip answers only on 0x%02X or 0x%02X", a, first, last)
		}
		return 0, fmt.Errorf("address 0x%02X: the chip answers only on 0x%02X to 0x%02X", a, first, last)
	}
	return uint16(a), nil
}

func i2cClaim(bus string, addr uint16) string { return fmt.Sprintf("i2c %s 0x%02x", bus, addr) }

// pinName returns the spec's pin with the GPIO number spelt one way:
// "17", "gpio17" and "GPIO17" are all "GPIO17". Other periph names (a
// header position such as "P1_11") are kept as written.
func pinName(s *Spec) (string, error) {
	p := strings.TrimSpace(s.Pin)
	if p == "" {
		return "", errors.New("pin: missing: a GPIO name as periph knows it, e.g. GPIO17")
	}
	num := p
	if len(p) > 4 && strings.EqualFold(p[:4], "gpio") {
		num = p[4:]
	}
	if n, err := strconv.Atoi(num); err == nil {
		if n < 0 {
			return "", fmt.Errorf("pin %q: negative GPIO number", s.Pin)
		}
		return "GPIO" + strconv.Itoa(n), nil
	}
	return p, nil
}

// unused refuses location fields a driver does not take, so a misplaced
// key is an error rather than silently ignored.
func unused(s *Spec, bus, address, pin bool) error {
	switch {
	case bus && s.Bus != "":
		return fmt.Errorf("bus %q: this driver takes no bus", s.Bus)
	case address && s.Address != 0:
		return fmt.Errorf("address 0x%02X: this driver takes no address", s.Address)
	case pin && s.Pin != "":
		return fmt.Errorf("pin %q: this driver takes no pin", s.Pin)
	}
	return nil
}

// checkRenames checks a `metrics:` block that renames a driver's metrics:
// only the driver's own names as keys, non-empty and distinct new names.
func checkRenames(m map[string]string, known ...string) error {
	final := map[string]string{}
	for _, k := range known {
		final[k] = k
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, ok := final[k]; !ok {
			return fmt.Errorf("metrics: %q is not a metric of this driver (it reports %s)", k, strings.Join(known, ", "))
		}
		if strings.TrimSpace(m[k]) == "" {
			return fmt.Errorf("metrics: %s: empty name", k)
		}
		final[k] = m[k]
	}
	seen := map[string]bool{}
	for _, k := range known {
		if seen[final[k]] {
			return fmt.Errorf("metrics: %q is reported twice", final[k])
		}
		seen[final[k]] = true
	}
	return nil
}

// renamedMetrics returns known with the renames of a checked `metrics:`
// block applied.
func renamedMetrics(m map[string]string, known ...string) []string {
	out := make([]string, len(known))
	for i, k := range known {
		out[i] = k
		if n, ok := m[k]; ok {
			out[i] = n
		}
	}
	return out
}

// renamed reports a sensor's metrics under configured names.
type renamed struct {
	s     Sensor
	names map[string]string
}

func rename(s Sensor, names map[string]string) Sensor {
	if len(names) == 0 {
		return s
	}
	return &renamed{s: s, names: names}
}

func (r *renamed) Read(ctx context.Context) ([]sensors.Reading, error) {
	rs, err := r.s.Read(ctx)
	for i := range rs {
		if n, ok := r.names[rs[i].Metric]; ok {
			rs[i].Metric = n
		}
	}
	return rs, err
}

// Notice forwards the driver's notice (see ds18b20.Dev.Notice), if it has
// one.
func (r *renamed) Notice() string {
	if n, ok := r.s.(interface{ Notice() string }); ok {
		return n.Notice()
	}
	return ""
}

// sameBus tells whether two buses are the same one, without panicking on
// bus types that are not comparable.
func sameBus(a, b any) bool {
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	return ta == tb && ta != nil && ta.Comparable() && a == b
}

// switchDuration is a duration that may also be "off".
type switchDuration struct {
	d   time.Duration
	off bool
	set bool
}

func (s *switchDuration) UnmarshalYAML(n *yamlconf.Node) error {
	if n.Kind != yamlconf.ScalarNode {
		return errors.New("want a duration such as 20ms, or off")
	}
	s.set = true
	if n.Value == "off" || n.Value == "0" {
		s.off = true
		return nil
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil || d <= 0 {
		return fmt.Errorf("%q: want a positive duration such as 20ms, or off", n.Value)
	}
	s.d = d
	return nil
}
