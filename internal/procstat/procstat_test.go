package procstat

import (
	"os"
	"testing"
	"time"
)

// The test's own process: some CPU used, some memory resident; a process
// that does not exist reads as zero.
func TestSelf(t *testing.T) {
	// Busy until the kernel has counted a tick of CPU (10 ms), at most 5 s.
	x, deadline := 0, time.Now().Add(5*time.Second)
	for CPU(os.Getpid()) == 0 && time.Now().Before(deadline) {
		for i := range 1_000_000 {
			x += i
		}
	}
	if c := CPU(os.Getpid()); c <= 0 {
		t.Errorf("CPU of self = %v after 5 s busy (x=%d)", c, x)
	}
	if r := RSS(os.Getpid()); r < 1<<20 {
		t.Errorf("RSS of self = %d bytes", r)
	}
	if CPU(-1) != 0 || RSS(0) != 0 || RSS(1<<30) != 0 {
		t.Error("a missing process must read as zero")
	}
}
