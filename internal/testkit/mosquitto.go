package testkit

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Mosquitto runs Debian's mosquitto on a loopback port for the rest of the
// test and returns its URL (tcp://127.0.0.1:port), or reports the broker
// [Missing]. Mosquitto cannot take a listener from the test, so its port is
// found free and handed on; if another process takes it first, Mosquitto
// starts again on another one.
func Mosquitto(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			Missing(t, "mosquitto not found (apt-get install mosquitto, or run scripts/test.sh)")
		}
		bin = "/usr/sbin/mosquitto"
	}
	dir := t.TempDir()
	for attempt := 1; ; attempt++ {
		l := Listen(t)
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nlog_dest stderr\nlog_type all\n", port)
		if os.Geteuid() == 0 {
			conf += "user root\n"
		}
		path := filepath.Join(dir, "mosquitto.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		log := &Buffer{}
		cmd := exec.Command(bin, "-c", path)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		running := WaitTrue(20*time.Second, func() bool {
			select {
			case <-exited:
				return true
			default:
			}
			return strings.Contains(log.String(), " running")
		})
		select {
		case <-exited:
			if attempt < 5 && strings.Contains(log.String(), "Address already in use") {
				continue
			}
			t.Fatalf("mosquitto exited:\n%s", log)
		default:
		}
		if !running {
			cmd.Process.Kill()
			<-exited
			t.Fatalf("mosquitto not running after 20 s:\n%s", log)
		}
		t.Cleanup(func() { cmd.Process.Kill(); <-exited })
		return fmt.Sprintf("tcp://127.0.0.1:%d", port)
	}
}
