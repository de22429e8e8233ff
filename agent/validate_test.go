package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/floorhub/floorhub/sensors/catalog"
	"github.com/floorhub/floorhub/store"
)

// sweepBase has every part enabled, so that every key reaches a validator.
const sweepBase = `
gateway_id: g
listen: 127.0.0.1:0
log: {format: text, level: info}
store: {commit_interval: 1s}
auth: {leeway: 30s}
hub: {max_batch: 50}
system: {interval: 10s}
clock: {valid_after: 2025-01-01}
uplink:
  mqtt: {url: "tcp://127.0.0.1:1"}
  websocket: {url: "ws://127.0.0.1:1/v3/ws/group/s/client/g"}
devices:
  - {id: 1, driver: sim-env, interval: 5s}
  - {id: 2, driver: sim-counter}
rules:
  - {name: hot, metric: temperature, above: 30, clear: 28, for: 10s}
  - {name: gone, offline: true}
`

// The values each kind of key is swept with: both sides of every bound the
// parts know, and values of no meaning.
var sweepValues = map[string][]string{
	"int": {"-1000000", "-2", "-1", "0", "1", "3", "15", "16", "17", "50", "127", "128", "1000", "1001",
		"65536", "65537", "100000", "100001", "1048576", "1048577", "2000000000", "lots", "[1]", "1.5"},
	"dur": {"-30s", "-1ns", "0s", "1ns", "100ms", "999ms", "1s", "10s", "29s", "30s", "45s", "60s", "61s",
		"10m", "11m", "24h", "25h", "soon", "5"},
	"float": {"-100", "-0.5", "0", "0.5", "30", "1e308", ".nan", ".inf", "-.inf", "x"},
	"size":  {"-1", "0", "1", "131072", "1048575", "1MiB", "64MiB", "1.5GiB", "2GiB", "lots", "1TB"},
	"str": {`""`, "x", `"a b"`, `"a/#/b"`, `"a/+"`, "g", `"/x"`, `"::"`, `"not an address"`, `":8000"`,
		`"127.0.0.1:99999"`, `"[::1]:0"`, `"http://h"`, `"tcp://h:1883"`, `"ssl://127.0.0.1:1"`, `"ws://127.0.0.1:1/v3/ws/group/s/client/g"`,
		`"wss://127.0.0.1:1/v3/ws/group/s/client/g"`, `"ws://127.0.0.1:1/x"`, `"/nonexistent/file.pem"`, "[a]", "{a: 1}", `"` + strings.Repeat("z", 70) + `"`},
	"bool": {"true", "false", "maybe"},
}

// sweepKeys are the config's keys by kind.
var sweepKeys = []struct{ path, kind string }{
	{"gateway_id", "str"}, {"data_dir", "str"}, {"listen", "str"}, {"public_url", "str"},
	{"log.format", "str"}, {"log.level", "str"},
	{"store.commit_interval", "dur"}, {"store.max_batch", "int"}, {"store.max_bytes", "size"}, {"store.max_age", "dur"},
	{"auth.algorithm", "str"}, {"auth.public_key_file", "str"}, {"auth.leeway", "dur"},
	{"hub.max_message_bytes", "int"}, {"hub.messages_per_second", "int"}, {"hub.max_connections_per_user", "int"},
	{"hub.max_connections", "int"}, {"hub.connects_per_minute", "int"}, {"hub.max_batch", "int"}, {"hub.queue_len", "int"},
	{"hub.auth_timeout", "dur"}, {"hub.ping_interval", "dur"}, {"hub.pong_wait", "dur"}, {"hub.write_wait", "dur"},
	{"hub.write_delay", "dur"},
	{"hub.v3_group", "str"}, {"hub.allowed_origins", "str"},
	{"system.interval", "dur"}, {"clock.valid_after", "str"},
	{"uplink.mqtt.url", "str"}, {"uplink.mqtt.client_id", "str"}, {"uplink.mqtt.topic_prefix", "str"},
	{"uplink.mqtt.username", "str"}, {"uplink.mqtt.password", "str"}, {"uplink.mqtt.ca_file", "str"},
	{"uplink.mqtt.cert_file", "str"}, {"uplink.mqtt.key_file", "str"}, {"uplink.mqtt.batch_size", "int"},
	{"uplink.mqtt.max_inflight", "int"}, {"uplink.mqtt.max_rate", "float"}, {"uplink.mqtt.keepalive", "dur"},
	{"uplink.mqtt.heartbeat_interval", "dur"}, {"uplink.mqtt.connect_timeout", "dur"},
	{"uplink.mqtt.command_timeout", "dur"}, {"uplink.mqtt.cursor_interval", "dur"}, {"uplink.mqtt.format", "str"},
	{"uplink.mqtt.group_id", "str"}, {"uplink.mqtt.edge_node_id", "str"}, {"uplink.mqtt.primary_host_id", "str"},
	{"uplink.websocket.url", "str"}, {"uplink.websocket.token", "str"}, {"uplink.websocket.ca_file", "str"},
	{"uplink.websocket.cert_file", "str"}, {"uplink.websocket.key_file", "str"},
	{"uplink.websocket.insecure_skip_verify", "bool"}, {"uplink.websocket.heartbeat_interval", "dur"},
	{"uplink.websocket.ack_timeout", "dur"}, {"uplink.websocket.batch_size", "int"}, {"uplink.websocket.max_inflight", "int"},
	{"uplink.websocket.max_message_bytes", "int"}, {"uplink.websocket.dial_timeout", "dur"},
	{"uplink.websocket.write_wait", "dur"}, {"uplink.websocket.command_timeout", "dur"},
	{"uplink.websocket.cursor_interval", "dur"},
	{"devices.0.id", "int"}, {"devices.0.name", "str"}, {"devices.0.driver", "str"}, {"devices.0.interval", "dur"},
	{"devices.0.jitter", "dur"}, {"devices.0.timeout", "dur"}, {"devices.0.offline_after", "dur"},
	{"devices.0.bus", "str"}, {"devices.0.address", "int"}, {"devices.0.pin", "str"}, {"devices.0.settings", "str"},
	{"rules.0.name", "str"}, {"rules.0.device_ids", "str"}, {"rules.0.metric", "str"}, {"rules.0.above", "float"},
	{"rules.0.below", "float"}, {"rules.0.clear", "float"}, {"rules.0.for", "dur"}, {"rules.0.offline", "bool"},
	{"rules.0.severity", "str"}, {"rules.0.title", "str"}, {"rules.0.message", "str"},
	{"rules.1.device_ids", "str"}, {"rules.1.metric", "str"},
}

// setKey returns base with the key at path (dots; numbers index lists) set
// to the YAML text value.
func setKey(t *testing.T, base, path, value string) []byte {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(base), &doc); err != nil {
		t.Fatal(err)
	}
	var v yaml.Node
	if err := yaml.Unmarshal([]byte("v: "+value), &v); err != nil {
		t.Fatalf("value %q: %v", value, err)
	}
	val := v.Content[0].Content[1]
	n := doc.Content[0]
	parts := strings.Split(path, ".")
	for i, p := range parts {
		last := i == len(parts)-1
		switch n.Kind {
		case yaml.SequenceNode:
			var idx int
			fmt.Sscan(p, &idx)
			n = n.Content[idx]
		case yaml.MappingNode:
			found := false
			for j := 0; j+1 < len(n.Content); j += 2 {
				if n.Content[j].Value == p {
					if last {
						n.Content[j+1] = val
					}
					n, found = n.Content[j+1], true
					break
				}
			}
			if !found {
				next := &yaml.Node{Kind: yaml.MappingNode}
				if last {
					next = val
				}
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: p}, next)
				n = next
			}
		}
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCheckCatchesWhatStartRefuses feeds values on both sides of every
// bound to every key. Each config either fails Validate (what `agent
// -check-config` runs) with a *ConfigError naming a line and a field, or
// builds every part with the real constructors: the agent, the store, the
// verifier, the hub, the V3 endpoint, both uplinks and the devices'
// drivers. So no error a constructor can return for a value gets past the
// check.
func TestCheckCatchesWhatStartRefuses(t *testing.T) {
	dir := t.TempDir()
	shared, err := store.Open(filepath.Join(dir, "shared.db"), &store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	if _, err := ParseConfig("base.yaml", []byte(sweepBase)); err != nil {
		t.Fatalf("the base config must be valid: %v", err)
	}
	passed, refused := 0, 0
	for _, k := range sweepKeys {
		for _, v := range sweepValues[k.kind] {
			raw := setKey(t, sweepBase, k.path, v)
			cfg, err := ParseConfig("sweep.yaml", raw)
			if err != nil {
				var ce *ConfigError
				if !errors.As(err, &ce) || ce.File != "sweep.yaml" || ce.Line <= 0 || ce.Field == "" || ce.Field == "(document)" {
					t.Errorf("%s: %s: error without file, line and field: %#v\n%s", k.path, v, err, raw)
				}
				refused++
				continue
			}
			passed++
			if err := buildParts(t, cfg, shared, strings.HasPrefix(k.path, "store.")); err != nil {
				t.Errorf("%s: %s passed the check, but starting fails: %v\n%s", k.path, v, err, raw)
			}
		}
	}
	t.Logf("%d configs passed the check and built every part; %d were refused with file, line and field", passed, refused)
}

// buildParts runs every constructor the agent runs at start, without
// serving: New, store.Open (when the store's keys vary), the verifier, the
// hub, the V3 endpoint (wire), the uplinks (buildUplinks, as start and
// reload do), the drivers, and the listen
// address's parse.
func buildParts(t *testing.T, cfg *Config, shared *store.Store, openStore bool) error {
	a, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("agent.New: %w", err)
	}
	a.store = shared
	if openStore {
		so := cfg.storeOptions()
		so.Logger = a.log
		st, err := store.Open(filepath.Join(t.TempDir(), DBFile), &so)
		if err != nil {
			return fmt.Errorf("store.Open: %w", err)
		}
		defer st.Close()
		a.store = st
	}
	a.secret = []byte("0123456789abcdef0123456789abcdef")
	if _, err := a.wire(); err != nil {
		return fmt.Errorf("wire: %w", err)
	}
	if _, err := a.buildUplinks(cfg, nil); err != nil {
		return fmt.Errorf("uplinks: %w", err)
	}
	for _, d := range cfg.Devices {
		spec := d.Spec(0)
		if !strings.HasPrefix(d.Driver, "sim-") {
			continue // hardware: its build needs the bus, a runtime matter
		}
		s, err := catalog.Build(&spec, nil)
		if err != nil {
			return fmt.Errorf("catalog.Build: %w", err)
		}
		if c, ok := s.(interface{ Close() error }); ok {
			c.Close()
		}
	}
	if host, _, _ := net.SplitHostPort(cfg.Listen); net.ParseIP(host) != nil || host == "" {
		if _, err := net.ResolveTCPAddr("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	return nil
}

func TestGatewayIDFromMachineID(t *testing.T) {
	a, okA := gatewayIDFromMachineID([]byte("4f1b0c3e9a2d4c5b8e7f6a1b2c3d4e5f\n"))
	b, okB := gatewayIDFromMachineID([]byte("4f1b0c3e9a2d4c5b8e7f6a1b2c3d4e60\n"))
	again, _ := gatewayIDFromMachineID([]byte("4f1b0c3e9a2d4c5b8e7f6a1b2c3d4e5f"))
	if !okA || !okB || a == b || a != again || len(a) != 19 || !strings.HasPrefix(a, "fh-") || !validID(a) {
		t.Fatalf("ids %q %q %q", a, b, again)
	}
	if strings.Contains(a, "4f1b0c3e") {
		t.Errorf("the id %q exposes the machine id", a)
	}
	for _, bad := range []string{"", "uninitialized\n", strings.Repeat("0", 32), "zz1b0c3e9a2d4c5b8e7f6a1b2c3d4e5f", "4f1b"} {
		if id, ok := gatewayIDFromMachineID([]byte(bad)); ok {
			t.Errorf("%q gave %q", bad, id)
		}
	}
}

func TestGatewayIDDefault(t *testing.T) {
	dir := t.TempDir()
	mid := filepath.Join(dir, "machine-id")
	if err := os.WriteFile(mid, []byte("4f1b0c3e9a2d4c5b8e7f6a1b2c3d4e5f\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := machineIDFiles
	t.Cleanup(func() { machineIDFiles = old })
	machineIDFiles = []string{filepath.Join(dir, "missing"), mid}
	data := []byte("data_dir: " + t.TempDir() + "\n") // fresh: nothing persisted
	c, err := ParseConfig("x", data)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := gatewayIDFromMachineID([]byte("4f1b0c3e9a2d4c5b8e7f6a1b2c3d4e5f"))
	if c.GatewayID != want || c.GatewayIDSource() != mid {
		t.Fatalf("gateway_id %q from %q, want %q from %s", c.GatewayID, c.GatewayIDSource(), want, mid)
	}
	c, err = ParseConfig("x", []byte("gateway_id: press-1\n"))
	if err != nil || c.GatewayID != "press-1" || c.GatewayIDSource() != "config" {
		t.Fatalf("set: %v %q %q", err, c.GatewayID, c.GatewayIDSource())
	}
	machineIDFiles = []string{filepath.Join(dir, "missing")}
	c, err = ParseConfig("x", data)
	if err != nil || c.GatewayIDSource() != "hostname" || !validID(c.GatewayID) {
		t.Fatalf("no machine id: %v %q %q", err, c.GatewayID, c.GatewayIDSource())
	}
	if got := sanitizeID("pi.local host"); got != "pi-local-host" {
		t.Errorf("sanitizeID = %q", got)
	}
}
