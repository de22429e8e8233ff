// Package interop runs clients written against the seed documents, unchanged,
// against the real agent binary: the acceptance check "clients written
// against the seed document run against go run ./cmd/agent".
//
// The clients live in clients/: valtronics.py (the seed 000 Python client's
// way: asyncio + websockets, filters under "filters"), seed_examples.py
// (every client message seed 000 prints, sent verbatim), valtronics.mjs (the
// seed 000 JavaScript class's way: browser WebSocket API, filters at the top
// level) and aether.mjs (seed 002's TypeScript example). They need python3
// with the websockets module (Debian: python3-websockets) and Node with a
// global WebSocket (Node 22+, or 20.10+ with --experimental-websocket).
// Without them the tests skip, or fail when FLOORHUB_REQUIRE_PARTS=1 (as
// scripts/test.sh sets it).
//
// By hand, against a running agent (the token from its start line):
//
//	python3 interop/clients/valtronics.py ws://127.0.0.1:8000/ws TOKEN
//	python3 interop/clients/seed_examples.py ws://127.0.0.1:8000 TOKEN
//	node --experimental-websocket interop/clients/valtronics.mjs ws://127.0.0.1:8000/ws TOKEN
//	node --experimental-websocket interop/clients/aether.mjs ws://127.0.0.1:8000 TOKEN floor GATEWAY_ID
package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/floorhub/floorhub/internal/testkit"
)

// Bounds for a client; it gets its own, shorter timeout so that a failing
// one reports what it was missing before it is killed.
const (
	clientTimeout  = 25 * time.Second // passed to the clients
	clientKillWait = 40 * time.Second // then the process is killed
)

// TestMain deletes the agent the tests built once they have run.
func TestMain(m *testing.M) { testkit.RunAgentTests(m) }

func TestSeedClientsAgainstAgent(t *testing.T) {
	// Built with -race when the tests are: a race the clients provoke in
	// the agent makes it exit 66 instead of 0.
	bin := testkit.BuildAgentRace(t)
	dir := t.TempDir()
	ag := startAgent(t, bin, dir, testkit.AnyPort)
	ws := "ws://" + ag.Addr
	// Mind the agent's default of 10 new connections per minute per address:
	// these clients open 8 WebSocket connections to it together.

	t.Run("valtronics.py", func(t *testing.T) {
		py := needPython(t)
		out := runClient(t, py, "clients/valtronics.py", ws+"/ws", ag.Token, secs(clientTimeout))
		requireTypes(t, out, "valtronics.py", "auth_response", "telemetry_update", "device_status_update", "system_status_update", "pong")
	})
	t.Run("valtronics.py-bad-token", func(t *testing.T) {
		// The client's auth check must bite: a refused token is exit 1.
		py := needPython(t)
		res := runClientResult(t, py, "clients/valtronics.py", ws+"/ws", "not-a-token", secs(clientTimeout))
		if res.code != 1 || !strings.Contains(res.stderr, "authentication failed") {
			t.Fatalf("bad token: exit %d, want 1 with \"authentication failed\"\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
		}
		// The seed's handleAuthResponse branches on error == "invalid_token".
		if !strings.Contains(res.stdout, `"success": false`) || !strings.Contains(res.stdout, `"error": "invalid_token"`) {
			t.Errorf("bad token: no auth_response with success false and error invalid_token in the output:\n%s", res.stdout)
		}
	})
	t.Run("seed_examples.py", func(t *testing.T) {
		py := needPython(t)
		out := runClient(t, py, "clients/seed_examples.py", ws, ag.Token, secs(clientTimeout))
		requireOK(t, out, "seed_examples.py")
	})
	t.Run("valtronics.mjs", func(t *testing.T) {
		node := needNode(t)
		out := runClient(t, node[0], nodeArgs(node, "clients/valtronics.mjs", ws+"/ws", ag.Token, secs(clientTimeout))...)
		requireTypes(t, out, "valtronics.mjs", "auth_response", "telemetry_update", "device_status_update", "system_status_update", "pong")
	})
	t.Run("aether.mjs", func(t *testing.T) {
		node := needNode(t)
		gw := gatewayID(t, "http://"+ag.Addr)
		out := runClient(t, node[0], nodeArgs(node, "clients/aether.mjs", ws, ag.Token, v3Group, gw, secs(clientTimeout))...)
		requireSteps(t, out, "presence_join", "heartbeat", "group", "echo", "cmd_ping", "invalid_rejected")
	})

	// The seed JS class's reconnect logic across an agent restart: the
	// client is connected when the agent stops (close 1001), and must get
	// back in, with the first agent's token (the secret is kept in the data
	// directory), and see everything again from the new agent on the same
	// port. The stop of each agent requires exit 0.
	t.Run("valtronics.mjs-reconnect", func(t *testing.T) {
		reconnect(t, bin, dir, ag, needNode(t))
	})
	stop(t, ag) // if the subtest did not
}

// reconnect runs valtronics.mjs in reconnect mode across a restart of ag:
// stopped while the client is connected, started again only after the
// client's first reconnect attempt was refused, so that the attempt after a
// refused one is exercised too.
func reconnect(t *testing.T, bin, dir string, ag *testkit.Agent, node []string) {
	ctx, cancel := context.WithTimeout(context.Background(), clientKillWait)
	defer cancel()
	args := nodeArgs(node, "clients/valtronics.mjs", "ws://"+ag.Addr+"/ws", ag.Token, secs(clientTimeout), "reconnect")
	cmd := exec.CommandContext(ctx, node[0], args...)
	var out, errOut testkit.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatalf("interop: start valtronics.mjs: %v", err)
	}
	exited := make(chan struct{})
	var waitErr error // set before exited is closed
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	defer func() { cancel(); <-exited }()
	dump := func() string { return fmt.Sprintf("stdout:\n%s\nstderr:\n%s", out.String(), errOut.String()) }
	// printed waits until buf holds mark and reports whether it does: not
	// when the client exited first, or was killed after clientKillWait.
	printed := func(buf *testkit.Buffer, mark string) bool {
		testkit.WaitTrue(clientKillWait, func() bool {
			select {
			case <-exited:
				return true
			default:
				return strings.Contains(buf.String(), mark)
			}
		})
		return strings.Contains(buf.String(), mark)
	}

	if !printed(&out, `"round":1,"result":"ok"`) {
		<-exited
		t.Fatalf("interop: valtronics.mjs (reconnect) ended before its first round: %v\n%s", waitErr, dump())
	}
	stop(t, ag)
	if !printed(&errOut, "disconnected (connection failed)") {
		<-exited
		t.Fatalf("interop: valtronics.mjs (reconnect) ended while the agent was down: %v\n%s", waitErr, dump())
	}
	// The same port: the client reconnects to the URL it was given. (The
	// port was free for a moment; a restart cannot hand a listener on.)
	ag2 := startAgent(t, bin, dir, ag.Addr)
	<-exited
	if waitErr != nil {
		t.Fatalf("interop: valtronics.mjs (reconnect): %v (killed: %v)\n%s", waitErr, ctx.Err() != nil, dump())
	}
	requireOK(t, out.String(), "valtronics.mjs")
	t.Logf("clients/valtronics.mjs reconnect:\n%s", dump())
	stop(t, ag2)
}

// v3Group is the agent's default Aether V3 group (hub.v3_group), which the
// agent joins as a member.
const v3Group = "floor"

func secs(d time.Duration) string { return fmt.Sprint(int(d / time.Second)) }

// startAgent runs the agent with no config in dir (its data directory is
// dir/data), listening on listen. A test that fails gets the agent's log.
func startAgent(t *testing.T, bin, dir, listen string) *testkit.Agent {
	t.Helper()
	ag := testkit.StartAgent(t, bin, dir, "-listen", listen)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", ag.Log)
		}
	})
	return ag
}

// stop ends the agent with SIGINT and requires exit 0.
func stop(t *testing.T, ag *testkit.Agent) {
	t.Helper()
	if code := ag.Stop(t); code != 0 {
		t.Fatalf("interop: agent exit %d after SIGINT, want 0:\n%s", code, ag.Log)
	}
}

// gatewayID asks the agent's /healthz for its gateway id (the V3 client id
// the ping command goes to; by default the host name).
func gatewayID(t *testing.T, base string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("interop: /healthz: %v", err)
	}
	defer resp.Body.Close()
	var h struct {
		GatewayID string `json:"gateway_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || h.GatewayID == "" {
		t.Fatalf("interop: /healthz: no gateway_id (status %d, err %v)", resp.StatusCode, err)
	}
	return h.GatewayID
}

type clientResult struct {
	code           int
	stdout, stderr string
}

// runClientResult runs a client to its end (killed after clientKillWait).
func runClientResult(t *testing.T, name string, args ...string) clientResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientKillWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := clientResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("interop: run %s %s: %v", name, script(args), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("interop: %s killed after %v\nstdout:\n%s\nstderr:\n%s", script(args), clientKillWait, res.stdout, res.stderr)
	}
	return res
}

// runClient runs a client, requires exit 0 and returns its stdout.
func runClient(t *testing.T, name string, args ...string) string {
	t.Helper()
	res := runClientResult(t, name, args...)
	if res.code != 0 {
		t.Fatalf("interop: %s exit %d\nstdout:\n%s\nstderr:\n%s", script(args), res.code, res.stdout, res.stderr)
	}
	t.Logf("%s:\n%s", script(args), res.stdout)
	return res.stdout
}

// script names the client in args (not the token, which is in args too).
func script(args []string) string {
	for _, a := range args {
		if strings.HasPrefix(a, "clients/") {
			return a
		}
	}
	return "client"
}

// jsonLines decodes a client's stdout, one JSON object per line.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var ms []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("interop: client output line %q is not JSON: %v", l, err)
		}
		ms = append(ms, m)
	}
	return ms
}

// requireTypes checks a Valtronics client printed each type and a final ok.
func requireTypes(t *testing.T, out, client string, types ...string) {
	t.Helper()
	seen := map[string]map[string]any{}
	ok := false
	for _, m := range jsonLines(t, out) {
		if m["client"] != client {
			t.Errorf("line from %v, want %s", m["client"], client)
		}
		if typ, _ := m["type"].(string); typ != "" {
			msg, _ := m["message"].(map[string]any)
			seen[typ] = msg
		}
		if m["result"] == "ok" {
			ok = true
		}
	}
	for _, typ := range types {
		if seen[typ] == nil {
			t.Errorf("%s: no %s in its output", client, typ)
		}
	}
	if !ok {
		t.Errorf("%s: no final {\"result\":\"ok\"}", client)
	}
	if tu := seen["telemetry_update"]; tu != nil {
		if tu["device_id"] != float64(1) || tu["channel"] != "telemetry" {
			t.Errorf("%s: telemetry_update %v: want channel telemetry, device_id 1", client, tu)
		}
		if tel, _ := tu["telemetry"].(map[string]any); len(tel) == 0 {
			t.Errorf("%s: telemetry_update without telemetry: %v", client, tu)
		}
	}
}

// requireOK checks a client's output ends with {"result":"ok"}.
func requireOK(t *testing.T, out, client string) {
	t.Helper()
	ms := jsonLines(t, out)
	if len(ms) == 0 || ms[len(ms)-1]["result"] != "ok" {
		t.Errorf("%s: no final {\"result\":\"ok\"}", client)
	}
}

// requireSteps checks aether.mjs passed each step in order and finished.
func requireSteps(t *testing.T, out string, steps ...string) {
	t.Helper()
	var got []string
	ok := false
	for _, m := range jsonLines(t, out) {
		if s, _ := m["step"].(string); s != "" {
			got = append(got, s)
		}
		if m["result"] == "ok" {
			ok = true
		}
	}
	if strings.Join(got, " ") != strings.Join(steps, " ") || !ok {
		t.Errorf("aether.mjs steps %v (ok %v), want %v and ok", got, ok, steps)
	}
}

var (
	pythonOnce sync.Once
	pythonPath string

	nodeOnce sync.Once
	nodeCmd  []string
)

// needPython returns a python3 that can import websockets: the one on PATH,
// else the system's (a pyenv python on PATH does not see Debian's modules).
func needPython(t *testing.T) string {
	t.Helper()
	pythonOnce.Do(func() {
		var cands []string
		if p, err := exec.LookPath("python3"); err == nil {
			cands = append(cands, p)
		}
		cands = append(cands, "/usr/bin/python3")
		for _, p := range cands {
			if exec.Command(p, "-c", "import websockets").Run() == nil {
				pythonPath = p
				return
			}
		}
	})
	if pythonPath == "" {
		testkit.Missing(t, "interop: no python3 with the websockets module (Debian/Ubuntu: apt-get install python3-websockets; or pip install websockets)")
	}
	return pythonPath
}

// nodeArgs is node's flags followed by args, in a new slice.
func nodeArgs(node []string, args ...string) []string {
	return append(append([]string(nil), node[1:]...), args...)
}

// needNode returns the node command line that has a global WebSocket: plain
// node on Node 22+, node --experimental-websocket on Node 20/21.
func needNode(t *testing.T) []string {
	t.Helper()
	nodeOnce.Do(func() {
		node, err := exec.LookPath("node")
		if err != nil {
			return
		}
		const probe = "process.exit(typeof WebSocket === 'function' ? 0 : 1)"
		for _, c := range [][]string{{node}, {node, "--experimental-websocket"}} {
			if exec.Command(c[0], append(c[1:], "-e", probe)...).Run() == nil {
				nodeCmd = c
				return
			}
		}
	})
	if nodeCmd == nil {
		testkit.Missing(t, "interop: no node with a global WebSocket (install Node.js 22+, or 20.10+ which the test runs with --experimental-websocket; Debian 12's nodejs 18 has none)")
	}
	return nodeCmd
}
