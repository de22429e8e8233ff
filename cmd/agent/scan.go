package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"

	"github.com/floorhub/floorhub/sensors/i2cscan"
)

// runScan implements `agent scan [-bus 1]`: the I²C addresses that answer,
// with the chips recognised, and the 1-Wire probes the kernel lists.
func runScan(args []string) int {
	fs := flag.NewFlagSet("agent scan", flag.ContinueOnError)
	bus := fs.String("bus", "1", "I²C `bus` to scan: a number or /dev/i2c-N")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "agent scan: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	hw, err := openHardware()
	if err != nil {
		fmt.Fprintln(os.Stderr, "agent scan:", err)
		return exitFail
	}
	defer hw.Close()
	b, err := hw.I2C(*bus)
	if err != nil {
		fmt.Fprintln(os.Stderr, "agent scan:", err)
		return exitFail
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	found, err := i2cscan.Scan(ctx, b, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "agent scan:", err)
		return exitFail
	}
	writeScan(os.Stdout, *bus, found, w1Probes(hw.W1Dir()))
	return exitOK
}

// w1Probes lists the temperature probes the kernel's w1 bus has found;
// nil when there is no w1 bus.
func w1Probes(dir string) []string {
	var out []string
	for _, fam := range []string{"28-", "22-", "3b-"} {
		m, _ := filepath.Glob(filepath.Join(dir, fam+"*"))
		for _, p := range m {
			out = append(out, filepath.Base(p))
		}
	}
	sort.Strings(out)
	return out
}

func writeScan(w io.Writer, bus string, found []i2cscan.Device, probes []string) {
	fmt.Fprintf(w, "I²C bus %s: %d address(es) answered (0x08-0x77)\n", strings.TrimPrefix(bus, "/dev/i2c-"), len(found))
	if len(found) > 0 {
		// Columns padded with fmt widths; text/tabwriter would cost the
		// arm64 binary about 10 KB for this one table.
		width := len("CHIP")
		for _, d := range found {
			width = max(width, len(d.Chip))
		}
		fmt.Fprintf(w, "ADDR  %-*s  DETAIL\n", width, "CHIP")
		for _, d := range found {
			chip := d.Chip
			if chip == "" {
				chip = "?"
			}
			fmt.Fprintf(w, "0x%02x  %-*s  %s\n", d.Addr, width, chip, d.Detail)
		}
	}
	if len(probes) > 0 {
		fmt.Fprintf(w, "\n1-Wire probes on the kernel's w1 bus (driver: ds18b20, settings: {rom: ...}):\n")
		for _, p := range probes {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
}
