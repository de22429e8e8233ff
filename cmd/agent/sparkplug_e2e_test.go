package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/uplink/sparkplug"
)

// startMosquitto runs Debian's mosquitto on a loopback port for the test.
// (uplink/mqtt's tests have the full, restartable broker helper; this test
// needs one that just runs.)
func startMosquitto(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			testkit.Missing(t, "mosquitto not found (apt-get install mosquitto, or run scripts/test.sh)")
		}
		bin = "/usr/sbin/mosquitto"
	}
	dir := t.TempDir()
	for attempt := 1; ; attempt++ {
		l := testkit.Listen(t)
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
		var log testkit.Buffer
		cmd := exec.Command(bin, "-c", path)
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		running := testkit.WaitTrue(20*time.Second, func() bool {
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
			t.Fatalf("mosquitto exited:\n%s", log.String())
		default:
		}
		if !running {
			cmd.Process.Kill()
			<-exited
			t.Fatalf("mosquitto not running after 20 s:\n%s", log.String())
		}
		t.Cleanup(func() { cmd.Process.Kill(); <-exited })
		return fmt.Sprintf("tcp://127.0.0.1:%d", port)
	}
}

// TestSparkplugBdSeqAcrossKill9 runs the real binary with format
// sparkplug_b: its NBIRTH and the NDEATH the broker sends after a kill -9
// carry the same bdSeq, and the next start, from the same data_dir, uses
// the next one (kept in data_dir/sparkplug_bdseq).
func TestSparkplugBdSeqAcrossKill9(t *testing.T) {
	bin := buildAgent(t)
	broker := startMosquitto(t)
	msgs := make(chan paho.Message, 1000)
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID("scada").SetOrderMatters(true))
	if tok := sub.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber: %v", tok.Error())
	}
	defer sub.Disconnect(0)
	if tok := sub.Subscribe("spBv1.0/#", 1, func(_ paho.Client, m paho.Message) { msgs <- m }); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	// next returns the bdSeq of the next message of type typ.
	next := func(typ string) uint64 {
		t.Helper()
		deadline := time.After(60 * time.Second)
		for {
			select {
			case m := <-msgs:
				if strings.Split(m.Topic(), "/")[2] != typ {
					continue
				}
				p, err := sparkplug.Decode(m.Payload())
				if err != nil {
					t.Fatalf("%s: %v", m.Topic(), err)
				}
				for _, x := range p.Metrics {
					if x.Name == sparkplug.MetricBdSeq {
						return x.Long
					}
				}
				t.Fatalf("%s without bdSeq", m.Topic())
			case <-deadline:
				t.Fatalf("no %s within 60 s", typ)
			}
		}
	}

	dir := t.TempDir()
	conf := fmt.Sprintf("gateway_id: gw1\ndata_dir: data\nuplink:\n  mqtt:\n    url: %s\n    format: sparkplug_b\n    group_id: plant1\n", broker)
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var want uint64
	for run := 0; run < 3; run++ {
		p := startAgent(t, bin, dir, "-config", "c.yaml", "-listen", "127.0.0.1:0")
		if got := next(sparkplug.NBIRTH); got != want {
			t.Fatalf("start %d: NBIRTH bdSeq %d, want %d", run+1, got, want)
		}
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-p.exited
		if got := next(sparkplug.NDEATH); got != want {
			t.Fatalf("start %d: NDEATH (the will) bdSeq %d, want %d as in its NBIRTH", run+1, got, want)
		}
		b, err := os.ReadFile(filepath.Join(dir, "data", "sparkplug_bdseq"))
		if err != nil || strings.TrimSpace(string(b)) != fmt.Sprint(want) {
			t.Fatalf("data/sparkplug_bdseq: %q, %v; want %d", b, err, want)
		}
		want = sparkplug.NextBdSeq(want)
	}
}
