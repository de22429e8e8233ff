//go:build profile

package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// A binary built with -tags profile writes a CPU profile of the whole run
// to the file named by FLOORHUB_CPUPROFILE (for performance work, see
// BENCHMARKS.md). Ordinary builds have neither the option nor its code.
func init() {
	path := os.Getenv("FLOORHUB_CPUPROFILE")
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "agent: FLOORHUB_CPUPROFILE:", err)
		os.Exit(exitUsage)
	}
	stopProfile = func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
