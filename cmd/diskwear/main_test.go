package main

import (
	"os"
	"testing"
	"time"

	"github.com/floorhub/floorhub/agent"
)

// The configs diskwear writes pass the agent's own check.
func TestConfigsPassTheAgentsCheck(t *testing.T) {
	for _, c := range []caseSpec{
		{name: "connected", devices: 10, interval: time.Second, broker: true},
		{name: "offline", devices: 2, interval: time.Second, commit: 5 * time.Second, brokerDown: true},
		{name: "none", devices: 100, interval: 500 * time.Millisecond},
	} {
		url := ""
		if c.broker || c.brokerDown {
			url = "tcp://127.0.0.1:1883"
		}
		cfg, err := agent.ParseConfig(c.name+".yaml", []byte(config(t.TempDir(), url, c)))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(cfg.Devices) != c.devices || cfg.Store.CommitInterval != c.commit || cfg.Uplink.MQTT.URL != url {
			t.Fatalf("%s: %d devices, commit %v, url %q", c.name, len(cfg.Devices), cfg.Store.CommitInterval, cfg.Uplink.MQTT.URL)
		}
	}
}

func TestWriteBytes(t *testing.T) {
	if _, err := os.Stat("/proc/self/io"); err != nil {
		t.Skip("no /proc/<pid>/io here")
	}
	if _, err := writeBytes(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}
