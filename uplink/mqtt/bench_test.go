package mqtt

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/store"
	"github.com/floorhub/floorhub/uplink"
)

// counter is a subscriber that counts records cheaply, so that it keeps up
// with the drain (the broker's queue limits are raised anyway, see
// startBroker).
type counter struct {
	client  paho.Client
	records atomic.Int64
	msgs    atomic.Int64
}

var seqKey = []byte(`{"seq":`)

func newCounter(b testing.TB, br *broker, filter string) *counter {
	c := &counter{}
	opts := paho.NewClientOptions().AddBroker(br.URL()).SetClientID("counter-" + strconv.Itoa(br.Port)).SetCleanSession(true)
	c.client = paho.NewClient(opts)
	if t := c.client.Connect(); !t.WaitTimeout(20*time.Second) || t.Error() != nil {
		b.Fatalf("counter connect: %v", t.Error())
	}
	t := c.client.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		c.msgs.Add(1)
		c.records.Add(int64(bytes.Count(m.Payload(), seqKey)))
	})
	if !t.WaitTimeout(20*time.Second) || t.Error() != nil {
		b.Fatalf("counter subscribe: %v", t.Error())
	}
	b.Cleanup(func() { c.client.Disconnect(0) })
	return c
}

func (c *counter) waitRecords(b testing.TB, n int64, d time.Duration) {
	b.Helper()
	if !testkit.WaitTrue(d, func() bool { return c.records.Load() >= n }) {
		b.Fatalf("subscriber got %d of %d records within %v", c.records.Load(), n, d)
	}
}

func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkBacklogDrain drains a backlog of FH_BENCH_RECORDS (default
// 1,000,000) stored records to a local Mosquitto through the uplink, and in
// the same run measures two baselines against the same broker:
//
//  1. one record per message at QoS 1, waiting for each PUBACK (a naive
//     uplink), and the same pipelined (up to 64 PUBACKs outstanding);
//  2. mosquitto_pub -l -q 1 pushing one record per line.
//
// Every iteration drains a fresh backlog: a copy of a store filled once,
// made while the timer is stopped, so ns/op is the time to drain it and
// every figure is an average over all iterations. Run it as
//
//	go test -run '^$' -bench BacklogDrain -benchtime 3x ./uplink/mqtt
func BenchmarkBacklogDrain(b *testing.B) {
	total := benchEnv("FH_BENCH_RECORDS", 1_000_000)
	baseN := benchEnv("FH_BENCH_BASELINE", 20_000)
	br := startBroker(b)
	cnt := newCounter(b, br, "floorhub/#")

	// Fill a store once (not timed); each iteration drains a copy of it.
	dir := b.TempDir()
	filled := filepath.Join(dir, "filled.db")
	st, err := store.Open(filled, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < total; i++ {
		if _, err := st.Append(telemetry(i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	last := st.Stats().CommittedSeq
	sample, err := st.Read(0, baseN, store.KindTelemetry)
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	lines := make([][]byte, len(sample))
	for i := range sample {
		lines[i] = uplink.AppendRecord(nil, &sample[i])
	}

	// Sums over the iterations.
	var drain, drainSub, base1, base1p, base2 time.Duration
	var msgs int64
	iters := 0
	for b.Loop() {
		b.StopTimer()
		path := filepath.Join(dir, "drain.db")
		copyFile(b, filled, path)
		st, err := store.Open(path, nil)
		if err != nil {
			b.Fatal(err)
		}
		if got := st.Stats().CommittedSeq; got != last {
			b.Fatalf("the copied store ends at seq %d, not %d", got, last)
		}
		if c, _ := st.Cursor(CursorTelemetry); c != 0 {
			b.Fatalf("the copied store's cursor is at %d, not 0: no backlog to drain", c)
		}
		u, err := New(st, nil, Options{URL: br.URL(), GatewayID: "gw-bench", HeartbeatInterval: time.Hour,
			BatchSize: benchEnv("FH_BENCH_BATCH", 0), MaxInFlight: benchEnv("FH_BENCH_INFLIGHT", 0),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		recsBefore, msgsBefore := cnt.records.Load(), cnt.msgs.Load()

		// The uplink: the only timed part.
		b.StartTimer()
		start := time.Now()
		go func() { done <- u.Run(ctx) }()
		// Polled every 2 ms: noise of about 0.2% on the default drain
		// (1,000,000 records, about a second).
		if !testkit.WaitTrue(5*time.Minute, func() bool { return u.telemetry.Acked() >= last }) {
			b.Fatalf("the uplink acknowledged %d of %d within 5 min", u.telemetry.Acked(), last)
		}
		d := time.Since(start)
		b.StopTimer()
		drain += d
		cnt.waitRecords(b, recsBefore+int64(total), 5*time.Minute)
		sub := time.Since(start)
		drainSub += sub
		msgs += cnt.msgs.Load() - msgsBefore
		cancel()
		if err := <-done; err != nil {
			b.Fatal("uplink:", err)
		}
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.Remove(path); err != nil {
			b.Fatal(err)
		}

		// Baseline 1: one record per message.
		client := paho.NewClient(paho.NewClientOptions().AddBroker(br.URL()).SetClientID("baseline"))
		if t := client.Connect(); !t.WaitTimeout(20*time.Second) || t.Error() != nil {
			b.Fatal(t.Error())
		}
		before := cnt.records.Load()
		start = time.Now()
		for _, l := range lines {
			if t := client.Publish("floorhub/base/telemetry", 1, false, l); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
				b.Fatal("baseline publish:", t.Error())
			}
		}
		base1 += time.Since(start)
		cnt.waitRecords(b, before+int64(len(lines)), time.Minute)
		before = cnt.records.Load()
		start = time.Now()
		window := make(chan paho.Token, 64)
		waitOne := func() {
			if t := <-window; !t.WaitTimeout(10*time.Second) || t.Error() != nil {
				b.Fatal("pipelined baseline:", t.Error())
			}
		}
		for _, l := range lines {
			if len(window) == cap(window) {
				waitOne()
			}
			window <- client.Publish("floorhub/base/telemetry", 1, false, l)
		}
		for len(window) > 0 {
			waitOne()
		}
		base1p += time.Since(start)
		cnt.waitRecords(b, before+int64(len(lines)), time.Minute)
		client.Disconnect(0)

		// Baseline 2: mosquitto_pub -l -q 1.
		if pub, err := exec.LookPath("mosquitto_pub"); err != nil {
			if iters == 0 {
				b.Logf("mosquitto_pub not installed (apt-get install mosquitto-clients): baseline 2 not measured")
			}
		} else {
			before = cnt.records.Load()
			cmd := exec.Command(pub, "-h", "127.0.0.1", "-p", strconv.Itoa(br.Port), "-q", "1", "-l", "-t", "floorhub/pub/telemetry")
			cmd.Stdin = bytes.NewReader(append(bytes.Join(lines, []byte("\n")), '\n'))
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			start = time.Now()
			if err := cmd.Run(); err != nil {
				b.Fatalf("mosquitto_pub: %v\n%s", err, out.String())
			}
			base2 += time.Since(start)
			cnt.waitRecords(b, before+int64(len(lines)), time.Minute)
		}
		iters++
		b.Logf("iteration %d: uplink drained %d records in %v (all PUBACKed), subscriber had all after %v",
			iters, total, d.Round(time.Millisecond), sub.Round(time.Millisecond))
		b.StartTimer() // b.Loop wants it running; stopped again at once
	}

	n := float64(iters)
	rate := n * float64(total) / drain.Seconds()
	b1 := n * float64(len(lines)) / base1.Seconds()
	b1p := n * float64(len(lines)) / base1p.Seconds()
	b.ReportMetric(rate, "records/s")
	b.ReportMetric(float64(msgs)/drain.Seconds(), "msgs/s")
	b.ReportMetric(n*float64(total)/drainSub.Seconds(), "subscriber-records/s")
	b.ReportMetric(b1, "base1-records/s")
	b.ReportMetric(b1p, "base1pipe-records/s")
	b.ReportMetric(rate/b1, "x-base1")
	b.ReportMetric(rate/b1p, "x-base1pipe")
	if base2 > 0 {
		pubRate := n * float64(len(lines)) / base2.Seconds()
		b.ReportMetric(pubRate, "mosqpub-msgs/s")
		b.ReportMetric(rate/pubRate, "x-mosqpub")
	}
	b.Log(fmt.Sprintf("%d iterations; uplink: %d records each, %v in all (all PUBACKed), %d messages; "+
		"baseline 1: %d records one per message each, %v in all (waiting each PUBACK), %v (pipelined 64); GOMAXPROCS %d",
		iters, total, drain.Round(time.Millisecond), msgs, len(lines),
		base1.Round(time.Millisecond), base1p.Round(time.Millisecond), runtime.GOMAXPROCS(0)))
}

// copyFile copies the closed store file from to a new file to.
func copyFile(b *testing.B, from, to string) {
	b.Helper()
	src, err := os.Open(from)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		b.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		b.Fatal(err)
	}
}
