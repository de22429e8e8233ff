package agent

import (
	"errors"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/floorhub/floorhub/internal/yamlconf"
	"github.com/floorhub/floorhub/store"
	"github.com/floorhub/floorhub/uplink/mqtt"
)

func TestJudge(t *testing.T) {
	online := deviceSnapshot{ID: 1, Name: "env", Status: store.StatusOnline}
	for _, c := range []struct {
		name string
		h    healthState
		want []string // a prefix of each reason, in order
	}{
		{"healthy", healthState{CommitInterval: time.Second, Devices: []deviceSnapshot{online}}, nil},
		{"idle store: nothing waits", healthState{CommitInterval: time.Second, SinceCommit: time.Hour}, nil},
		{"records wait, a commit is due soon", healthState{CommitInterval: time.Second, SinceCommit: 9 * time.Second,
			Store: store.Stats{Pending: 5}}, nil},
		{"records wait, no commit for long", healthState{CommitInterval: time.Second, SinceCommit: 11 * time.Second,
			Store: store.Stats{Pending: 5}}, []string{"store: 5 records wait"}},
		{"a long commit interval stretches the limit", healthState{CommitInterval: 5 * time.Second, SinceCommit: 20 * time.Second,
			Store: store.Stats{Pending: 5}}, nil},
		{"commits fail", healthState{CommitInterval: time.Second, SinceCommit: 2 * time.Second,
			Store: store.Stats{Pending: 1, Failing: true}}, []string{"store: 1 records wait"}},
		{"uplink down briefly", healthState{Uplinks: []uplinkState{{Name: "mqtt", DownFor: time.Minute}}}, nil},
		{"uplink down long", healthState{Uplinks: []uplinkState{{Name: "mqtt", DownFor: 6 * time.Minute, Backlog: 3}}},
			[]string{"uplink mqtt: disconnected for 6m0s; 3 records wait"}},
		{"uplink connected, draining fresh records", healthState{Uplinks: []uplinkState{{Name: "websocket", Connected: true,
			Backlog: 100, OldestUnsent: time.Minute}}}, nil},
		{"uplink connected but behind", healthState{Uplinks: []uplinkState{{Name: "websocket", Connected: true,
			Backlog: 100, OldestUnsent: time.Hour}}}, []string{"uplink websocket: behind"}},
		{"device offline", healthState{Devices: []deviceSnapshot{online, {ID: 2, Name: "oven", Status: store.StatusOffline, Reason: "no reading for 20s"}}},
			[]string{"device 2 (oven): offline: no reading for 20s"}},
		{"device warning", healthState{Devices: []deviceSnapshot{{ID: 2, Status: store.StatusWarning}}}, nil},
		{"device not read yet", healthState{Devices: []deviceSnapshot{{ID: 2, Status: store.StatusOffline, Unread: true}}}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := judge(&c.h)
			if len(got) != len(c.want) {
				t.Fatalf("reasons %q, want %d", got, len(c.want))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], c.want[i]) {
					t.Errorf("reason %q, want it to start with %q", got[i], c.want[i])
				}
			}
		})
	}
}

func TestExposition(t *testing.T) {
	var e expo
	e.family("x_total", "counter", "A help\\line\nwith a newline.")
	e.sample("x_total", 3, "name", "a \"b\" \\ c\nd", "k", "v")
	e.sample("x_total", math.Inf(1))
	e.sample("x_total", math.NaN())
	e.sample("x_total", 0.25)
	want := `# HELP x_total A help\\line\nwith a newline.
# TYPE x_total counter
x_total{name="a \"b\" \\ c\nd",k="v"} 3
x_total +Inf
x_total NaN
x_total 0.25
`
	if got := e.b.String(); got != want {
		t.Errorf("exposition:\n%s\nwant:\n%s", got, want)
	}
}

func f(v float64) *float64 { return &v }

// replace keeps what a reloaded rule list keeps, and clears what it no
// longer watches.
func TestRulesReplace(t *testing.T) {
	hot := RuleConfig{Name: "hot", Metric: "temperature", Above: f(30), Severity: "critical", Title: "Hot"}
	off := RuleConfig{Name: "off", Offline: true, Severity: "warning", Title: "Off"}
	for _, c := range []struct {
		name    string
		next    []RuleConfig
		devices []int
		active  []ruleKey // still active after
		pending []ruleKey // still pending after
		cleared []string  // messages of the clear records appended
	}{
		{"unchanged", []RuleConfig{hot, off}, []int{1, 2},
			[]ruleKey{{"hot", 1}, {"off", 2}}, []ruleKey{{"hot", 2}}, nil},
		{"threshold changed: active stays, pending starts over",
			[]RuleConfig{{Name: "hot", Metric: "temperature", Above: f(40), Severity: "critical"}, off}, []int{1, 2},
			[]ruleKey{{"hot", 1}, {"off", 2}}, nil, nil},
		{"rule gone", []RuleConfig{off}, []int{1, 2},
			[]ruleKey{{"off", 2}}, nil, []string{"rule no longer configured"}},
		{"device gone", []RuleConfig{hot, off}, []int{1},
			[]ruleKey{{"hot", 1}}, nil, []string{"device no longer configured"}},
		{"rule narrowed to another device",
			[]RuleConfig{{Name: "hot", DeviceIDs: []int{2}, Metric: "temperature", Above: f(30), Severity: "critical"}, off}, []int{1, 2},
			[]ruleKey{{"off", 2}}, nil, []string{"rule no longer watches the device"}},
		{"metric changed",
			[]RuleConfig{{Name: "hot", Metric: "humidity", Above: f(30), Severity: "critical"}, off}, []int{1, 2},
			[]ruleKey{{"off", 2}}, nil, []string{"rule changed what it watches"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var appended []store.Record
			a := &Agent{now: time.Now, devices: map[int]*device{}}
			a.log = quietLogger()
			a.clock = newClock(time.Now, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
			a.publish = []func(store.Record){func(r store.Record) { appended = append(appended, r) }}
			r := newRules(a, []RuleConfig{hot, off})
			r.state[ruleKey{"hot", 1}] = &ruleState{activeID: 10}
			r.state[ruleKey{"hot", 2}] = &ruleState{pendingSince: time.Now()}
			r.state[ruleKey{"off", 2}] = &ruleState{activeID: 11}
			st, err := store.Open(t.TempDir()+"/db", &store.Options{Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			a.store = st
			ids := map[int]bool{}
			for _, id := range c.devices {
				ids[id] = true
			}
			r.replace(c.next, ids)
			var active, pending []ruleKey
			for k, s := range r.state {
				if s.activeID != 0 {
					active = append(active, k)
				}
				if !s.pendingSince.IsZero() {
					pending = append(pending, k)
				}
			}
			if !sameKeys(active, c.active) || !sameKeys(pending, c.pending) {
				t.Errorf("active %v pending %v; want %v and %v", active, pending, c.active, c.pending)
			}
			var msgs []string
			for _, rec := range appended {
				if rec.Alert == nil || rec.Alert.State != store.AlertCleared {
					t.Fatalf("appended %+v", rec)
				}
				msgs = append(msgs, rec.Alert.Message)
			}
			if strings.Join(msgs, "|") != strings.Join(c.cleared, "|") {
				t.Errorf("cleared with %q, want %q", msgs, c.cleared)
			}
		})
	}
}

func sameKeys(x, y []ruleKey) bool {
	if len(x) != len(y) {
		return false
	}
	m := map[ruleKey]bool{}
	for _, k := range x {
		m[k] = true
	}
	for _, k := range y {
		if !m[k] {
			return false
		}
	}
	return true
}

func TestSameDevice(t *testing.T) {
	parse := func(s string) DeviceConfig {
		var d DeviceConfig
		n, err := yamlconf.Parse([]byte(s))
		if err == nil {
			err = yamlconf.Decode(n, &d)
		}
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a := parse("id: 1\ndriver: sim-env\nsettings: {seed: 7}\n")
	moved := parse("\n\n\nid: 1\ndriver: sim-env\nsettings:\n  seed: 7\n") // same, elsewhere in the file
	if !sameDevice(a, moved) {
		t.Error("the same device at other lines differs")
	}
	for _, other := range []string{"id: 1\ndriver: sim-env\nsettings: {seed: 8}\n", "id: 1\ndriver: sim-hot\nsettings: {seed: 7}\n",
		"id: 1\ndriver: sim-env\ninterval: 2s\nsettings: {seed: 7}\n", "id: 1\ndriver: sim-env\n"} {
		if sameDevice(a, parse(other)) {
			t.Errorf("%q is the same as %q", other, "id: 1, sim-env, seed 7")
		}
	}
}

func TestRestartOnly(t *testing.T) {
	run := Defaults()
	next := Defaults()
	next.Listen, next.Store.MaxBatch, next.Log.Level = ":9000", 10, "debug"
	if got := strings.Join(restartOnly(run, next), ","); got != "listen,store" {
		t.Errorf("restart-only keys %q, want listen,store", got)
	}
}

// Reload refuses an invalid config before it reaches Run, and answers
// ErrNotRunning once Run has returned.
func TestReloadRefusesAndStops(t *testing.T) {
	dir := t.TempDir()
	r := start(t, "data_dir: "+dir+"\nlisten: "+anyPort+"\ndevices:\n  - {id: 1, driver: sim-env, interval: 100ms}\n")
	bad, err := ParseConfig("bad.yaml", []byte("devices:\n  - {id: 1, driver: sim-env}\nrules:\n  - {name: x, metric: nosuch, above: 1}\n"))
	if err == nil {
		err = r.a.Reload(bad)
	}
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("a rule on a metric no device reports: %v", err)
	}
	r.stop(t)
	good, err := ParseConfig("good.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.a.Reload(good); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Reload after Run: %v", err)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestKeepRestartOnly: every key restartOnly names is kept from the
// running config, so none of them changes what a reload rebuilds.
func TestKeepRestartOnly(t *testing.T) {
	run := Defaults()
	next, err := ParseConfig("next.yaml", []byte(`gateway_id: other
data_dir: /elsewhere
listen: ":9001"
public_url: https://gw.example
log: {format: json, level: debug}
store: {max_batch: 10}
auth: {leeway: 5s}
system: {interval: 7s}
clock: {valid_after: "2030-01-01"}
hub: {v3_group: g2, max_batch: 50}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(restartOnly(run, next)); got != 10 {
		t.Fatalf("the file changes %d restart-only keys, want all 10: %v", got, restartOnly(run, next))
	}
	eff, held := keepRestartOnly(run, next)
	if got := restartOnly(run, eff); len(got) != 0 || len(held) != 0 {
		t.Errorf("kept config still differs in %v (held %v)", got, held)
	}
	if eff.Log.Level != "debug" || eff.Hub.MaxBatch != 50 || eff.GatewayID != run.GatewayID {
		t.Errorf("what a reload applies was lost: level %q, hub.max_batch %d", eff.Log.Level, eff.Hub.MaxBatch)
	}
	if next.GatewayID != "other" {
		t.Error("the reloaded config was changed in place")
	}
}

// TestReloadKeepsGatewayID: gateway_id applies at the next start only; a
// reload that changes it leaves the uplinks as they run (the MQTT topics,
// the websocket uplink's url) and says it needs a restart; what else the
// file changes in an uplink still applies.
func TestReloadKeepsGatewayID(t *testing.T) {
	dir := t.TempDir()
	head := "data_dir: " + dir + "\nlisten: " + anyPort + "\ndevices:\n  - {id: 1, driver: sim-env, interval: 100ms}\n"
	r := start(t, "gateway_id: g1\n"+head+`uplink:
  mqtt: {url: "tcp://127.0.0.1:1"}
  websocket: {url: "ws://127.0.0.1:1/v3/ws/group/s/client/g1"}
`)
	uplinks := func() []*uplinkRun {
		r.a.upMu.Lock()
		defer r.a.upMu.Unlock()
		return slices.Clone(r.a.uplinks)
	}
	before := uplinks()
	if len(before) != 2 {
		t.Fatalf("%d uplinks", len(before))
	}
	next, err := ParseConfig("next.yaml", []byte("gateway_id: g2\n"+head+`uplink:
  mqtt: {url: "tcp://127.0.0.1:1"}
  websocket: {url: "ws://127.0.0.1:1/v3/ws/group/s/client/g2"}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.a.Reload(next); err != nil {
		t.Fatal(err)
	}
	after := uplinks()
	if len(after) != 2 || after[0] != before[0] || after[1] != before[1] {
		t.Fatalf("uplinks rebuilt: %v -> %v", before, after)
	}
	if got := after[0].opts.(mqtt.Options).GatewayID; got != "g1" {
		t.Errorf("mqtt uplink runs as %q", got)
	}
	logs := r.logs.String()
	if !strings.Contains(logs, "next start only") || !strings.Contains(logs, "keys=\"gateway_id, uplink.websocket") {
		t.Errorf("no restart notice for gateway_id and the websocket url:\n%s", logs)
	}

	// The MQTT settings change: that uplink is rebuilt, still as g1.
	next, err = ParseConfig("next.yaml", []byte("gateway_id: g2\n"+head+`uplink:
  mqtt: {url: "tcp://127.0.0.1:1", batch_size: 7}
  websocket: {url: "ws://127.0.0.1:1/v3/ws/group/s/client/g2"}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.a.Reload(next); err != nil {
		t.Fatal(err)
	}
	after = uplinks()
	if len(after) != 2 || after[0] == before[0] || after[1] != before[1] {
		t.Fatalf("want only the mqtt uplink rebuilt: %v -> %v", before, after)
	}
	if o := after[0].opts.(mqtt.Options); o.GatewayID != "g1" || o.BatchSize != 7 {
		t.Errorf("rebuilt mqtt uplink: gateway %q batch %d", o.GatewayID, o.BatchSize)
	}
}
