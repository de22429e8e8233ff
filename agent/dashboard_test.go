package agent

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/internal/testkit"
)

// dialHub connects to the agent's hub at path (a channel endpoint) with a
// fresh token, reads auth_response and subscribed, and returns the
// connection.
func dialHub(t *testing.T, r *running, path string) *websocket.Conn {
	t.Helper()
	tok, err := auth.Mint(r.a.secret, "op", time.Hour, auth.Claims{})
	if err != nil {
		t.Fatal(err)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+r.addr+path+"?token="+tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	for _, want := range []string{"auth_response", "subscribed"} {
		var m map[string]any
		if err := ws.ReadJSON(&m); err != nil || m["type"] != want {
			t.Fatalf("%s: %v (%v), want %s", path, m, err, want)
		}
	}
	return ws
}

func readMsg(t *testing.T, ws *websocket.Conn) map[string]any {
	t.Helper()
	var m map[string]any
	if err := ws.ReadJSON(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// What a dashboard needs on load comes from the hub: device names, driver
// and units, and the active alerts, also after the agent restarted.
func TestDashboardSnapshot(t *testing.T) {
	dir := t.TempDir()
	yaml := `
data_dir: ` + dir + `
listen: ` + anyPort + `
store: {commit_interval: 50ms}
devices:
  - {id: 1, name: line-1 environment, driver: sim-env, interval: 100ms}
  - {id: 2, driver: sim-door, interval: 1h}
rules:
  - {name: warm, metric: temperature, above: 0, severity: critical, title: High Temperature Alert}
`
	for run := range 2 {
		r := start(t, yaml)
		testkit.Eventually(t, "the warm alert", 10*time.Second, func() bool {
			r.a.viewMu.Lock()
			defer r.a.viewMu.Unlock()
			return len(r.a.alerts) == 1 && r.a.devices[1].units != nil
		})
		ws := dialHub(t, r, "/ws/devices")
		m := readMsg(t, ws)
		u, _ := m["units"].(map[string]any)
		if m["device_id"] != 1.0 || m["initial"] != true || m["name"] != "line-1 environment" || m["driver"] != "sim-env" ||
			u["temperature"] != "°C" || u["humidity"] != "%" {
			t.Fatalf("run %d: device 1: %v", run, m)
		}
		if m := readMsg(t, ws); m["device_id"] != 2.0 || m["driver"] != "sim-door" || m["name"] != nil {
			t.Fatalf("run %d: device 2: %v", run, m)
		}
		ws = dialHub(t, r, "/ws/alerts")
		m = readMsg(t, ws)
		if m["type"] != "alert" || m["initial"] != true || m["alert_type"] != "warm" || m["state"] != "active" || m["device_id"] != 1.0 {
			t.Fatalf("run %d: alert snapshot: %v", run, m)
		}
		r.stop(t)
	}
}

// The agent serves the history of its readings to a holder of the hub's
// token.
func TestDashboardHistory(t *testing.T) {
	r := start(t, `
listen: `+anyPort+`
store: {commit_interval: 50ms}
devices:
  - {id: 1, name: line-1 environment, driver: sim-env, interval: 100ms}
`)
	from := time.Now().Add(-time.Minute).UTC()
	testkit.Eventually(t, "readings committed", 10*time.Second, func() bool { return r.a.store.Stats().CommittedSeq > 5 })
	tok, err := auth.Mint(r.a.secret, "op", time.Hour, auth.Claims{})
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + r.addr + "/api/v1/history?" + url.Values{"device_id": {"1"}, "metric": {"temperature"},
		"from": {from.Format(time.RFC3339)}, "to": {time.Now().Add(time.Minute).UTC().Format(time.RFC3339)}, "points": {"120"}}.Encode()
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct {
		Unit    string `json:"unit"`
		Buckets []struct {
			Start         string
			Min, Avg, Max float64
			Count         int
		} `json:"buckets"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, err)
	}
	if h.Unit != "°C" || len(h.Buckets) == 0 || h.Buckets[0].Count == 0 || h.Buckets[0].Min > h.Buckets[0].Max {
		t.Fatalf("history: %+v", h)
	}
	// Without the token: refused.
	resp, err = http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without a token: %d", resp.StatusCode)
	}
}

// uplinksOf reads system updates until one's uplinks satisfy ok.
func uplinksOf(t *testing.T, ws *websocket.Conn, ok func([]map[string]any) bool) []map[string]any {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		m := readMsg(t, ws)
		raw, _ := m["uplinks"].([]any)
		ups := make([]map[string]any, len(raw))
		for i, u := range raw {
			ups[i] = u.(map[string]any)
		}
		if ok(ups) {
			return ups
		}
	}
}

// The system status shows each uplink's health: a connected one that has
// records acknowledged, and one whose central side is down.
func TestDashboardUplinkHealth(t *testing.T) {
	broker := testkit.Mosquitto(t)
	r := start(t, `
gateway_id: gw-1
listen: `+anyPort+`
store: {commit_interval: 100ms}
system: {interval: 1s}
devices:
  - {id: 1, driver: sim-env, interval: 100ms}
uplink:
  mqtt: {url: "`+broker+`"}
  websocket: {url: "ws://127.0.0.1:1/v3/ws/group/s/client/gw-1"}
`)
	ws := dialHub(t, r, "/ws/system")
	ups := uplinksOf(t, ws, func(ups []map[string]any) bool {
		return len(ups) == 2 && ups[0]["connected"] == true && ups[0]["last_ack"] != nil &&
			ups[1]["backlog"].(float64) > 0 && ups[1]["oldest_unsent_age_seconds"].(float64) > 0
	})
	if ups[0]["name"] != "mqtt" || ups[1]["name"] != "websocket" || ups[1]["connected"] != false || ups[1]["last_ack"] != nil ||
		ups[0]["acked_seq"].(float64) == 0 || ups[1]["missed"] != 0.0 || ups[0]["evictions"] != 0.0 {
		t.Fatalf("uplinks: %v", ups)
	}
	if _, err := time.Parse(time.RFC3339Nano, ups[0]["last_ack"].(string)); err != nil {
		t.Fatalf("last_ack: %v", err)
	}
}
