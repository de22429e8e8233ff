package agent

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"

	"github.com/floorhub/floorhub/internal/testkit"
)

// w1Hardware has only a kernel w1 devices directory.
type w1Hardware string

func (h w1Hardware) I2C(string) (i2c.Bus, error)    { return nil, errors.New("no I2C here") }
func (h w1Hardware) Pin(string) (gpio.PinIO, error) { return nil, errors.New("no GPIO here") }
func (h w1Hardware) W1Dir() string                  { return string(h) }

// A driver's notice (here a DS18B20 whose kernel has no bulk conversion,
// so it converts apart from its bus's other probes) is logged once, when
// the driver is built, with the device it is about.
func TestDriverNoticeLogged(t *testing.T) {
	w1 := t.TempDir()
	if err := os.Mkdir(filepath.Join(w1, "28-0000075e6b1a"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig("test.yaml", []byte(`
devices:
  - {id: 7, name: oven probe, driver: ds18b20, settings: {rom: 28-0000075e6b1a, metrics: {temperature: oven}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.Buffer{}
	l := &lazySensor{spec: cfg.Devices[0].Spec(0), hw: w1Hardware(w1),
		log: slog.New(slog.NewTextHandler(logs, nil)).With("device_id", 7)}
	for range 2 {
		if _, err := l.get(); err != nil {
			t.Fatal(err)
		}
	}
	out := logs.String()
	t.Log(out)
	if strings.Count(out, "device opened with a limitation") != 1 {
		t.Fatalf("want the notice once:\n%s", out)
	}
	for _, want := range []string{"device_id=7", "28-0000075e6b1a converts on its own", "therm_bulk_read"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}
