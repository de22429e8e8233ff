package mqtt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/floorhub/floorhub/internal/testkit"
)

// mosquittoPath finds Debian's mosquitto. A missing broker skips the test,
// or fails it under scripts/test.sh (testkit.Missing).
func mosquittoPath(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	testkit.Missing(t, "mosquitto not found (apt-get install mosquitto, or run scripts/test.sh)")
	return ""
}

// broker is a real Mosquitto on a loopback port, restartable on the same
// port with its persistent state (so a persistent subscriber keeps its
// subscription and queue across a restart, as a central broker would).
type broker struct {
	t     testing.TB
	bin   string
	dir   string
	extra []string
	// Port is the plain listener's port; ExtraPort, when an extra line
	// holds extraPortMark, the port that line listens on.
	Port, ExtraPort int

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has exited
	started bool          // it ran once: its ports are final
	log     testkit.Buffer
}

// extraPortMark in an extra configuration line of startBroker stands for
// b.ExtraPort, a second port chosen like b.Port (for a TLS listener).
const extraPortMark = "{extra_port}"

// freePort returns a port that was free a moment ago. Mosquitto 2.0 cannot
// listen on port 0 ("listener 0" means a Unix socket) nor take a listener
// from its parent, so, unlike testkit.Listen, this is a guess: start
// detects a port taken in between and tries other ones.
func freePort(t testing.TB) int {
	t.Helper()
	l := testkit.Listen(t)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startBroker starts Mosquitto with a plain listener on b.Port; extra is
// appended to its configuration (more listeners, for example).
func startBroker(t testing.TB, extra ...string) *broker {
	t.Helper()
	b := &broker{t: t, bin: mosquittoPath(t), dir: t.TempDir(), extra: extra}
	b.start()
	t.Cleanup(func() {
		b.stop()
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", b.log.String())
		}
	})
	return b
}

func (b *broker) URL() string { return "tcp://" + b.Addr() }
func (b *broker) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.Port))
}

// errPortTaken is startOnce's error when mosquitto could not listen.
var errPortTaken = errors.New("address already in use")

// start runs mosquitto and waits until it says it is running: its
// listeners are open then. The first start chooses the ports, and chooses
// again when one was taken before mosquitto could listen on it; a restart
// keeps them (a port taken meanwhile fails the test).
func (b *broker) start() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for attempt := 1; ; attempt++ {
		if !b.started {
			b.Port = freePort(b.t)
			if slices.ContainsFunc(b.extra, func(e string) bool { return strings.Contains(e, extraPortMark) }) {
				b.ExtraPort = freePort(b.t)
			}
		}
		err := b.startOnce()
		switch {
		case err == nil:
			b.started = true
			return
		case errors.Is(err, errPortTaken) && !b.started && attempt < 5:
			b.t.Logf("mosquitto: a port (%d, extra %d) was taken before it listened; choosing again", b.Port, b.ExtraPort)
			continue
		}
		b.t.Fatalf("mosquitto on %s: %v\n%s", b.Addr(), err, b.log.String())
	}
}

// running is what mosquitto logs once every listener is open.
var running = regexp.MustCompile(`mosquitto version \S+ running`)

func (b *broker) startOnce() error {
	conf := fmt.Sprintf(`listener %d 127.0.0.1
allow_anonymous true
persistence true
persistence_location %s/
autosave_interval 0
# Default 1000 would silently drop QoS 1 messages to a slow subscriber.
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages 0
log_dest stderr
log_type error
log_type warning
# "running" (information) tells the test the listeners are open.
log_type information
`, b.Port, b.dir)
	for _, e := range b.extra {
		conf += strings.ReplaceAll(e, extraPortMark, strconv.Itoa(b.ExtraPort)) + "\n"
	}
	if os.Geteuid() == 0 {
		conf += "user root\n" // else mosquitto drops to "mosquitto", which cannot write to the temp dir
	}
	if err := os.WriteFile(filepath.Join(b.dir, "mosquitto.conf"), []byte(conf), 0o600); err != nil {
		return err
	}
	from := len(b.log.String())
	since := func() string { return b.log.String()[from:] }
	cmd := exec.Command(b.bin, "-c", filepath.Join(b.dir, "mosquitto.conf"))
	cmd.Stdout, cmd.Stderr = &b.log, &b.log
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	b.cmd, b.exited = cmd, exited
	hasExited := func() bool {
		select {
		case <-exited:
			return true
		default:
			return false
		}
	}
	if !testkit.WaitTrue(20*time.Second, func() bool { return hasExited() || running.MatchString(since()) }) {
		b.kill()
		return errors.New("not running after 20 s")
	}
	if hasExited() {
		b.cmd = nil
		if strings.Contains(since(), "Address already in use") {
			return errPortTaken
		}
		return fmt.Errorf("exited at start: %v", cmd.ProcessState)
	}
	return nil
}

// stop ends mosquitto with SIGTERM (it saves its state) and waits.
func (b *broker) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		b.kill()
	}
	b.cmd = nil
}

// kill ends mosquitto at once and waits; b.mu is held.
func (b *broker) kill() {
	b.cmd.Process.Kill()
	<-b.exited
	b.cmd = nil
}

// collector subscribes to everything under a gateway's topics and records
// what arrives. It keeps a persistent session, so it loses nothing across a
// broker restart.
type collector struct {
	t      testing.TB
	client paho.Client

	mu        sync.Mutex
	seqs      map[uint64]int // how often each record seq arrived
	records   map[uint64]json.RawMessage
	order     []uint64       // record seqs in arrival order (not with countOnly)
	kinds     map[string]int // topic suffix -> messages
	status    []received
	heartbeat []json.RawMessage
	results   []json.RawMessage
	changed   chan struct{}
	countOnly bool
}

type received struct {
	Payload  json.RawMessage
	Retained bool
}

func newCollector(t testing.TB, b *broker, id, filter string) *collector {
	t.Helper()
	c := &collector{t: t, seqs: map[uint64]int{}, records: map[uint64]json.RawMessage{}, kinds: map[string]int{},
		changed: make(chan struct{})}
	opts := paho.NewClientOptions().AddBroker(b.URL()).SetClientID(id).
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(50 * time.Millisecond).SetMaxReconnectInterval(200 * time.Millisecond).
		SetResumeSubs(true).SetOrderMatters(true)
	opts.SetOnConnectHandler(func(cl paho.Client) {
		cl.Subscribe(filter, 1, c.handle) // (re)subscribe: idempotent
	})
	c.client = paho.NewClient(opts)
	tok := c.client.Connect()
	if !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("collector connect: %v", tok.Error())
	}
	// Wait for the subscription itself, so nothing published after this
	// returns is missed.
	sub := c.client.Subscribe(filter, 1, c.handle)
	if !sub.WaitTimeout(20*time.Second) || sub.Error() != nil {
		t.Fatalf("collector subscribe: %v", sub.Error())
	}
	t.Cleanup(func() { c.client.Disconnect(0) })
	return c
}

func (c *collector) handle(_ paho.Client, m paho.Message) {
	topic := m.Topic()
	suffix := topic[bytes.LastIndexByte([]byte(topic), '/')+1:]
	payload := append(json.RawMessage(nil), m.Payload()...)
	c.mu.Lock()
	defer func() {
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	}()
	c.kinds[suffix]++
	switch suffix {
	case "telemetry", "alerts", "devices":
		var b struct {
			Records []json.RawMessage `json:"records"`
		}
		if err := json.Unmarshal(payload, &b); err != nil {
			c.t.Errorf("%s: not JSON: %v", topic, err)
			return
		}
		for _, r := range b.Records {
			var s struct{ Seq uint64 }
			if err := json.Unmarshal(r, &s); err != nil || s.Seq == 0 {
				c.t.Errorf("%s: record without seq: %s", topic, r)
				continue
			}
			c.seqs[s.Seq]++
			if !c.countOnly {
				c.records[s.Seq] = r
				c.order = append(c.order, s.Seq)
			}
		}
	case "status":
		c.status = append(c.status, received{payload, m.Retained()})
	case "heartbeat":
		c.heartbeat = append(c.heartbeat, payload)
	case "cmd_result":
		c.results = append(c.results, payload)
	}
}

// waitUntil waits until cond (called with c.mu held) holds.
func (c *collector) waitUntil(what string, d time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ok, ch := cond(), c.changed
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			c.mu.Lock()
			n := len(c.seqs)
			c.mu.Unlock()
			c.t.Fatalf("timed out after %v waiting for %s (%d distinct seqs so far)", d, what, n)
		}
	}
}

// haveAll reports whether every seq in [1, last] arrived or is skipped.
// c.mu must be held.
func (c *collector) haveAll(last uint64, skipped [][2]uint64) bool {
	return len(c.missing(last, skipped)) == 0
}

func (c *collector) missing(last uint64, skipped [][2]uint64) []uint64 {
	var miss []uint64
	for s := uint64(1); s <= last; s++ {
		if c.seqs[s] > 0 || inRanges(s, skipped) {
			continue
		}
		miss = append(miss, s)
		if len(miss) > 20 {
			break
		}
	}
	return miss
}

func (c *collector) duplicates() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var d []uint64
	for s, n := range c.seqs {
		if n > 1 {
			d = append(d, s)
		}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d
}

func inRanges(s uint64, rs [][2]uint64) bool {
	for _, r := range rs {
		if s >= r[0] && s <= r[1] {
			return true
		}
	}
	return false
}
