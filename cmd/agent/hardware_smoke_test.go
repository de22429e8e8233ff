//go:build hardware

// The hardware smoke test, for a Raspberry Pi with the sensors wired:
//
//	go test -tags hardware -run Hardware -v ./cmd/agent -args -hw.i2c=1 -hw.bme280=0x76
//
// Each -hw.* flag names one thing to try; with none, the test skips. It
// goes through openHardware, the same path as the agent.
package main

import (
	"context"
	"flag"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/floorhub/floorhub/sensors/ads1x15"
	"github.com/floorhub/floorhub/sensors/bme280"
	"github.com/floorhub/floorhub/sensors/ds18b20"
	"github.com/floorhub/floorhub/sensors/ds18b20/ds2482"
	"github.com/floorhub/floorhub/sensors/gpio/gpioin"
	"github.com/floorhub/floorhub/sensors/gpio/pulse"
	"github.com/floorhub/floorhub/sensors/i2cscan"
)

var (
	hwI2C     = flag.String("hw.i2c", "", "I²C bus to scan and to find the chips below on, e.g. 1")
	hwBME     = flag.String("hw.bme280", "", "address of a BME280 or BMP280 on -hw.i2c, e.g. 0x76")
	hwADS     = flag.String("hw.ads1115", "", "address of an ADS1115 on -hw.i2c, e.g. 0x48 (reads AIN0, ±4.096 V)")
	hwDS2482  = flag.String("hw.ds2482", "", "address of a DS2482-100 on -hw.i2c, e.g. 0x18 (searches and reads its probes)")
	hwW1      = flag.String("hw.w1", "", "ROM id of a DS18B20 on the kernel's w1 bus, e.g. 28-0000075e6b1a")
	hwInput   = flag.String("hw.input", "", "GPIO of a digital input, e.g. GPIO17")
	hwCounter = flag.String("hw.counter", "", "GPIO of a pulse input, e.g. GPIO27 (counts for -hw.wait)")
	hwWait    = flag.Duration("hw.wait", 5*time.Second, "how long to count pulses")
)

func addr(t *testing.T, s string) uint16 {
	t.Helper()
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 8)
	if err != nil {
		t.Fatalf("address %q: %v", s, err)
	}
	return uint16(v)
}

func TestHardwareSmoke(t *testing.T) {
	if *hwI2C == "" && *hwW1 == "" && *hwInput == "" && *hwCounter == "" {
		t.Skip("no -hw.* flag given: nothing to try (see the file's comment)")
	}
	hw, err := openHardware()
	if err != nil {
		t.Fatal(err)
	}
	defer hw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	if *hwI2C != "" {
		b, err := hw.I2C(*hwI2C)
		if err != nil {
			t.Fatal(err)
		}
		found, err := i2cscan.Scan(ctx, b, nil)
		if err != nil {
			t.Fatal(err)
		}
		writeScan(os.Stderr, *hwI2C, found, w1Probes(hw.W1Dir()))
		if *hwBME != "" {
			d, err := bme280.NewI2C(b, addr(t, *hwBME), &bme280.Opts{Temperature: 2, Pressure: 16, Humidity: 1, Filter: 4})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				e, err := d.Sense(ctx)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s: %.2f °C, %.2f hPa, humidity %.2f %% (%v)", d, e.Temperature, e.Pressure, e.Humidity, e.HasHumidity)
				if e.Temperature < -40 || e.Temperature > 85 || e.Pressure < 300 || e.Pressure > 1100 {
					t.Errorf("implausible: %+v", e)
				}
			}
		}
		if *hwADS != "" {
			d, err := ads1x15.NewI2C(b, addr(t, *hwADS), &ads1x15.Opts{Channels: []ads1x15.Channel{{Input: ads1x15.AIN0, FullScale: 4.096}}})
			if err != nil {
				t.Fatal(err)
			}
			rs, err := d.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %+v", d, rs)
		}
		if *hwDS2482 != "" {
			br, err := ds2482.New(b, addr(t, *hwDS2482), nil)
			if err != nil {
				t.Fatal(err)
			}
			roms, err := br.Search(false)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range roms {
				if byte(r) != 0x28 {
					t.Logf("%s: %016x is not a DS18B20", br, uint64(r))
					continue
				}
				d, err := ds18b20.New(br, r, nil)
				if err != nil {
					t.Fatal(err)
				}
				c, err := d.Sense(ctx)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s: %.4f °C", d, c)
			}
		}
	}
	if *hwW1 != "" {
		rom, err := ds18b20.ParseROM(*hwW1)
		if err != nil {
			t.Fatal(err)
		}
		d, err := ds18b20.NewW1(hw.W1Dir(), rom, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := d.Sense(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %.4f °C", d, c)
	}
	if *hwInput != "" {
		p, err := hw.Pin(*hwInput)
		if err != nil {
			t.Fatal(err)
		}
		d, err := gpioin.New(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		rs, err := d.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %+v", d, rs)
	}
	if *hwCounter != "" {
		p, err := hw.Pin(*hwCounter)
		if err != nil {
			t.Fatal(err)
		}
		d, err := pulse.New(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		t.Logf("counting pulses on %s for %v", p, *hwWait)
		select {
		case <-time.After(*hwWait): // a fixed window is the point here: count what comes
		case <-ctx.Done():
		}
		rs, err := d.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %+v", d, rs)
	}
}
