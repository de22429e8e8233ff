package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/host/v3/gpioioctl"
	_ "periph.io/x/host/v3/sysfs" // I²C through /dev/i2c-*
)

// w1Devices is where the kernel lists 1-Wire slaves (w1-gpio overlay).
const w1Devices = "/sys/bus/w1/devices"

// hostHardware is the real host's buses and pins, handed to the sensor
// catalog. It is the only place that initialises periph's host drivers.
// A nil *hostHardware hands out nothing, with a clear error.
type hostHardware struct {
	mu    sync.Mutex
	buses map[string]i2c.BusCloser // by bus number, opened on first use
}

// openHardware initialises the two periph host drivers a gateway uses:
// sysfs for I²C (/dev/i2c-*) and gpioioctl for GPIO through the kernel's
// character device (/dev/gpiochip*), which the systemd unit grants through
// groups. Not host.Init: it would also register every board periph knows
// and memory-mapped GPIO (/dev/gpiomem), about 0.3 MiB more binary for
// nothing the agent uses.
func openHardware() (*hostHardware, error) {
	if _, err := driverreg.Init(); err != nil {
		return nil, fmt.Errorf("hardware: periph host init: %w", err)
	}
	aliasGPIONumbers()
	return &hostHardware{buses: map[string]i2c.BusCloser{}}, nil
}

// aliasGPIONumbers makes "GPIO<n>" name BCM GPIO n (line n of the
// Raspberry Pi chip that drives the 40-pin header) where the device tree
// named the line otherwise: on a Pi 4, GPIO4 is "GPIO_GCLK" and GPIO14
// "TXD1".
func aliasGPIONumbers() {
	header := map[string]bool{"pinctrl-bcm2835": true, "pinctrl-bcm2711": true, "pinctrl-rp1": true}
	for _, c := range gpioioctl.Chips {
		if !header[c.Label()] {
			continue
		}
		for n, l := range c.Lines() {
			alias := "GPIO" + strconv.Itoa(n)
			if n > 27 || l.Name() == "" || l.Name() == alias || gpioreg.ByName(alias) != nil || gpioreg.ByName(l.Name()) == nil {
				continue
			}
			_ = gpioreg.RegisterAlias(alias, l.Name()) // best effort: the line's own name still works
		}
		return
	}
}

var errNoHost = errors.New("hardware: host not initialised")

// I2C opens the bus named "1", "i2c-1" or "/dev/i2c-1" once and shares it.
// A failed open is not remembered, so a bus enabled later is found by the
// next call.
func (h *hostHardware) I2C(name string) (i2c.Bus, error) {
	if h == nil {
		return nil, errNoHost
	}
	n := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(name), "/dev/"), "i2c-")
	if _, err := strconv.Atoi(n); err != nil {
		return nil, fmt.Errorf("hardware: I²C bus %q: want a number, e.g. 1 or /dev/i2c-1", name)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if b, ok := h.buses[n]; ok {
		return b, nil
	}
	if len(i2creg.All()) == 0 {
		return nil, errors.New("hardware: no I²C bus on this host (on a Raspberry Pi: dtparam=i2c_arm=on in config.txt)")
	}
	b, err := i2creg.Open(n)
	if err != nil {
		return nil, fmt.Errorf("hardware: I²C bus %s (the agent needs the i2c group for /dev/i2c-%s): %w", n, n, err)
	}
	h.buses[n] = b
	return b, nil
}

// Pin returns the GPIO pin periph knows by that name ("GPIO17", or "17"
// for the same).
func (h *hostHardware) Pin(name string) (gpio.PinIO, error) {
	if h == nil {
		return nil, errNoHost
	}
	if _, err := strconv.Atoi(name); err == nil {
		name = "GPIO" + name
	}
	p := gpioreg.ByName(name)
	if p == nil {
		return nil, fmt.Errorf("hardware: no GPIO pin %q on this host", name)
	}
	return p, nil
}

// W1Dir is the kernel's 1-Wire devices directory.
func (h *hostHardware) W1Dir() string { return w1Devices }

// Close closes the buses opened so far.
func (h *hostHardware) Close() error {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	for n, b := range h.buses {
		if err := b.Close(); err != nil {
			errs = append(errs, fmt.Errorf("hardware: close I²C bus %s: %w", n, err))
		}
		delete(h.buses, n)
	}
	return errors.Join(errs...)
}
