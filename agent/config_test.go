package agent

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDefaultsAreValid(t *testing.T) {
	c := Defaults()
	if c.Listen != ":8000" || c.DataDir != "./data" || c.Uplink.MQTT.URL != "" || len(c.Devices) != 4 {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	var hot *RuleConfig
	for i := range c.Rules {
		if c.Rules[i].Title == "High Temperature Alert" {
			hot = &c.Rules[i]
		}
	}
	if hot == nil || hot.Severity != "critical" || *hot.Above != 30 {
		t.Fatalf("the default config must raise the seed's High Temperature Alert: %+v", c.Rules)
	}
}

func TestEmptyFileMeansDefaults(t *testing.T) {
	c, err := ParseConfig("empty.yaml", []byte("# nothing\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Devices) != 4 {
		t.Fatalf("devices %d", len(c.Devices))
	}
}

func TestConfigErrorsNameFileLineAndField(t *testing.T) {
	cases := []struct {
		name, yaml string
		line       int
		field      string
	}{
		{"unknown key", "listen: :9000\nlisen: :9001\n", 2, "lisen"},
		{"unknown nested key", "store:\n  commit_interval: 1s\n  comit: 2\n", 3, "store.comit"},
		{"bad duration", "store:\n  commit_interval: soon\n", 2, "store.commit_interval"},
		{"bad size", "store:\n  max_bytes: lots\n", 2, "store.max_bytes"},
		{"bad log format", "log:\n  format: xml\n", 2, "log.format"},
		{"duplicate device id", "devices:\n  - {id: 1, driver: sim-env}\n  - id: 1\n    driver: sim-env\n", 3, "devices[1].id"},
		{"bad interval", "devices:\n  - id: 1\n    driver: sim-env\n    interval: 1ms\n", 4, "devices[0].interval"},
		{"unknown driver", "devices:\n  - id: 1\n    driver: laser\n", 3, "devices[0].driver"},
		{"driver settings", "devices:\n  - id: 1\n    driver: sim-env\n    settings:\n      seeed: 3\n", 5, "devices[0].settings"},
		{"rule without threshold", "rules:\n  - name: r\n    metric: temperature\n", 2, "rules[0].above"},
		{"rule clear on wrong side", "rules:\n  - name: r\n    metric: t\n    above: 30\n    clear: 35\n", 5, "rules[0].clear"},
		{"rule unknown device", "devices:\n  - {id: 1, driver: sim-env}\nrules:\n  - name: r\n    device_ids: [7]\n    metric: t\n    above: 1\n", 5, "rules[0].device_ids"},
		{"bad severity", "rules:\n  - {name: r, metric: t, above: 1, severity: doom}\n", 2, "rules[0].severity"},
		{"bad mqtt url", "uplink:\n  mqtt:\n    url: localhost\n", 3, "uplink.mqtt.url"},
		{"bad mqtt format", "uplink:\n  mqtt:\n    url: tcp://h\n    format: sparkplug\n", 4, "uplink.mqtt.format"},
		{"sparkplug without group", "uplink:\n  mqtt:\n    url: tcp://h\n    format: sparkplug_b\n", 2, "uplink.mqtt.group_id"},
		{"sparkplug bad group", "uplink:\n  mqtt:\n    url: tcp://h\n    format: sparkplug_b\n    group_id: a/b\n", 5, "uplink.mqtt.group_id"},
		{"group without sparkplug", "uplink:\n  mqtt:\n    url: tcp://h\n    primary_host_id: scada\n", 4, "uplink.mqtt.primary_host_id"},
		{"bad ws heartbeat", "gateway_id: g\nuplink:\n  websocket:\n    url: wss://c/v3/ws/group/s/client/g\n    heartbeat_interval: 5s\n", 5, "uplink.websocket.heartbeat_interval"},
		{"ws url not this gateway", "gateway_id: g\nuplink:\n  websocket:\n    url: wss://c/v3/ws/group/s/client/other\n", 4, "uplink.websocket.url"},
		{"yaml syntax", "listen: [\n", 1, "listen"},
		{"negative message cap", "hub:\n  max_batch: 5\n  max_message_bytes: -5\n", 3, "hub.max_message_bytes"},
		{"chat message over 64 KiB", "chat:\n  max_message_bytes: 65537\n", 2, "chat.max_message_bytes"},
		{"negative batch", "hub:\n  max_batch: -1\n", 2, "hub.max_batch"},
		{"limit below -1", "hub:\n  max_connections: -2\n", 2, "hub.max_connections"},
		{"tiny queue", "hub:\n  queue_len: 3\n", 2, "hub.queue_len"},
		{"ping too often", "hub:\n  ping_interval: 10ms\n", 2, "hub.ping_interval"},
		{"write delay too long", "hub:\n  queue_len: 64\n  write_delay: 2s\n", 3, "hub.write_delay"},
		{"write delay below 1ms", "hub:\n  write_delay: 100us\n", 2, "hub.write_delay"},
		{"negative leeway", "auth:\n  leeway: -1s\n", 2, "auth.leeway"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig("gw.yaml", []byte(c.yaml))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("want a *ConfigError, got %v", err)
			}
			if ce.File != "gw.yaml" || (c.line != 0 && ce.Line != c.line) || ce.Field != c.field {
				t.Fatalf("got file=%q line=%d field=%q (%v); want line %d field %q", ce.File, ce.Line, ce.Field, err, c.line, c.field)
			}
			if !strings.HasPrefix(err.Error(), "gw.yaml") {
				t.Fatalf("message must start with the file: %v", err)
			}
		})
	}
}

func TestDriverErrorNamesTheDeviceAndLine(t *testing.T) {
	_, err := ParseConfig("gw.yaml", []byte("devices:\n  - id: 1\n    driver: sim-env\n  - id: 2\n    name: press\n    driver: nope\n"))
	if err == nil || !strings.Contains(err.Error(), "line 4") || !strings.Contains(err.Error(), "device 2 (press)") {
		t.Fatalf("got %v", err)
	}
}

func TestOverrides(t *testing.T) {
	c := Defaults()
	if err := c.Override(Overrides{Listen: ":1", DataDir: "/x", MQTTURL: "tcp://b:1883"}); err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":1" || c.DataDir != "/x" || c.Uplink.MQTT.URL != "tcp://b:1883" {
		t.Fatalf("%+v", c)
	}
	err := Defaults().Override(Overrides{MQTTURL: "nonsense"})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "-mqtt" {
		t.Fatalf("bad -mqtt: %v", err)
	}
}

func TestByteSizeAndDefaultsFilled(t *testing.T) {
	c, err := ParseConfig("x", []byte("store: {max_bytes: 64MiB}\ndevices:\n  - {id: 3, driver: sim-door, interval: 10s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := c.Devices[0]
	if c.Store.MaxBytes != 64<<20 || *d.Jitter != 0 || d.Timeout != 5*time.Second || d.OfflineAfter != 35*time.Second {
		t.Fatalf("%+v %+v", c.Store, d)
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	c, err := LoadConfig("../systemd/floorhub.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The example is installed as is: it must not give a fleet one id.
	if c.GatewayIDSource() == "config" || len(c.Devices) == 0 || len(c.Rules) != 2 {
		t.Fatalf("%+v", c)
	}
}

// One document per file: a trailing "---" is no second document, a
// document after it is.
func TestSecondDocument(t *testing.T) {
	for _, ok := range []string{"log: {level: info}\n---\n", "---\nlog: {level: info}\n", "log: {level: info}\n...\n", "log: {level: info}\n---\n# nothing\n---\n"} {
		if _, err := ParseConfig("one.yaml", []byte(ok)); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	_, err := ParseConfig("two.yaml", []byte("log: {level: info}\n---\n---\nlisten: :1\n"))
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Line != 4 || ce.Field != "listen" {
		t.Fatalf("second document: %v", err)
	}
}
