package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/uplink/sparkplug"
)

// TestSparkplugBdSeqAcrossKill9 runs the real binary with format
// sparkplug_b: its NBIRTH and the NDEATH the broker sends after a kill -9
// carry the same bdSeq, and the next start, from the same data_dir, uses
// the next one (kept in data_dir/sparkplug_bdseq).
func TestSparkplugBdSeqAcrossKill9(t *testing.T) {
	bin := testkit.BuildAgent(t)
	broker := testkit.Mosquitto(t)
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
		p := testkit.StartAgent(t, bin, dir, "-config", "c.yaml", "-listen", "127.0.0.1:0")
		if got := next(sparkplug.NBIRTH); got != want {
			t.Fatalf("start %d: NBIRTH bdSeq %d, want %d", run+1, got, want)
		}
		p.Kill(t)
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
