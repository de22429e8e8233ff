package main

import (
	"bufio"
	"context"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/floorhub/floorhub/agent"
	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/store"
)

// Modbus faults through the agent, against Debian's pymodbus (the server
// of sensors/modbus's tests): an exception is one device's warning reason
// by name while its neighbour on the same server stays online; a server
// that stops answering turns the device warning with "no reply", and it
// comes back online by itself when the server answers again.
func TestModbusFaultsThroughTheAgent(t *testing.T) {
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import pymodbus").Run(); err != nil {
		testkit.Missing(t, "python3-pymodbus is not installed (apt-get install python3-pymodbus)")
	}
	srv := exec.Command(python, "../../sensors/modbus/testdata/server.py", "tcp")
	srv.Stderr = &testkit.Buffer{}
	out, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Process.Signal(syscall.SIGCONT)
		_ = srv.Process.Kill()
		_ = srv.Wait()
	})
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		t.Fatalf("server.py printed nothing: %s", srv.Stderr)
	}
	port, ok := strings.CutPrefix(sc.Text(), "port ")
	if !ok {
		t.Fatalf("server.py said %q", sc.Text())
	}
	go func() {
		for sc.Scan() {
		}
	}()

	dir := t.TempDir()
	// Both devices share one line (one request at a time): with the server
	// stopped, the meter's read first waits out the other device's 300 ms
	// timeout, then its own. Its 2 s read budget covers both on a loaded
	// machine; with 1 s it ran out while waiting for the line (1 failure in
	// 5 full-suite runs), and the reason was the line, not the timeout.
	cfg, err := agent.ParseConfig("e2e.yaml", []byte(`
data_dir: `+dir+`
listen: 127.0.0.1:0
devices:
  - id: 1
    name: meter
    driver: modbus-tcp
    interval: 200ms
    timeout: 2s
    settings:
      host: 127.0.0.1:`+port+`
      timeout: 300ms
      registers:
        - {metric: power, unit: kW, address: 30, type: float32}
  - id: 2
    name: wrong map
    driver: modbus-tcp
    interval: 200ms
    timeout: 2s
    settings:
      host: 127.0.0.1:`+port+`
      timeout: 300ms
      registers:
        - {metric: x, address: 1000}
`))
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.Buffer{}
	a, err := agent.New(cfg, agent.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	run := runAgent(t, a)
	defer run.Stop()
	count := func(id, status string) int {
		n := 0
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, `msg="device status"`) && strings.Contains(l, "device_id="+id+" ") && strings.Contains(l, "new="+status) {
				n++
			}
		}
		return n
	}
	await := func(what string, cond func() bool) {
		t.Helper()
		if !testkit.WaitTrue(20*time.Second, cond) {
			t.Fatalf("timed out waiting for %s; logs:\n%s", what, logs)
		}
	}
	// Counted from where they are: on a loaded machine a read may already
	// have timed out once before the server is stopped.
	await("the meter online and the wrong map in warning", func() bool { return count("1", "online") >= 1 && count("2", "warning") >= 1 })
	// From the status command, not the log: a warning less than a minute
	// after one logged is left out of the log.
	status := func(id int) string {
		rep, err := a.Command(context.Background(), "status", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range rep.(map[string]any)["devices"].([]map[string]any) {
			if d["device_id"] == id {
				return d["status"].(string)
			}
		}
		return ""
	}
	if err := srv.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	await("the meter in warning", func() bool { return status(1) == store.StatusWarning })
	if err := srv.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	await("the meter back online", func() bool { return status(1) == store.StatusOnline })
	run.Stop()

	st, err := store.Open(filepath.Join(dir, agent.DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[int][]string{} // of the warnings, by device
	power := 0
	for _, r := range recs {
		switch {
		case r.Kind == store.KindDeviceStatus && r.Status.New == store.StatusWarning:
			reasons[r.DeviceID] = append(reasons[r.DeviceID], r.Status.Reason)
		case r.Kind == store.KindTelemetry && r.DeviceID == 1:
			if len(r.Metrics) != 1 || r.Metrics[0].Name != "power" || r.Metrics[0].Value != -1234.5 || r.Metrics[0].Unit != "kW" {
				t.Fatalf("meter telemetry %+v", r.Metrics)
			}
			power++
		}
	}
	has := func(id int, reason string) bool {
		for _, r := range reasons[id] {
			if strings.Contains(r, reason) {
				return true
			}
		}
		return false
	}
	if !has(1, "modbus: unit 1: holding_register 30-31: no reply (timeout)") {
		t.Errorf("meter's warning reasons %q", reasons[1])
	}
	if !has(2, "modbus: unit 1: holding_register 1000-1000: illegal data address (exception 2)") {
		t.Errorf("wrong map's warning reasons %q", reasons[2])
	}
	if power < 2 {
		t.Errorf("%d meter readings", power)
	}
}
