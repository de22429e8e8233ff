// Package catalog builds sensor drivers from their configuration.
//
// Each driver registers itself under the name used in the config's
// `driver:` key. Validate checks a whole list of device specs (driver
// settings, addresses and pins claimed twice) without touching hardware, so
// `agent -check-config` can run anywhere; Build opens the device on the
// buses the Hardware hands out. This package never initialises the host:
// only cmd/agent does that.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"

	"github.com/floorhub/floorhub/internal/yamlconf"
	"github.com/floorhub/floorhub/sensors"
)

// ErrUnknownDriver is returned for a driver name nobody registered.
var ErrUnknownDriver = errors.New("catalog: unknown driver")

// Spec is one device as configured.
type Spec struct {
	// ID is the device number from the config (the APIs' device_id).
	ID int
	// Name is a label for people; errors name the device by it when set.
	Name string
	// Driver selects the registered driver, e.g. "bme280" or "sim-env".
	Driver string
	// Bus names the bus: an I2C bus ("1" or "/dev/i2c-1"), or a 1-Wire bus.
	Bus string
	// Address is the I2C address; 0 means the driver's default.
	Address int
	// Pin is a GPIO pin name as periph knows it, e.g. "GPIO17".
	Pin string
	// Settings holds the driver-specific keys; drivers decode it strictly
	// (unknown keys are errors). Its Kind is 0 when absent.
	Settings yamlconf.Node
	// Line is the config line of the device, for error messages.
	Line int
}

// Label names the device in error messages.
func (s *Spec) Label() string {
	if s.Name != "" {
		return fmt.Sprintf("device %d (%s)", s.ID, s.Name)
	}
	return fmt.Sprintf("device %d", s.ID)
}

// Decode decodes the spec's settings into v, refusing unknown keys. An
// absent settings block leaves v as it is.
func (s *Spec) Decode(v any) error {
	if s.Settings.Kind == 0 {
		return nil
	}
	err := yamlconf.Decode(&s.Settings, v)
	var e *yamlconf.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e) && e.Path != "":
		return fmt.Errorf("settings (line %d): %s: %s", e.Line, e.Path, e.Msg)
	case errors.As(err, &e):
		return fmt.Errorf("settings (line %d): %s", e.Line, e.Msg)
	}
	return fmt.Errorf("settings (line %d): %v", s.Settings.Line, err)
}

// Sensor is what Build returns: a synchronous read of one device. Drivers
// that hold goroutines or files also implement io.Closer.
type Sensor interface {
	Read(ctx context.Context) ([]sensors.Reading, error)
}

// Hardware hands out the buses and pins that drivers use. cmd/agent
// implements it on the real host; tests implement it with periph's fakes.
type Hardware interface {
	// I2C returns the bus with that name ("1" or "/dev/i2c-1"). Buses are
	// shared: the same name returns the same bus.
	I2C(name string) (i2c.Bus, error)
	// Pin returns the GPIO pin with that name ("GPIO17").
	Pin(name string) (gpio.PinIO, error)
	// W1Dir is the kernel's 1-Wire devices directory, normally
	// /sys/bus/w1/devices.
	W1Dir() string
}

// Driver is one registered driver family.
type Driver struct {
	// Check validates the spec without hardware; the error need not name
	// the device, Validate adds that.
	Check func(s *Spec) error
	// Claims lists the resources the device takes exclusively, such as
	// "i2c 1 0x76" or "pin GPIO17", so that two devices cannot share one.
	Claims func(s *Spec) []string
	// Metrics lists the metric names the device reports (after renames),
	// for the rules that watch it; called only on a spec Check accepted.
	Metrics func(s *Spec) []string
	// Build opens the device.
	Build func(s *Spec, hw Hardware) (Sensor, error)
	// SharesLine tells that devices of this driver may share a line that
	// serves one request at a time, each read waiting for the others (a
	// Modbus RTU bus, a Modbus TCP server's connection): read together,
	// the last would wait for all the others every time, so the agent
	// spreads their reads by default.
	SharesLine bool
}

var drivers = map[string]Driver{}

// Register adds a driver under name. It panics on a duplicate name: that
// is a programming error caught at start-up, never a runtime condition.
func Register(name string, d Driver) {
	if _, dup := drivers[name]; dup {
		panic("catalog: driver registered twice: " + name)
	}
	drivers[name] = d
}

// SharesLine tells whether devices of the named driver share a line that
// serves one request at a time (see Driver.SharesLine); false for an
// unknown driver.
func SharesLine(driver string) bool { return drivers[driver].SharesLine }

// Drivers returns the registered driver names, sorted.
func Drivers() []string {
	names := make([]string, 0, len(drivers))
	for n := range drivers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Validate checks every spec and the resources they claim. The error names
// each device that is wrong, with its config line.
func Validate(specs []Spec) error {
	var errs []error
	claimed := map[string]string{}
	for i := range specs {
		s := &specs[i]
		d, ok := drivers[s.Driver]
		if !ok {
			errs = append(errs, fmt.Errorf("line %d: %s: %w %q (known: %s)", s.Line, s.Label(), ErrUnknownDriver, s.Driver, strings.Join(Drivers(), ", ")))
			continue
		}
		if d.Check != nil {
			if err := d.Check(s); err != nil {
				errs = append(errs, fmt.Errorf("line %d: %s: %s: %w", s.Line, s.Label(), s.Driver, err))
				continue
			}
		}
		if d.Claims == nil {
			continue
		}
		for _, c := range d.Claims(s) {
			if other, dup := claimed[c]; dup {
				errs = append(errs, fmt.Errorf("line %d: %s: %s is already used by %s", s.Line, s.Label(), c, other))
				continue
			}
			claimed[c] = s.Label()
		}
	}
	return errors.Join(errs...)
}

// Metrics returns the metric names a device reports, without hardware.
// Call Validate first.
func Metrics(s *Spec) ([]string, error) {
	d, ok := drivers[s.Driver]
	if !ok {
		return nil, fmt.Errorf("%s: %w %q", s.Label(), ErrUnknownDriver, s.Driver)
	}
	if d.Check != nil {
		if err := d.Check(s); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Label(), err)
		}
	}
	return d.Metrics(s), nil
}

// Build opens one device. Call Validate first.
func Build(s *Spec, hw Hardware) (Sensor, error) {
	d, ok := drivers[s.Driver]
	if !ok {
		return nil, fmt.Errorf("%s: %w %q", s.Label(), ErrUnknownDriver, s.Driver)
	}
	sen, err := d.Build(s, hw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Label(), err)
	}
	return sen, nil
}
