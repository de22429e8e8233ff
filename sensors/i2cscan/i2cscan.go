// Package i2cscan lists the addresses that answer on an I²C bus and names
// the chips it recognises, as a technician commissioning a gateway needs.
//
// Every address from 0x08 to 0x77 is probed with a one-byte read, as
// i2cdetect -r does (a zero-length write cannot be issued through the Linux
// i2c-dev read/write interface). Answering addresses are then identified
// where the chip has something to identify it by:
//
//   - 0x76, 0x77: the chip-id register 0xD0 (0x60 BME280, 0x58 BMP280,
//     0x61 BME680, 0x55 BMP180);
//   - 0x48 to 0x4B: the ADS1x15 config register, 0x8583 at power-on;
//   - 0x18 to 0x1B: a DS2482 device reset, answered with RST set.
//
// The DS2482 check resets that bridge: run a scan with the agent stopped.
package i2cscan

import (
	"context"
	"errors"
	"fmt"

	"periph.io/x/conn/v3/i2c"
)

// Device is one address that answered.
type Device struct {
	// Addr is the 7-bit address.
	Addr uint16
	// Chip names the chip when it was recognised, e.g. "BME280"; empty
	// otherwise.
	Chip string
	// Detail says how it was recognised ("chip id 0x60"), or for an
	// unrecognised address which chips commonly sit there.
	Detail string
}

// Opts bounds the scan. The zero value scans 0x08 to 0x77, the addresses
// not reserved by the I²C specification.
type Opts struct {
	// First and Last are the inclusive range; 0 means 0x08 and 0x77.
	First, Last uint16
}

// hints name what commonly answers at an address, for the ones not
// identified by a register.
var hints = map[uint16]string{
	0x20: "I/O expander (PCF8574, MCP23017)?", 0x27: "I/O expander or LCD backpack (PCF8574)?",
	0x3C: "OLED display (SSD1306)?", 0x3D: "OLED display (SSD1306)?",
	0x40: "INA219, HTU21D or PCA9685?", 0x44: "SHT3x humidity sensor?", 0x45: "SHT3x humidity sensor?",
	0x50: "EEPROM (a HAT's ID EEPROM)?", 0x57: "EEPROM?", 0x68: "RTC (DS1307, DS3231) or MPU-6050?",
	0x5C: "AM2320 or BH1750?", 0x23: "BH1750 light sensor?", 0x29: "VL53L0X or TSL2591?",
}

// Scan probes the bus. An address that does not acknowledge is simply not
// listed; only a canceled ctx or bad options are errors.
func Scan(ctx context.Context, b i2c.Bus, opts *Opts) ([]Device, error) {
	if b == nil {
		return nil, errors.New("i2cscan: no I²C bus")
	}
	first, last := uint16(0x08), uint16(0x77)
	if opts != nil {
		if opts.First != 0 {
			first = opts.First
		}
		if opts.Last != 0 {
			last = opts.Last
		}
	}
	if first > last || last > 0x7F {
		return nil, fmt.Errorf("i2cscan: range 0x%02X to 0x%02X: want 7-bit addresses, first before last", first, last)
	}
	var found []Device
	for a := first; a <= last; a++ {
		if err := ctx.Err(); err != nil {
			return found, err
		}
		var r [1]byte
		if b.Tx(a, nil, r[:]) != nil {
			continue
		}
		d := identify(b, a)
		if d.Chip == "" && d.Detail == "" {
			d.Detail = hints[a]
		}
		found = append(found, d)
	}
	return found, nil
}

func identify(b i2c.Bus, a uint16) Device {
	d := Device{Addr: a}
	switch {
	case a == 0x76 || a == 0x77:
		var id [1]byte
		if b.Tx(a, []byte{0xD0}, id[:]) != nil {
			d.Detail = "BME280/BMP280 address, chip id unreadable"
			return d
		}
		d.Chip = map[byte]string{0x60: "BME280", 0x58: "BMP280", 0x56: "BMP280", 0x57: "BMP280", 0x61: "BME680", 0x55: "BMP180"}[id[0]]
		d.Detail = fmt.Sprintf("chip id 0x%02X", id[0])
		if d.Chip == "" {
			d.Detail += ", not a Bosch sensor this agent knows"
		}
	case a >= 0x48 && a <= 0x4B:
		var c [2]byte
		if b.Tx(a, []byte{0x01}, c[:]) != nil {
			d.Detail = "ADS1x15 address, config unreadable"
			return d
		}
		cfg := uint16(c[0])<<8 | uint16(c[1])
		switch {
		case cfg == 0x8583:
			d.Chip, d.Detail = "ADS1115/ADS1015", "config 0x8583 (power-on default)"
		case cfg&0x8103 == 0x8103:
			// Idle, single-shot, comparator off: as the ads1x15 driver
			// leaves it.
			d.Chip, d.Detail = "ADS1115/ADS1015", fmt.Sprintf("config 0x%04X (configured)", cfg)
		default:
			d.Detail = fmt.Sprintf("register 1 reads 0x%04X: not an idle ADS1x15 (TMP102, LM75?)", cfg)
		}
	case a >= 0x18 && a <= 0x1B:
		var st [1]byte
		if b.Tx(a, []byte{0xF0}, st[:]) == nil && st[0]&^0x08 == 0x10 {
			d.Chip, d.Detail = "DS2482-100", "1-Wire bridge, answered a device reset"
		} else {
			d.Detail = "not a DS2482 (MCP9808 or LIS3DH?)"
		}
	}
	return d
}
