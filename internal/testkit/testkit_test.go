package testkit

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a testing.TB that records how a helper ended the test
// instead of ending the real one. Fatalf and Skipf stop the calling
// goroutine, as the real ones do.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Skipf(format string, args ...any) {
	r.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls f with a recorder in its own goroutine, so that Goexit ends
// only that goroutine, and returns the recorder once f has ended.
func run(t *testing.T, f func(testing.TB)) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r
}

func TestWaitTrue(t *testing.T) {
	var n atomic.Int32
	if !WaitTrue(5*time.Second, func() bool { return n.Add(1) >= 3 }) {
		t.Fatal("WaitTrue gave up on a condition that holds on its third check")
	}
	if WaitTrue(10*time.Millisecond, func() bool { return false }) {
		t.Fatal("WaitTrue reported a condition that never holds")
	}
	// A condition is checked once more at the deadline: one that becomes
	// true in the last interval still counts.
	start := time.Now()
	d := 20 * time.Millisecond
	if !WaitTrue(d, func() bool { return time.Since(start) >= d }) {
		t.Fatal("WaitTrue did not check the condition at its deadline")
	}
}

func TestEventually(t *testing.T) {
	var n atomic.Int32
	r := run(t, func(tb testing.TB) {
		Eventually(tb, "three checks", 5*time.Second, func() bool { return n.Add(1) >= 3 })
	})
	if r.fatal != "" {
		t.Fatalf("Eventually failed a condition that holds: %s", r.fatal)
	}
	r = run(t, func(tb testing.TB) {
		Eventually(tb, "the impossible", 10*time.Millisecond, func() bool { return false })
	})
	if want := "timed out after 10ms waiting for the impossible"; r.fatal != want {
		t.Fatalf("failure %q, want %q", r.fatal, want)
	}
}

func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				fmt.Fprintf(&b, "%d\n", i)
				_ = b.String() // reads race with writes unless the buffer locks
			}
		}()
	}
	wg.Wait()
	if got := strings.Count(b.String(), "\n"); got != 800 {
		t.Fatalf("%d lines, want 800", got)
	}
}

func TestListen(t *testing.T) {
	var l net.Listener
	t.Run("open", func(t *testing.T) {
		var addr string
		l, addr = ListenAddr(t)
		if addr != l.Addr().String() || !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
			t.Fatalf("address %q (listener on %v), want 127.0.0.1 and the port the kernel chose", addr, l.Addr())
		}
		go func() {
			c, err := l.Accept()
			if err == nil {
				io.WriteString(c, "hi")
				c.Close()
			}
		}()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got, _ := io.ReadAll(c); string(got) != "hi" {
			t.Fatalf("read %q through the listener, want hi", got)
		}
	})
	// The subtest's cleanup closed the listener.
	if _, err := l.Accept(); err == nil {
		t.Fatal("the listener is still open after its test ended")
	}
}

func TestMissing(t *testing.T) {
	t.Setenv(requireParts, "")
	r := run(t, func(tb testing.TB) { Missing(tb, "no %s here", "mosquitto") })
	if r.fatal != "" || !strings.HasPrefix(r.skip, "no mosquitto here; skipping") {
		t.Fatalf("without %s: skip %q, fatal %q; want a skip naming the part", requireParts, r.skip, r.fatal)
	}
	t.Setenv(requireParts, "1")
	r = run(t, func(tb testing.TB) { Missing(tb, "no %s here", "mosquitto") })
	if r.skip != "" || !strings.HasPrefix(r.fatal, "no mosquitto here (required") {
		t.Fatalf("with %s=1: skip %q, fatal %q; want a failure naming the part", requireParts, r.skip, r.fatal)
	}
}
