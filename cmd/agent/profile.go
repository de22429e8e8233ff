//go:build profile

package main

import (
	_ "expvar"
	"fmt"
	"net/http"
	_ "net/http/pprof" // served on FLOORHUB_PPROF only, with expvar's memstats
	"os"
	"runtime"
	"runtime/pprof"
)

// A binary built with -tags profile writes a CPU profile of the whole run
// to the file named by FLOORHUB_CPUPROFILE, and serves net/http/pprof (heap,
// goroutines) on the address in FLOORHUB_PPROF, for performance work (see
// BENCHMARKS.md). Ordinary builds have neither the options nor their code.
func init() {
	if addr := os.Getenv("FLOORHUB_PPROF"); addr != "" {
		if os.Getenv("FLOORHUB_CPUPROFILE") == "" {
			runtime.MemProfileRate = 64 // heap profiles precise to the connection
		}
		go func() {
			err := http.ListenAndServe(addr, nil)
			fmt.Fprintln(os.Stderr, "agent: FLOORHUB_PPROF:", err)
		}()
	}
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
