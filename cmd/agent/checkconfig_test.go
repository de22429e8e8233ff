package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/floorhub/floorhub/internal/testkit"
)

// ws is a WebSocket uplink that is valid for gateway_id g.
const ws = "gateway_id: g\nuplink:\n  websocket:\n    url: wss://c.example/v3/ws/group/s/client/g\n"

// hostile are config files that `agent -check-config` must refuse with
// exit 78, naming the file, the line and the field: every example of
// issue 15 item 1 and a bad value for each section's keys.
var hostile = []struct {
	name, yaml string
	line       int
	field      string
}{
	// Item 1: accepted by -check-config, refused at start.
	{"mqtt batch too big", "uplink:\n  mqtt:\n    url: tcp://b:1883\n    batch_size: 100001\n", 4, "uplink.mqtt.batch_size"},
	{"mqtt batch negative", "uplink:\n  mqtt:\n    url: tcp://b:1883\n    batch_size: -5\n", 4, "uplink.mqtt.batch_size"},
	{"mqtt inflight negative", "uplink:\n  mqtt:\n    url: tcp://b:1883\n    max_inflight: -8\n", 4, "uplink.mqtt.max_inflight"},
	{"mqtt rate negative", "uplink:\n  mqtt:\n    url: tcp://b:1883\n    max_rate: -100\n", 4, "uplink.mqtt.max_rate"},
	{"mqtt keepalive short", "uplink:\n  mqtt:\n    url: tcp://b:1883\n    keepalive: 100ms\n", 4, "uplink.mqtt.keepalive"},
	{"mqtt keepalive negative", "uplink:\n  mqtt:\n    url: tcp://b:1883\n    keepalive: -30s\n", 4, "uplink.mqtt.keepalive"},
	{"mqtt cursor negative", "uplink:\n  mqtt:\n    url: tcp://b:1883\n    cursor_interval: -1s\n", 4, "uplink.mqtt.cursor_interval"},
	{"store batch huge", "store:\n  max_batch: 2000000000\n", 2, "store.max_batch"},
	{"topic wildcard", "uplink:\n  mqtt:\n    url: tcp://b:1883\n    topic_prefix: \"a/#/b\"\n", 4, "uplink.mqtt.topic_prefix"},
	{"password alone", "uplink:\n  mqtt:\n    url: tcp://b:1883\n    password: s3cret\n", 4, "uplink.mqtt.password"},
	{"mqtt format", "uplink:\n  mqtt:\n    url: tcp://b:1883\n    format: sparkplug\n", 4, "uplink.mqtt.format"},
	{"sparkplug group with a slash", "uplink:\n  mqtt:\n    url: tcp://b:1883\n    format: sparkplug_b\n    group_id: a/b\n", 5, "uplink.mqtt.group_id"},
	{"sparkplug host with json", "uplink:\n  mqtt:\n    url: tcp://b:1883\n    primary_host_id: scada\n", 4, "uplink.mqtt.primary_host_id"},
	{"listen nonsense", "listen: \"not an address\"\n", 1, "listen"},
	{"ws batch negative", ws + "    batch_size: -1\n", 5, "uplink.websocket.batch_size"},
	{"ws inflight negative", ws + "    max_inflight: -3\n", 5, "uplink.websocket.max_inflight"},
	{"ws dial negative", ws + "    dial_timeout: -1s\n", 5, "uplink.websocket.dial_timeout"},
	// Item 1: accepted, and silently meaningless.
	{"rule metric misspelt", "rules:\n  - name: hot\n    metric: temprature\n    above: 30\n", 3, "rules[0].metric"},
	{"rule metric not of its device", "devices:\n  - {id: 1, driver: sim-door}\n  - {id: 2, driver: sim-hot}\nrules:\n  - name: hot\n    device_ids: [1]\n    metric: temperature\n    above: 30\n", 7, "rules[0].metric"},
	{"threshold nan", "rules:\n  - name: hot\n    metric: temperature\n    above: .nan\n", 4, "rules[0].above"},
	{"threshold inf", "rules:\n  - name: cold\n    metric: temperature\n    below: -.inf\n", 4, "rules[0].below"},
	{"device null", "devices: [null]\n", 1, "devices[0]"},
	{"rule null", "rules:\n  - name: gone\n    offline: true\n  -\n", 4, "rules[1]"},
	{"second document", "log:\n  level: info\n---\nlog:\n  level: debug\n", 4, "log"},
	// Item 1: exit 78 without a field or line.
	{"store negative", "store:\n  commit_interval: -1s\n", 2, "store.commit_interval"},
	{"store age negative", "store:\n  max_age: -1h\n", 2, "store.max_age"},
	{"int as words", "store:\n  max_batch: lots\n", 2, "store.max_batch"},
	{"control character", "log:\n  level: \"in\x01fo\"\n", 2, "log.level"},
	{"not utf-8", "gateway_id: caf\xe9\n", 1, "gateway_id"},
	// A bad value in each other section.
	{"gateway id", "gateway_id: \"two words\"\n", 1, "gateway_id"},
	{"data dir a file", "data_dir: /dev/null\n", 1, "data_dir"},
	{"public url", "public_url: ftp://x\n", 1, "public_url"},
	{"log format", "log:\n  format: xml\n", 2, "log.format"},
	{"store bytes", "store:\n  max_bytes: 12KiB\n", 2, "store.max_bytes"},
	{"auth algorithm", "auth:\n  algorithm: none\n", 2, "auth.algorithm"},
	{"auth key for hs256", "auth:\n  public_key_file: /etc/key.pem\n", 2, "auth.public_key_file"},
	{"auth key missing", "auth:\n  algorithm: RS256\n  public_key_file: /nonexistent/key.pem\n", 3, "auth.public_key_file"},
	{"auth leeway", "auth:\n  leeway: 1h\n", 2, "auth.leeway"},
	{"hub queue", "hub:\n  queue_len: 100000\n", 2, "hub.queue_len"},
	{"hub origin empty", "hub:\n  allowed_origins: [\" \"]\n", 2, "hub.allowed_origins"},
	{"hub duration words", "hub:\n  pong_wait: later\n", 2, "hub.pong_wait"},
	{"hub group", "hub:\n  v3_group: \"a b\"\n", 2, "hub.v3_group"},
	{"system interval", "system:\n  interval: 10ms\n", 2, "system.interval"},
	{"clock date", "clock:\n  valid_after: yesterday\n", 2, "clock.valid_after"},
	{"mqtt url", "uplink:\n  mqtt:\n    url: http://b\n", 3, "uplink.mqtt.url"},
	{"mqtt ca missing", "uplink:\n  mqtt:\n    url: ssl://b:8883\n    ca_file: /nonexistent/ca.pem\n", 4, "uplink.mqtt.ca_file"},
	{"mqtt ca on tcp", "uplink:\n  mqtt:\n    url: tcp://b:1883\n    ca_file: /etc/ca.pem\n", 4, "uplink.mqtt.ca_file"},
	{"ws insecure on ws", "gateway_id: g\nuplink:\n  websocket:\n    url: ws://c/v3/ws/group/s/client/g\n    insecure_skip_verify: true\n", 5, "uplink.websocket.insecure_skip_verify"},
	{"ws ack negative", ws + "    ack_timeout: -5s\n", 5, "uplink.websocket.ack_timeout"},
	{"ws message negative", ws + "    max_message_bytes: -1\n", 5, "uplink.websocket.max_message_bytes"},
	{"ws cursor negative", ws + "    cursor_interval: -1s\n", 5, "uplink.websocket.cursor_interval"},
	{"ws other gateway", "gateway_id: g\nuplink:\n  websocket:\n    url: wss://c/v3/ws/group/s/client/h\n", 4, "uplink.websocket.url"},
	{"device id", "devices:\n  - id: -1\n    driver: sim-env\n", 2, "devices[0].id"},
	{"device driver", "devices:\n  - id: 1\n    driver: laser\n", 3, "devices[0].driver"},
	{"device jitter", "devices:\n  - id: 1\n    driver: sim-env\n    interval: 1s\n    jitter: 2s\n", 5, "devices[0].jitter"},
	{"device address", "devices:\n  - id: 1\n    driver: bme280\n    bus: 1\n    address: 0x10\n", 5, "devices[0].address"},
	{"device settings", "devices:\n  - id: 1\n    driver: sim-env\n    settings:\n      seed: many\n", 5, "devices[0].settings"},
	{"rule for", "rules:\n  - name: gone\n    offline: true\n    for: -1s\n", 4, "rules[0].for"},
	{"rule severity", "rules:\n  - name: gone\n    offline: true\n    severity: 7\n", 4, "rules[0].severity"},
	{"rule offline words", "rules:\n  - name: gone\n    offline: sometimes\n", 3, "rules[0].offline"},
	{"unknown key", "uplink:\n  mqtt:\n    url: tcp://b:1883\n    batchsize: 5\n", 4, "uplink.mqtt.batchsize"},
	{"yaml syntax", "hub:\n  max_batch: [1\n", 2, "hub.max_batch"},
	// The dashboard's users.
	{"user duplicate name", users + "  - {name: alice, id: 2, role: viewer, password_hash: \"" + goodHash + "\"}\n", 3, "users[1].name"},
	{"user duplicate id", users + "  - {name: bob, id: 7, role: viewer, password_hash: \"" + goodHash + "\"}\n", 3, "users[1].id"},
	{"user id zero", "users:\n  - name: bob\n    id: 0\n    role: viewer\n    password_hash: \"" + goodHash + "\"\n", 3, "users[0].id"},
	{"user id words", "users:\n  - name: bob\n    id: seven\n", 3, "users[0].id"},
	{"user role", "users:\n  - name: bob\n    id: 3\n    role: root\n    password_hash: \"" + goodHash + "\"\n", 4, "users[0].role"},
	{"user role missing", "users:\n  - name: bob\n    id: 3\n    password_hash: \"" + goodHash + "\"\n", 2, "users[0].role"},
	{"user hash plain", "users:\n  - name: bob\n    id: 3\n    role: admin\n    password_hash: hunter2\n", 5, "users[0].password_hash"},
	{"user hash bcrypt", "users:\n  - name: bob\n    id: 3\n    role: admin\n    password_hash: \"$2b$11$" + strings.Repeat("a", 53) + "\"\n", 5, "users[0].password_hash"},
	{"user hash rounds", "users:\n  - name: bob\n    id: 3\n    role: admin\n    password_hash: \"" + strings.Replace(goodHash, "i=600000", "i=1000", 1) + "\"\n", 5, "users[0].password_hash"},
	{"user hash missing", "users:\n  - name: bob\n    id: 3\n    role: admin\n", 2, "users[0].password_hash"},
	{"user name", "users:\n  - name: \"bob smith\"\n    id: 3\n    role: admin\n    password_hash: \"" + goodHash + "\"\n", 2, "users[0].name"},
	{"user unknown key", "users:\n  - name: bob\n    password: hunter2\n", 3, "users[0].password"},
	{"session ttl", "hub:\n  session_ttl: 500ms\n", 2, "hub.session_ttl"},
}

// goodHash is a password hash (of "floorhub-no-such-user").
const goodHash = "$pbkdf2-sha256$i=600000$UdFii9AOIbexLCunaYo57w$FLKQqY6n4kygHV8rzmmLqhlQeQ5y0mUYUSx4AYEQaqE"

// users is a valid users block with alice, id 7.
const users = "users:\n  - {name: alice, id: 7, role: operator, password_hash: \"" + goodHash + "\"}\n"

// TestHostileConfigs runs each hostile file through `agent -check-config`
// (the real run path) and expects exit 78 with "file:line: field: ".
func TestHostileConfigs(t *testing.T) {
	if len(hostile) <= 30 {
		t.Fatalf("only %d hostile configs", len(hostile))
	}
	dir := t.TempDir()
	for i, h := range hostile {
		t.Run(h.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("hostile-%02d.yaml", i))
			if err := os.WriteFile(path, []byte(h.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, errs := runCmd("-check-config", "-config", path)
			want := fmt.Sprintf("%s:%d: %s: ", path, h.line, h.field)
			if code != exitConfig || !strings.Contains(errs, want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 78 and %q", code, out, errs, want)
			}
		})
	}
}

// TestHostileConfigsBinary runs a few through the real binary.
func TestHostileConfigsBinary(t *testing.T) {
	bin := testkit.BuildAgent(t)
	dir := t.TempDir()
	for _, i := range []int{0, 8, 18, 20, 23, 24} {
		h := hostile[i]
		path := filepath.Join(dir, fmt.Sprintf("hostile-%02d.yaml", i))
		if err := os.WriteFile(path, []byte(h.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := testkit.Command(bin, "-check-config", "-config", path).CombinedOutput()
		var ee *exec.ExitError
		want := fmt.Sprintf("%s:%d: %s: ", path, h.line, h.field)
		if !errors.As(err, &ee) || ee.ExitCode() != exitConfig || !strings.Contains(string(out), want) {
			t.Errorf("%s: %v, %q; want exit 78 and %q", h.name, err, out, want)
		}
	}
}
