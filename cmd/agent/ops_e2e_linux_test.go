package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"

	"github.com/floorhub/floorhub/internal/testkit"
)

// hubClient is a /ws client subscribed to every channel that carries seqs;
// a goroutine reads its messages into msgs.
type hubClient struct {
	ws   *websocket.Conn
	msgs chan map[string]any
	errc chan error
	last float64 // seq of the last message with one; 0 before the first
	seen []map[string]any
}

func dialHub(t *testing.T, addr, token string) *hubClient {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws?token="+token, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &hubClient{ws: ws, msgs: make(chan map[string]any, 4096), errc: make(chan error, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var m map[string]any
			if err := ws.ReadJSON(&m); err != nil {
				c.errc <- err
				return
			}
			c.msgs <- m
		}
	}()
	t.Cleanup(func() { ws.Close(); <-done })
	for _, ch := range []string{"telemetry", "alerts", "devices"} {
		if err := ws.WriteJSON(map[string]any{"type": "subscribe", "channel": ch}); err != nil {
			t.Fatal(err)
		}
		c.await(t, "subscribed to "+ch, func(m map[string]any) bool { return m["type"] == "subscribed" && m["channel"] == ch })
	}
	// A record fanned out between two subscriptions reached only some
	// channels: continuity counts from here, where all three are on.
	c.last = 0
	return c
}

// await reads messages until match accepts one.
func (c *hubClient) await(t *testing.T, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		if m := c.next(t, what, deadline); match(m) {
			return m
		}
	}
}

// awaitAll reads messages until each condition has matched one.
func (c *hubClient) awaitAll(t *testing.T, conds map[string]func(map[string]any) bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for len(conds) > 0 {
		var names []string
		for n := range conds {
			names = append(names, n)
		}
		m := c.next(t, strings.Join(names, ", "), deadline)
		for n, cond := range conds {
			if cond(m) {
				delete(conds, n)
			}
		}
	}
}

// next reads one message. Every message with a seq must carry the seq
// after the previous one: the client sees no gap.
func (c *hubClient) next(t *testing.T, what string, deadline <-chan time.Time) map[string]any {
	t.Helper()
	select {
	case m := <-c.msgs:
		if seq, ok := m["seq"].(float64); ok {
			if c.last != 0 && seq != c.last+1 {
				t.Fatalf("seq %v after %v: a gap (message %v)", seq, c.last, m)
			}
			c.last = seq
		}
		c.seen = append(c.seen, m)
		return m
	case err := <-c.errc:
		t.Fatalf("waiting for %s: the connection ended: %v", what, err)
	case <-deadline:
		t.Fatalf("no %s within 30 s", what)
	}
	return nil
}

func telemetryOf(id int) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["type"] == "telemetry_update" && m["device_id"] == float64(id) }
}

// A SIGHUP re-reads the config while a client is subscribed: a good file
// applies (a device added, a rule changed, the hub's batch limit, the log
// level), a bad one is refused and logged; the process stays up and the
// client sees every seq, with no gap and no reconnect.
func TestReloadOnSIGHUP(t *testing.T) {
	bin := testkit.BuildAgent(t)
	dir := t.TempDir()
	head := "store: {commit_interval: 100ms}\n"
	write := func(body string) string { return testkit.WriteAgentConfig(t, dir, testkit.AnyPort, head+body) }
	path := write(`log: {level: info}
devices:
  - {id: 1, name: env, driver: sim-env, interval: 200ms}
rules:
  - {name: hot, metric: temperature, above: 1000, severity: warning}
`)
	p := testkit.StartAgent(t, bin, dir, "-config", path)
	token := p.URL[strings.Index(p.URL, "token=")+len("token="):]
	c := dialHub(t, p.Addr, token)
	c.awaitAll(t, map[string]func(map[string]any) bool{
		"telemetry of device 1": telemetryOf(1),
		"device 1 online": func(m map[string]any) bool {
			return m["type"] == "device_status_update" && m["device_id"] == float64(1) && m["new_status"] == "online"
		},
	})

	// A good file: device 2 added, device 1's interval changed, the rule
	// now fires at once, batches of at most 2, debug logs, an MQTT uplink
	// (to a socket that never answers: its retries log at debug).
	mute := testkit.Listen(t)
	write(`log: {level: debug}
hub: {max_batch: 2}
uplink: {mqtt: {url: "tcp://` + mute.Addr().String() + `", connect_timeout: 1s}}
devices:
  - {id: 1, name: env, driver: sim-env, interval: 300ms}
  - {id: 2, name: door, driver: sim-door, interval: 200ms}
rules:
  - {name: hot, metric: temperature, above: -1000, severity: critical}
`)
	// Records up to the store's last seq now were appended before the
	// reload.
	_, _, hb := get(t, "http://"+p.Addr+"/healthz")
	var before struct {
		Store struct {
			LastSeq float64 `json:"last_seq"`
		} `json:"store"`
	}
	if err := json.Unmarshal(hb, &before); err != nil || before.Store.LastSeq == 0 {
		t.Fatalf("/healthz: %v %s", err, hb)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	mark := len(c.seen)
	c.awaitAll(t, map[string]func(map[string]any) bool{
		"telemetry of the added device 2": telemetryOf(2),
		"the changed rule's alert":        func(m map[string]any) bool { return m["type"] == "alert" && m["alert_type"] == "hot" },
	})
	// Device 1 reads on after the reload: a reading appended after the
	// reload was applied (the log says so first), not one already queued.
	testkit.Eventually(t, "the reload applied", 10*time.Second, func() bool {
		return strings.Contains(p.Log.String(), `msg="config reloaded"`)
	})
	_, _, hb = get(t, "http://"+p.Addr+"/healthz")
	var applied struct {
		Store struct {
			LastSeq float64 `json:"last_seq"`
		} `json:"store"`
	}
	if err := json.Unmarshal(hb, &applied); err != nil {
		t.Fatalf("/healthz: %v %s", err, hb)
	}
	c.await(t, "telemetry of device 1 after the reload", func(m map[string]any) bool {
		seq, _ := m["seq"].(float64)
		return telemetryOf(1)(m) && seq > applied.Store.LastSeq
	})
	for _, m := range c.seen[mark:] {
		// Device 1 restarted with its new interval but kept its status.
		if seq, _ := m["seq"].(float64); m["type"] == "device_status_update" && m["device_id"] == float64(1) && seq > before.Store.LastSeq {
			t.Errorf("the reload changed device 1's status: %v", m)
		}
	}
	if err := c.ws.WriteJSON(map[string]any{"type": "batch", "messages": []any{
		map[string]any{"type": "ping"}, map[string]any{"type": "ping"}, map[string]any{"type": "ping"}}}); err != nil {
		t.Fatal(err)
	}
	c.await(t, "batch_too_large for 3 messages over the reloaded max_batch 2", func(m map[string]any) bool {
		return m["type"] == "error" && m["error"] == "batch_too_large"
	})
	testkit.Eventually(t, "the reload's log line, the uplink's retries at debug level", 20*time.Second, func() bool {
		logs := p.Log.String()
		return strings.Contains(logs, `msg="config reloaded"`) && strings.Contains(logs, "uplink.mqtt started") &&
			strings.Contains(logs, `level=DEBUG msg="mqtt: connection attempt failed"`)
	})

	// A bad file: refused, logged with file, line and field; the running
	// config stays (device 2 goes on reading).
	write("devices:\n  - {id: 1, driver: sim-env, interval: -5s}\n")
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the refusal in the log", 10*time.Second, func() bool {
		return strings.Contains(p.Log.String(), "config reload refused") && strings.Contains(p.Log.String(), "floorhub.yaml:5: devices[0].interval")
	})
	for i := 0; i < 3; i++ {
		c.await(t, "telemetry of device 2 after the refused reload", telemetryOf(2))
	}
	select {
	case <-p.Exited():
		t.Fatalf("the agent exited: %v\n%s", p.Cmd.ProcessState, p.Log)
	default:
	}
	if code := p.Stop(t); code != 0 {
		t.Fatalf("exit %d after SIGINT:\n%s", code, p.Log)
	}
}

// setFileSizeLimit sets the soft RLIMIT_FSIZE of process pid (the hard
// limit stays), so that its writes past n bytes fail with EFBIG: a disk
// that cannot take more, for this process only. Go ignores SIGXFSZ.
func setFileSizeLimit(t *testing.T, pid int, n uint64) {
	t.Helper()
	var cur syscall.Rlimit
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_FSIZE, 0, uintptr(unsafe.Pointer(&cur)), 0, 0); e != 0 {
		t.Fatalf("prlimit: %v", e)
	}
	next := syscall.Rlimit{Cur: min(n, cur.Max), Max: cur.Max}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_FSIZE, uintptr(unsafe.Pointer(&next)), 0, 0, 0); e != 0 {
		t.Fatalf("prlimit: %v", e)
	}
}

func get(t *testing.T, url string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// /metrics passes Prometheus's own parser (promtool) and covers every part;
// /healthz is 200, turns 503 naming the store when the store cannot commit
// (writes to its file fail), and 200 again when it can.
func TestHealthzAndMetrics(t *testing.T) {
	bin := testkit.BuildAgent(t)
	dir := t.TempDir()
	path := testkit.WriteAgentConfig(t, dir, testkit.AnyPort, `store: {commit_interval: 100ms}
devices:
  - {id: 1, name: 'line "1"', driver: sim-env, interval: 100ms}
  - {id: 2, name: oven, driver: sim-hot, interval: 100ms}
  - {id: 3, name: door, driver: sim-door, interval: 100ms}
`)
	p := testkit.StartAgent(t, bin, dir, "-config", path)
	base := "http://" + p.Addr

	health := func() (int, map[string]any) {
		code, _, b := get(t, base+"/healthz")
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("/healthz: %v: %s", err, b)
		}
		return code, m
	}
	testkit.Eventually(t, "/healthz 200 with every device online", 20*time.Second, func() bool {
		code, m := health()
		return code == 200 && m["ok"] == true && len(m["devices"].([]any)) == 3
	})

	code, hdr, body := get(t, base+"/metrics")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("/metrics: %d %q", code, hdr.Get("Content-Type"))
	}
	for _, name := range []string{"floorhub_store_commits_total", "floorhub_store_bytes", "floorhub_store_records",
		"floorhub_store_evicted_records_total", "floorhub_store_last_commit_age_seconds", "floorhub_hub_connections",
		"floorhub_hub_messages_sent_total", "floorhub_hub_messages_coalesced_total", `floorhub_device_status{device_id="1",name="line \"1\"",status="online"} `,
		`floorhub_alerts_active{rule="high_temperature",severity="critical"}`, "go_goroutines", "go_heap_objects_bytes", "go_gc_cycles_total",
		"floorhub_healthy 1"} {
		if !bytes.Contains(body, []byte("\n"+name)) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		testkit.Missing(t, "promtool (Debian's prometheus package) is not installed")
	} else {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("promtool check metrics: %v\n%s\n--- exposition:\n%s", err, out, body)
		}
	}

	// The store's file may not grow past its first pages: every commit
	// fails, as on a full disk.
	setFileSizeLimit(t, p.Cmd.Process.Pid, 8192)
	testkit.Eventually(t, "/healthz 503 naming the store", 30*time.Second, func() bool {
		code, m := health()
		if code != 503 || m["ok"] != false {
			return false
		}
		for _, r := range m["reasons"].([]any) {
			if strings.HasPrefix(r.(string), "store: ") {
				return true
			}
		}
		return false
	})
	_, _, body = get(t, base+"/metrics")
	for _, want := range []string{"\nfloorhub_store_commit_failing 1\n", "\nfloorhub_healthy 0\n"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics while commits fail lacks %q", strings.TrimSpace(want))
		}
	}

	setFileSizeLimit(t, p.Cmd.Process.Pid, ^uint64(0))
	testkit.Eventually(t, "/healthz 200 once commits work again", 30*time.Second, func() bool {
		code, _ := health()
		return code == 200
	})
	if code := p.Stop(t); code != 0 {
		t.Fatalf("exit %d after SIGINT:\n%s", code, p.Log)
	}
}
