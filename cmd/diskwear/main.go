// Command diskwear measures what the real agent writes to its disk, the
// figure that decides how long a gateway's SD card lives. For each case it
// starts the agent binary on a fresh data directory with N simulated
// devices read every second, waits past start-up, reads the agent's
// write_bytes from /proc/<pid>/io at the start and the end of a window of
// at least a minute, stops the agent, and counts the readings it stored in
// the window. It prints bytes per minute, per day and per reading next to
// the floor of one 4 KiB page per group commit.
//
// The cases (-cases):
//
//	connected      N devices, the MQTT uplink forwarding to a Mosquitto that diskwear starts
//	offline        N devices, the MQTT uplink configured but its broker down
//	connected-many M devices (-many), connected
//	none           N devices, no uplink
//
// With -baseline it measures a second agent binary (say, one built from an
// older commit) in the same run, case by case, and prints the ratio:
//
//	git worktree add /tmp/old <commit> && (cd /tmp/old && go build -o /tmp/agent-old ./cmd/agent)
//	go run ./cmd/diskwear -baseline /tmp/agent-old
//
// Run it on a disk-backed file system (-dir): tmpfs counts no writes. On a
// gateway, read the running agent the same way:
//
//	cat /proc/$(pidof floorhub-agent)/io
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/floorhub/floorhub/agent"
	"github.com/floorhub/floorhub/store"
)

// pageFloor is the least one commit can write: one page.
const pageFloor = 4096

func main() {
	var (
		agentBin = flag.String("agent", "", "agent binary to measure (default: go build ./cmd/agent into the work directory)")
		baseline = flag.String("baseline", "", "a second agent binary measured the same way, for a ratio (e.g. built from an older commit)")
		cases    = flag.String("cases", "connected,offline,connected-many", "cases to run, comma-separated: connected, offline, connected-many, none")
		devices  = flag.Int("devices", 10, "simulated devices in the connected, offline and none cases")
		many     = flag.Int("many", 100, "simulated devices in the connected-many case")
		interval = flag.Duration("interval", time.Second, "read interval of each device")
		commit   = flag.Duration("commit-interval", 0, "store.commit_interval to configure (0: the agent's default)")
		agentDef = flag.Duration("default-commit-interval", 10*time.Second, "the agent's default commit interval, for the floor when -commit-interval is 0")
		baseDef  = flag.Duration("baseline-commit-interval", time.Second, "the baseline agent's default commit interval (1s before issue 13), for its floor when -commit-interval is 0")
		warmup   = flag.Duration("warmup", 15*time.Second, "wait after the agent is up before the window starts")
		window   = flag.Duration("duration", 60*time.Second, "length of the measured window (the issue's measure: at least 60s)")
		dir      = flag.String("dir", "", "work directory on the disk to measure (default: a new directory under $TMPDIR)")
		keep     = flag.Bool("keep", false, "keep the work directory (data directories, configs, logs)")
	)
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("diskwear: ")
	if *window < time.Minute {
		log.Printf("warning: a window of %v is shorter than the 60 s the figures are defined over", *window)
	}
	work, err := workDir(*dir)
	if err != nil {
		log.Fatal(err)
	}
	if !*keep {
		defer os.RemoveAll(work)
	}
	if *agentBin == "" {
		*agentBin = filepath.Join(work, "agent")
		log.Printf("building the agent into %s", *agentBin)
		if err := build(*agentBin); err != nil {
			log.Fatal(err)
		}
	}
	// floor is the bytes per minute of one page per commit.
	floor := func(def time.Duration) float64 {
		if *commit > 0 {
			def = *commit
		}
		return pageFloor * float64(time.Minute) / float64(def)
	}
	ci := *commit
	if ci == 0 {
		ci = *agentDef
	}

	host, _ := os.Hostname()
	fmt.Printf("diskwear: %s, %s, devices read every %v, commit interval %v, window %v after %v warm-up, work dir %s on %s\n",
		host, time.Now().UTC().Format("2006-01-02 15:04 MST"), *interval, ci, *window, *warmup, work, fsType(work))
	fmt.Printf("floor: one 4 KiB page per commit = %s KB/min", kb(floor(*agentDef)))
	if *baseline != "" && *commit == 0 {
		fmt.Printf(" (baseline, committing every %v: %s KB/min)", *baseDef, kb(floor(*baseDef)))
	}
	fmt.Printf("\n\n")
	fmt.Printf("%-15s %-8s %7s %10s %10s %11s %9s %8s %s\n", "case", "agent", "devices", "KB/min", "MB/day", "B/reading", "readings", "x floor", "notes")

	var failed bool
	for _, name := range strings.Split(*cases, ",") {
		c := caseSpec{name: strings.TrimSpace(name), devices: *devices, interval: *interval, commit: *commit}
		switch c.name {
		case "connected":
			c.broker = true
		case "offline":
			c.brokerDown = true
		case "connected-many":
			c.broker, c.devices = true, *many
		case "none":
		default:
			log.Fatalf("unknown case %q (want connected, offline, connected-many or none)", c.name)
		}
		var base *result
		for _, bin := range []struct {
			label, path string
			def         time.Duration
		}{{"baseline", *baseline, *baseDef}, {"this", *agentBin, *agentDef}} {
			if bin.path == "" {
				continue
			}
			c.every = bin.def
			if c.commit > 0 {
				c.every = c.commit
			}
			r, err := measure(work, bin.path, c, *warmup, *window)
			if err != nil {
				log.Printf("%s (%s): %v", c.name, bin.label, err)
				failed = true
				continue
			}
			perMin := float64(r.bytes) * float64(time.Minute) / float64(r.took)
			notes := r.notes
			if base != nil && base.bytes > 0 {
				notes = append(notes, fmt.Sprintf("%.1fx fewer bytes than the baseline", float64(base.bytes)/float64(r.took)*float64(time.Minute)/perMin))
			}
			perReading := "-"
			if r.readings > 0 {
				perReading = strconv.FormatInt(r.bytes/int64(r.readings), 10)
			}
			fmt.Printf("%-15s %-8s %7d %10s %10.0f %11s %9d %8.1f %s\n", c.name, bin.label, c.devices, kb(perMin),
				perMin*60*24/1e6, perReading, r.readings, perMin/floor(bin.def), strings.Join(notes, "; "))
			if bin.label == "baseline" {
				rr := r
				base = &rr
			}
		}
	}
	if failed {
		os.Exit(1)
	}
}

func kb(b float64) string { return strconv.FormatFloat(b/1000, 'f', 0, 64) }

// caseSpec is one configuration to measure.
type caseSpec struct {
	name               string
	devices            int
	interval, commit   time.Duration
	every              time.Duration // the agent's commit interval, configured or its default
	broker, brokerDown bool
}

// result is what one measurement found.
type result struct {
	bytes    int64         // write_bytes over the window
	took     time.Duration // the window's real length
	readings int           // telemetry records stored with a TS in the window
	notes    []string
}

func workDir(dir string) (string, error) {
	if dir == "" {
		return os.MkdirTemp("", "diskwear-")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	return os.MkdirTemp(dir, "diskwear-")
}

// build compiles the agent of this module.
func build(out string) error {
	cmd := exec.Command("go", "build", "-o", out, "./cmd/agent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/agent (run diskwear from the module's root, or pass -agent): %v\n%s", err, b)
	}
	return nil
}

// fsType names the file system under dir, as /proc/mounts says.
func fsType(dir string) string {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return "unknown file system"
	}
	best, typ := "", "unknown file system"
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && (dir == f[1] || strings.HasPrefix(dir, strings.TrimSuffix(f[1], "/")+"/")) && len(f[1]) > len(best) {
			best, typ = f[1], f[2]
		}
	}
	return typ
}

// measure runs one agent for one case.
func measure(work, bin string, c caseSpec, warmup, window time.Duration) (result, error) {
	var r result
	dir, err := os.MkdirTemp(work, c.name+"-")
	if err != nil {
		return r, err
	}
	url := ""
	switch {
	case c.broker:
		b, err := startBroker(dir)
		if err != nil {
			return r, err
		}
		defer b.stop()
		url = "tcp://" + b.addr
	case c.brokerDown:
		port, err := freePort()
		if err != nil {
			return r, err
		}
		url = fmt.Sprintf("tcp://127.0.0.1:%d", port) // nothing listens there
	}
	cfg := filepath.Join(dir, "floorhub.yaml")
	if err := os.WriteFile(cfg, []byte(config(dir, url, c)), 0o600); err != nil {
		return r, err
	}
	a, err := startAgent(bin, cfg, filepath.Join(dir, "agent.log"))
	if err != nil {
		return r, err
	}
	defer a.kill()
	time.Sleep(warmup)
	w0, err := writeBytes(a.cmd.Process.Pid)
	if err != nil {
		return r, err
	}
	t0 := time.Now()
	time.Sleep(window)
	w1, err := writeBytes(a.cmd.Process.Pid)
	if err != nil {
		return r, err
	}
	t1 := time.Now()
	r.bytes, r.took = w1-w0, t1.Sub(t0)
	if err := a.stop(); err != nil {
		return r, err
	}
	return count(filepath.Join(dir, "data", agent.DBFile), t0, t1, c, r)
}

// config is the agent's YAML for a case.
func config(dir, url string, c caseSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "gateway_id: diskwear\ndata_dir: %s\nlisten: 127.0.0.1:0\nlog: {level: warn}\nrules: []\n", filepath.Join(dir, "data"))
	if c.commit > 0 {
		fmt.Fprintf(&b, "store: {commit_interval: %v}\n", c.commit)
	}
	fmt.Fprintf(&b, "uplink:\n  mqtt:\n    url: %q\n", url)
	b.WriteString("devices:\n")
	for i := 1; i <= c.devices; i++ {
		fmt.Fprintf(&b, "  - {id: %d, driver: sim-env, interval: %v}\n", i, c.interval)
	}
	return b.String()
}

// count opens the stopped agent's store and counts the readings stamped
// within the window; with an uplink it also reports how far the telemetry
// cursor got.
func count(path string, t0, t1 time.Time, c caseSpec, r result) (result, error) {
	st, err := store.Open(path, &store.Options{})
	if err != nil {
		return r, fmt.Errorf("reading the agent's store: %w", err)
	}
	defer st.Close()
	var after uint64
	for {
		recs, err := st.Read(after, 4096, store.KindTelemetry)
		if err != nil {
			return r, err
		}
		for _, rec := range recs {
			if !rec.TS.Before(t0) && rec.TS.Before(t1) {
				r.readings++
			}
		}
		if len(recs) == 0 {
			break
		}
		after = recs[len(recs)-1].Seq
	}
	if c.broker || c.brokerDown {
		cur, err := st.Cursor("mqtt.telemetry")
		if err != nil {
			return r, err
		}
		last := st.Stats().CommittedSeq
		switch {
		// At the stop, the last commit interval's readings are committed
		// and may not be sent yet: they go at the next start.
		case c.broker && last-cur > uint64(c.devices)*uint64(c.every/c.interval+4):
			r.notes = append(r.notes, fmt.Sprintf("NOT FORWARDING: cursor %d of %d", cur, last))
		case c.broker:
			r.notes = append(r.notes, "forwarded")
		case cur > 0:
			r.notes = append(r.notes, fmt.Sprintf("broker down, yet cursor at %d?", cur))
		}
	}
	return r, nil
}

// writeBytes reads write_bytes from /proc/<pid>/io: the bytes the process
// caused to be written to storage (page-cache pages it dirtied).
func writeBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, errors.New("no write_bytes in /proc/<pid>/io")
}

// agentProc is a running agent.
type agentProc struct {
	cmd    *exec.Cmd
	exited chan error
	log    *os.File
}

var urlRE = regexp.MustCompile(`^floorhub is running: dashboard http://\S+$`)

// startAgent runs the agent and waits for its "running" line.
func startAgent(bin, cfg, logPath string) (*agentProc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-config", cfg)
	cmd.Stderr = lf
	out, err := cmd.StdoutPipe()
	if err != nil {
		lf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	a := &agentProc{cmd: cmd, exited: make(chan error, 1), log: lf}
	up := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		said := false
		for sc.Scan() {
			if !said && urlRE.MatchString(sc.Text()) {
				close(up)
				said = true
			}
		}
		a.exited <- cmd.Wait()
		lf.Close()
	}()
	select {
	case <-up:
		return a, nil
	case err := <-a.exited:
		a.exited <- err
		return nil, fmt.Errorf("the agent exited before it was up (%v); see %s", err, logPath)
	case <-time.After(60 * time.Second):
		a.kill()
		return nil, fmt.Errorf("the agent was not up within 60 s; see %s", logPath)
	}
}

// stop asks the agent to stop (SIGINT) and waits for it.
func (a *agentProc) stop() error {
	if err := a.cmd.Process.Signal(syscall.SIGINT); err != nil {
		return err
	}
	select {
	case err := <-a.exited:
		a.exited <- err
		if err != nil {
			return fmt.Errorf("the agent did not stop cleanly: %v", err)
		}
		return nil
	case <-time.After(30 * time.Second):
		a.kill()
		return errors.New("the agent did not stop within 30 s of SIGINT")
	}
}

// kill ends the agent if it still runs.
func (a *agentProc) kill() {
	select {
	case err := <-a.exited:
		a.exited <- err
	default:
		_ = a.cmd.Process.Kill()
		a.exited <- <-a.exited
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// broker is a Mosquitto on a loopback port.
type broker struct {
	cmd    *exec.Cmd
	addr   string
	exited chan error
	log    *bytes.Buffer
}

// startBroker starts Mosquitto on a free port. Mosquitto 2 cannot be told
// to pick a port and report it (port 0 means a Unix socket to it), so the
// port is one the kernel just handed out, and a lost race is retried.
func startBroker(dir string) (*broker, error) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
		if _, serr := os.Stat(bin); serr != nil {
			return nil, errors.New("mosquitto not found (apt-get install mosquitto)")
		}
	}
	var lastErr error
	for try := 0; try < 5; try++ {
		lastErr = nil
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n", port)
		if os.Geteuid() == 0 {
			conf += "user root\n"
		}
		cf := filepath.Join(dir, "mosquitto.conf")
		if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
			return nil, err
		}
		b := &broker{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), exited: make(chan error, 1), log: &bytes.Buffer{}}
		b.cmd = exec.Command(bin, "-c", cf)
		b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
		if err := b.cmd.Start(); err != nil {
			return nil, err
		}
		go func() { b.exited <- b.cmd.Wait() }()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case err := <-b.exited:
				b.exited <- err
				lastErr = fmt.Errorf("mosquitto exited (%v): %s", err, b.log)
			default:
			}
			if lastErr != nil {
				break
			}
			if c, err := net.DialTimeout("tcp", b.addr, time.Second); err == nil {
				c.Close()
				return b, nil
			}
			time.Sleep(50 * time.Millisecond)
		}
		if lastErr == nil {
			b.stop()
			lastErr = fmt.Errorf("mosquitto did not listen on %s within 10 s: %s", b.addr, b.log)
		}
	}
	return nil, lastErr
}

func (b *broker) stop() {
	select {
	case err := <-b.exited:
		b.exited <- err
	default:
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-b.exited:
			b.exited <- err
		case <-time.After(10 * time.Second):
			_ = b.cmd.Process.Kill()
			b.exited <- <-b.exited
		}
	}
}
