package pulse

import (
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

// BenchmarkCount is the edges per second the counter takes from a fake
// pin; BenchmarkEdgeBaseline is the same pin drained by a bare
// WaitForEdge loop. Their ratio is the counter's own cost per edge.
func BenchmarkCount(b *testing.B) {
	p := &gpiotest.Pin{N: "GPIO27", EdgesChan: make(chan gpio.Level)}
	d, err := New(p, &Opts{Poll: 50 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	for b.Loop() {
		p.EdgesChan <- gpio.High
	}
}

func BenchmarkEdgeBaseline(b *testing.B) {
	p := &gpiotest.Pin{N: "GPIO27", EdgesChan: make(chan gpio.Level)}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			p.WaitForEdge(50 * time.Millisecond)
		}
	}()
	for b.Loop() {
		p.EdgesChan <- gpio.High
	}
	close(stop)
	<-done
}
