package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/floorhub/floorhub/sensors/i2cscan"
)

func TestWriteScan(t *testing.T) {
	var b strings.Builder
	writeScan(&b, "/dev/i2c-1", []i2cscan.Device{
		{Addr: 0x48, Chip: "ADS1115/ADS1015", Detail: "config 0x8583 (power-on default)"},
		{Addr: 0x3c, Detail: "OLED display (SSD1306)?"},
		{Addr: 0x76, Chip: "BME280", Detail: "chip id 0x60"},
	}, []string{"28-0000075e6b1a"})
	out := b.String()
	t.Log("\n" + out)
	for _, want := range []string{"I²C bus 1: 3 address(es)", "0x48  ADS1115/ADS1015", "0x3c  ?", "0x76  BME280           chip id 0x60", "28-0000075e6b1a"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestW1Probes(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"28-0000075e6b1a", "w1_bus_master1", "3b-000000112233", "10-000801b5f5b1"} {
		if err := os.Mkdir(filepath.Join(dir, n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got := strings.Join(w1Probes(dir), " ")
	if got != "28-0000075e6b1a 3b-000000112233" {
		t.Fatalf("probes %q", got)
	}
	if p := w1Probes(filepath.Join(dir, "none")); p != nil {
		t.Fatalf("probes %q without a w1 bus", p)
	}
}

func TestNilHardware(t *testing.T) {
	var h *hostHardware
	if _, err := h.I2C("1"); err == nil {
		t.Error("nil hardware opened a bus")
	}
	if _, err := h.Pin("GPIO17"); err == nil {
		t.Error("nil hardware gave a pin")
	}
	if err := h.Close(); err != nil {
		t.Error(err)
	}
}
