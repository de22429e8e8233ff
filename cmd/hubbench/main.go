// Command hubbench measures the hub under load: N authenticated clients
// subscribed to telemetry on loopback while R readings per second are
// published (N x R deliveries per second), reporting the delivered rate,
// the p50/p99 latency from Publish to client receipt and the server's RSS
// per idle connection; then the same with extra clients that never read,
// and the ratio of the two p99s.
//
// By default it runs the hub in this process and the clients in child
// processes (hubbench -clients), so that the RSS it reads is the server's
// alone:
//
//	hubbench -n 1000 -rate 100 -duration 15s -stalled 10
//
// With -url it runs the same phases against a running agent, whose own
// readings are then measured (latency from each reading's timestamp; the
// agent must allow the clients: hub.max_connections above n, and
// max_connections_per_user and connects_per_minute -1):
//
//	hubbench -url ws://127.0.0.1:8000/ws/telemetry -token "$(agent token -user bench)" -pid "$(pidof agent)" -duration 20s -rounds 4
//
// With -clients and -url it only runs clients, reporting after -duration.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/hub"
	"github.com/floorhub/floorhub/hub/wsconn"
	"github.com/floorhub/floorhub/internal/procstat"
	"github.com/floorhub/floorhub/store"
)

func main() {
	var (
		clients  = flag.Bool("clients", false, "run clients only (child mode, or against -url)")
		url      = flag.String("url", "", "measure a running agent at this telemetry endpoint (e.g. ws://127.0.0.1:8000/ws/telemetry) instead of an in-process hub; with -clients: the endpoint the clients use")
		tok      = flag.String("token", "", "with -url: the JWT to authenticate with")
		pid      = flag.Int("pid", 0, "with -url: the agent's process id, for its CPU and RSS")
		n        = flag.Int("n", 1000, "reading clients")
		stalled  = flag.Int("stalled", 10, "clients that never read, added in the second phase")
		rate     = flag.Int("rate", 100, "readings published per second")
		devices  = flag.Int("devices", 10, "devices the readings are spread over")
		duration = flag.Duration("duration", 15*time.Second, "length of each measured phase")
		stall    = flag.Bool("stall", false, "with -clients: the clients never read")
		isChild  = flag.Bool("child", false, "with -clients: driven by a parent hubbench through stdin")
		rounds   = flag.Int("rounds", 1, "phases with stalled clients, each between two baselines")
		cpuprof  = flag.String("cpuprofile", "", "write the server's CPU profile to this file")
		profDir  = flag.String("phaseprofiles", "", "write the server's CPU profile of each phase to this directory (phase-N.prof), to compare phases with pprof -diff_base")
		delay    = flag.Duration("write-delay", 0, "the in-process hub's write delay (wsconn.Options.WriteDelay): 0 its default, negative writes at once")
		serve    = flag.String("serve", "", "only serve a hub on this address (e.g. 127.0.0.1:8000) with -rate simulated readings/s and an alert every 5 s, printing a token: for trying clients by hand")
	)
	flag.Parse()
	if *url != "" && !*clients && (*cpuprof != "" || *profDir != "") {
		log.Fatal("hubbench: -cpuprofile and -phaseprofiles profile the in-process hub: with -url, profile the agent itself")
	}
	raiseFileLimit()
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if *clients {
		if err := runClients(*url, *tok, *n, *stall, *isChild, *duration); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *serve != "" {
		if err := runServe(*serve, *rate, *devices); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *url != "" {
		if err := runAgent(*url, *tok, *pid, *n, *stalled, *rounds, *duration); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *cpuprof != "" && *profDir != "" {
		log.Fatal("hubbench: -cpuprofile and -phaseprofiles exclude each other")
	}
	if err := runServer(*n, *stalled, *rate, *devices, *rounds, *duration, *delay, *profDir); err != nil {
		pprof.StopCPUProfile()
		log.Fatal(err)
	}
}

func raiseFileLimit() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return
	}
	l.Cur = l.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
}

// rssKB reads the process's resident set size after a GC that returns
// freed memory to the OS.
func rssKB() int {
	runtime.GC()
	debug.FreeOSMemory()
	return pidRSSKB(os.Getpid())
}

// child is a client process driven through its stdin and stdout.
type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startChild(args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, append([]string{"-clients", "-child"}, args...)...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	c.out.Buffer(make([]byte, 1<<20), 1<<20)
	return c, nil
}

// startClients starts a child process of n clients (that never read, with
// stall) and waits until they are connected and subscribed.
func startClients(url, tok string, n int, stall bool) (*child, error) {
	args := []string{"-url", url, "-token", tok, "-n", strconv.Itoa(n)}
	if stall {
		args = append(args, "-stall")
	}
	c, err := startChild(args...)
	if err != nil {
		return nil, err
	}
	if l, err := c.line(); err != nil || l != "ready" {
		c.stop()
		return nil, fmt.Errorf("hubbench: clients (stall %v): %q %v", stall, l, err)
	}
	return c, nil
}

// line waits for the child's next output line.
func (c *child) line() (string, error) {
	if !c.out.Scan() {
		if err := c.out.Err(); err != nil {
			return "", err
		}
		return "", errors.New("hubbench: client process ended")
	}
	return c.out.Text(), nil
}

// reset zeroes the child's counters.
func (c *child) reset() error {
	if _, err := io.WriteString(c.in, "reset\n"); err != nil {
		return err
	}
	_, err := c.line()
	return err
}

func (c *child) report() (stats, error) {
	var s stats
	if _, err := io.WriteString(c.in, "report\n"); err != nil {
		return s, err
	}
	l, err := c.line()
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal([]byte(l), &s)
}

func (c *child) stop() {
	c.in.Close()
	c.cmd.Wait()
}

// stats is what a client process reports for one phase.
type stats struct {
	Clients  int     `json:"clients"`
	Messages uint64  `json:"messages"`
	Seconds  float64 `json:"seconds"`
	P50us    float64 `json:"p50_us"`
	P99us    float64 `json:"p99_us"`
	P999us   float64 `json:"p999_us"`
	MaxUs    float64 `json:"max_us"`
	Errors   uint64  `json:"errors"`
}

func runServer(n, stalled, rate, devices, rounds int, duration, writeDelay time.Duration, profDir string) error {
	secret := []byte("hubbench-secret-hubbench-secret!")
	v, err := auth.NewVerifier(auth.VerifierOptions{Secret: secret})
	if err != nil {
		return err
	}
	tok, err := auth.Mint(secret, "bench", 24*time.Hour, auth.Claims{})
	if err != nil {
		return err
	}
	h, err := hub.New(hub.Options{
		Verifier: v,
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Conn: wsconn.Options{
			MaxConns:          n + stalled + 10,
			MaxConnsPerUser:   -1,
			ConnectsPerMinute: -1,
			WriteDelay:        writeDelay,
		},
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", h.Handler())
	mux.Handle("/ws/", h.Handler())
	srv := &http.Server{Handler: mux, ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(ln)
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- h.Run(ctx) }()
	defer func() {
		cancel()
		<-runDone
		srv.Close()
	}()
	url := "ws://" + ln.Addr().String() + "/ws/telemetry"

	fmt.Printf("hubbench: %d clients, %d readings/s over %d devices, %v per phase, %d stalled clients in phase 2, write delay %v\n",
		n, rate, devices, duration, stalled, h.Server().Options().WriteDelay)
	rss0 := rssKB()
	readers, err := startClients(url, tok, n, false)
	if err != nil {
		return err
	}
	defer readers.stop()
	for deadline := time.Now().Add(30 * time.Second); h.Connections() < n && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	rss1 := rssKB()
	fmt.Printf("server RSS: %d KB before, %d KB with %d idle connections: %.1f KB per connection (%d goroutines)\n",
		rss0, rss1, n, float64(rss1-rss0)/float64(n), runtime.NumGoroutine())

	seq := uint64(0)
	publish := func(d time.Duration) uint64 {
		// One reading every 1/rate s, stamped at Publish.
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		end := time.Now().Add(d)
		var sent uint64
		for time.Now().Before(end) {
			<-tick.C
			seq++
			sent++
			h.Publish(store.Record{Seq: seq, Kind: store.KindTelemetry, DeviceID: int(seq % uint64(devices)),
				TS: time.Now(), ClockSynced: true, Metrics: []store.Metric{
					{Name: "temperature", Value: 20 + float64(seq%100)/10, Unit: "°C"},
					{Name: "humidity", Value: 45.2, Unit: "%"},
					{Name: "pressure", Value: 1013.2, Unit: "hPa"},
				}})
		}
		return sent
	}
	return runPhases(target{url: url, tok: tok, publish: publish, cpu: selfCPU, conns: h.Connections},
		readers, n, stalled, rounds, duration, profDir)
}

// target is what the phases measure: the in-process hub, or a running
// agent.
type target struct {
	url, tok string
	// publish makes readings for d and returns how many (0: unknown, the
	// agent makes them itself).
	publish func(d time.Duration) uint64
	// cpu is the server's CPU time so far (nil: unknown).
	cpu func() time.Duration
	// conns is the server's connection count (nil: unknown).
	conns func() int
}

// runAgent measures a running agent: the same phases as runServer, with
// the agent's own readings (latency from each reading's timestamp).
func runAgent(url, tok string, pid, n, stalled, rounds int, duration time.Duration) error {
	if tok == "" {
		return errors.New("hubbench: -url needs -token (agent token -user bench)")
	}
	t := target{url: url, tok: tok, publish: func(d time.Duration) uint64 { time.Sleep(d); return 0 }}
	if pid > 0 {
		t.cpu = func() time.Duration { return procstat.CPU(pid) }
	}
	fmt.Printf("hubbench: %d clients against %s, %v per phase, %d stalled clients in the stalled phases\n", n, url, duration, stalled)
	rss0 := pidRSSKB(pid)
	readers, err := startClients(url, tok, n, false)
	if err != nil {
		return err
	}
	defer readers.stop()
	if pid > 0 {
		fmt.Printf("agent RSS: %d KB before, %d KB with %d subscribers (not idle: the agent keeps publishing)\n", rss0, pidRSSKB(pid), n)
	}
	return runPhases(t, readers, n, stalled, rounds, duration, "")
}

// runPhases runs a warm-up, a baseline, then rounds of a phase with
// stalled extra clients followed by another baseline, printing each
// phase and the stalled/baseline p99 ratios.
func runPhases(t target, readers *child, n, stalled, rounds int, duration time.Duration, profDir string) error {
	waitConns := func(want int) {
		if t.conns == nil {
			time.Sleep(time.Second) // nothing to poll; the clients said ready
			return
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if c := t.conns(); want >= 0 && c >= want || want < 0 && c <= -want {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	cpuNow := func() time.Duration {
		if t.cpu == nil {
			return 0
		}
		return t.cpu()
	}
	phases := 0
	phase := func(name string) (stats, error) {
		if err := readers.reset(); err != nil {
			return stats{}, err
		}
		if profDir != "" {
			f, err := os.Create(filepath.Join(profDir, fmt.Sprintf("phase-%d.prof", phases)))
			if err != nil {
				return stats{}, err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return stats{}, err
			}
			defer pprof.StopCPUProfile()
		}
		phases++
		start := time.Now()
		cpu0, ccpu0 := cpuNow(), procstat.CPU(readers.cmd.Process.Pid)
		sent := t.publish(duration)
		// Let the last deliveries land.
		drainUntil := time.Now().Add(2 * time.Second)
		var s stats
		for {
			var err error
			if s, err = readers.report(); err != nil {
				return s, err
			}
			if sent == 0 || s.Messages >= sent*uint64(n) || time.Now().After(drainUntil) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		el := time.Since(start).Seconds()
		if sent == 0 {
			el = s.Seconds // the readers' own window
		}
		cpu, ccpu := cpuNow()-cpu0, procstat.CPU(readers.cmd.Process.Pid)-ccpu0
		var b strings.Builder
		fmt.Fprintf(&b, "%s: ", name)
		if sent > 0 {
			fmt.Fprintf(&b, "published %d readings; delivered %d of %d (%.2f%%), ", sent, s.Messages, sent*uint64(n),
				100*float64(s.Messages)/float64(sent*uint64(n)))
		} else {
			fmt.Fprintf(&b, "delivered %d, ", s.Messages)
		}
		fmt.Fprintf(&b, "%.0f deliveries/s; latency p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms",
			float64(s.Messages)/el, s.P50us/1000, s.P99us/1000, s.P999us/1000, s.MaxUs/1000)
		if t.conns != nil {
			fmt.Fprintf(&b, "; %d connections", t.conns())
		}
		if t.cpu != nil {
			fmt.Fprintf(&b, "; CPU: server %.2f cores (%.1f µs per delivery)", cpu.Seconds()/el,
				float64(cpu.Microseconds())/float64(max(s.Messages, 1)))
		}
		fmt.Fprintf(&b, "; clients %.2f cores", ccpu.Seconds()/el)
		fmt.Println(b.String())
		return s, nil
	}
	// Warm up (goroutine stacks, heap, TCP windows, the GC's pacing) for a
	// whole phase before measuring: a shorter warm-up left the first
	// baseline measurably faster than the ones after it.
	if _, err := phase("warm-up (not measured)"); err != nil {
		return err
	}
	base, err := phase("baseline 1")
	if err != nil {
		return err
	}
	if stalled == 0 {
		return nil
	}
	// Alternate phases with and without stalled clients; each ratio is
	// against the mean of the baselines on either side, so that the
	// machine's drift cancels out as far as it can.
	var ratios, noise []float64
	for r := 1; r <= rounds; r++ {
		st, err := startClients(t.url, t.tok, stalled, true)
		if err != nil {
			return err
		}
		waitConns(n + stalled)
		time.Sleep(time.Second) // let the new process settle
		with, err := phase(fmt.Sprintf("with %d stalled %d", stalled, r))
		st.stop()
		if err != nil {
			return err
		}
		waitConns(-n)
		time.Sleep(time.Second)
		next, err := phase(fmt.Sprintf("baseline %d", r+1))
		if err != nil {
			return err
		}
		ref := (base.P99us + next.P99us) / 2
		ratios = append(ratios, with.P99us/ref)
		noise = append(noise, abs(base.P99us-next.P99us)/ref)
		base = next
	}
	fmt.Printf("p99 with stalled clients / mean of the neighbouring baselines: %s; median %.3f\n", fmtList(ratios), median(ratios))
	fmt.Printf("difference between neighbouring baselines (the noise floor): %s; median %.3f\n", fmtList(noise), median(noise))
	return nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtList(v []float64) string {
	var parts []string
	for _, f := range v {
		parts = append(parts, fmt.Sprintf("%.3f", f))
	}
	return strings.Join(parts, " ")
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// runServe serves a hub with simulated data until interrupted.
func runServe(addr string, rate, devices int) error {
	secret := []byte("hubbench-secret-hubbench-secret!")
	v, err := auth.NewVerifier(auth.VerifierOptions{Secret: secret})
	if err != nil {
		return err
	}
	tok, err := auth.Mint(secret, "bench", 24*time.Hour, auth.Claims{})
	if err != nil {
		return err
	}
	h, err := hub.New(hub.Options{Verifier: v, Conn: wsconn.Options{ConnectsPerMinute: -1}})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", h.Handler())
	mux.Handle("/ws/", h.Handler())
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()
	ctx, stop := signalContext()
	defer stop()
	go h.Run(ctx)
	fmt.Printf("serving ws://%s/ws\ntoken: %s\n", ln.Addr(), tok)
	tick := time.NewTicker(time.Second / time.Duration(max(rate, 1)))
	defer tick.Stop()
	for seq := uint64(1); ; seq++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		now := time.Now()
		dev := int(seq % uint64(max(devices, 1)))
		if seq%uint64(5*max(rate, 1)) == 0 {
			h.Publish(store.Record{Seq: seq, Kind: store.KindAlert, DeviceID: dev, TS: now, ClockSynced: true,
				Alert: &store.Alert{ID: seq, Rule: "temp_high", Severity: "critical", Title: "High Temperature Alert",
					Message: "Temperature exceeds safe threshold", State: store.AlertActive, Threshold: 30, Actual: 32.5, Metric: "temperature"}})
			h.PublishSystem(hub.System{CPUUsage: 12, MemoryUsage: 30, DiskUsage: 40, Timestamp: now, ClockSynced: true, LastSeq: seq})
			continue
		}
		h.Publish(store.Record{Seq: seq, Kind: store.KindTelemetry, DeviceID: dev, TS: now, ClockSynced: true,
			Metrics: []store.Metric{{Name: "temperature", Value: 23.5, Unit: "°C"}, {Name: "humidity", Value: 45.2, Unit: "%"}}})
	}
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// selfCPU is the CPU time this process used so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// histogram of latencies in 10 µs buckets up to 5 s.
const (
	bucketUs = 10
	buckets  = 500000
)

type histogram struct {
	counts [buckets + 1]atomic.Uint32
	n      atomic.Uint64
	max    atomic.Int64
}

func (h *histogram) add(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	i := us / bucketUs
	if i > buckets {
		i = buckets
	}
	h.counts[i].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			break
		}
	}
}

func (h *histogram) quantile(q float64) float64 {
	total := h.n.Load()
	if total == 0 {
		return 0
	}
	want := uint64(q * float64(total))
	var acc uint64
	for i := range h.counts {
		acc += uint64(h.counts[i].Load())
		if acc > want {
			return float64(i*bucketUs + bucketUs/2)
		}
	}
	return float64(h.max.Load())
}

func (h *histogram) reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
	h.n.Store(0)
	h.max.Store(0)
}

// runClients connects n clients and reports their latencies on "report"
// lines from stdin (in child mode), or after duration (standalone).
func runClients(url, tok string, n int, stall, isChild bool, duration time.Duration) error {
	if url == "" {
		return errors.New("hubbench: -clients needs -url")
	}
	var hist histogram
	var errs atomic.Uint64
	var msgs atomic.Uint64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var conns []*websocket.Conn
	var mu sync.Mutex
	dialer := *websocket.DefaultDialer
	dialer.ReadBufferSize, dialer.WriteBufferSize = 4096, 1024
	if stall {
		dialer.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetReadBuffer(4 << 10)
			}
			return c, err
		}
	}
	sem := make(chan struct{}, 16)
	var dialErr error
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			hdr := http.Header{"Authorization": {"Bearer " + tok}}
			ws, _, err := dialer.DialContext(ctx, url, hdr)
			if err != nil {
				mu.Lock()
				dialErr = err
				mu.Unlock()
				return
			}
			// auth_response, subscribed.
			for range 2 {
				ws.SetReadDeadline(time.Now().Add(30 * time.Second))
				if _, _, err := ws.ReadMessage(); err != nil {
					mu.Lock()
					dialErr = err
					mu.Unlock()
					return
				}
			}
			ws.SetReadDeadline(time.Time{})
			mu.Lock()
			conns = append(conns, ws)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if dialErr != nil {
		return fmt.Errorf("hubbench: dial: %w", dialErr)
	}
	var readers sync.WaitGroup
	if !stall {
		for _, ws := range conns {
			readers.Add(1)
			go func() {
				defer readers.Done()
				read(ws, &hist, &msgs, &errs)
			}()
		}
	}
	fmt.Println("ready")
	start := time.Now()
	report := func() {
		s := stats{Clients: len(conns), Messages: msgs.Load(), Seconds: time.Since(start).Seconds(),
			P50us: hist.quantile(0.50), P99us: hist.quantile(0.99), P999us: hist.quantile(0.999),
			MaxUs: float64(hist.max.Load()), Errors: errs.Load()}
		b, _ := json.Marshal(s)
		fmt.Println(string(b))
	}
	if isChild {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			switch sc.Text() {
			case "report":
				report()
			case "reset":
				hist.reset()
				msgs.Store(0)
				errs.Store(0)
				start = time.Now()
				fmt.Println("ok")
			}
		}
	} else {
		time.Sleep(duration)
		report()
	}
	for _, ws := range conns {
		ws.Close()
	}
	readers.Wait()
	return nil
}

// read receives telemetry and records the latency from each update's
// timestamp, parsed without a full JSON decode to keep the client cheap.
func read(ws *websocket.Conn, hist *histogram, msgs, errs *atomic.Uint64) {
	key := []byte(`"timestamp":"`)
	buf := make([]byte, 0, 1024)
	for {
		_, r, err := ws.NextReader()
		if err != nil {
			return
		}
		buf = buf[:0]
		for {
			if len(buf) == cap(buf) {
				buf = append(buf, 0)[:len(buf)]
			}
			k, err := r.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+k]
			if err == io.EOF {
				break
			}
			if err != nil {
				return
			}
		}
		data := buf
		now := time.Now()
		if !bytes.Contains(data[:min(len(data), 40)], []byte("telemetry_update")) {
			continue
		}
		i := bytes.Index(data, key)
		if i < 0 {
			errs.Add(1)
			continue
		}
		rest := data[i+len(key):]
		j := bytes.IndexByte(rest, '"')
		if j < 0 {
			errs.Add(1)
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, string(rest[:j]))
		if err != nil {
			errs.Add(1)
			continue
		}
		msgs.Add(1)
		hist.add(now.Sub(ts))
	}
}

// pidRSSKB is process pid's resident set size in KB, as this tool prints it.
func pidRSSKB(pid int) int { return int(procstat.RSS(pid) >> 10) }
