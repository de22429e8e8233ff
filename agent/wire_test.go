package agent

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/floorhub/floorhub/auth"
)

// TestV3CommandsReachTheAgent checks the wiring: a terminal on the V3
// endpoint runs the same commands as the uplinks, answered by the agent.
func TestV3CommandsReachTheAgent(t *testing.T) {
	dir := t.TempDir()
	r := start(t, `
gateway_id: gw-7
data_dir: `+dir+`
listen: `+freeAddr(t)+`
devices:
  - {id: 1, driver: sim-env, interval: 1h}
`)
	tok, err := auth.Mint(r.a.secret, "op", time.Hour, auth.Claims{})
	if err != nil {
		t.Fatal(err)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+r.a.cfg.Listen+"/v3/ws/group/floor/client/term-1?token="+tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	if err := ws.WriteJSON(map[string]any{"msg_type": "cmd", "target": "direct", "to_id": "gw-7", "cmd": "read_now",
		"payload": map[string]any{"device_id": 1, "request_id": "r-1"}}); err != nil {
		t.Fatal(err)
	}
	for {
		var m struct{ Raw map[string]json.RawMessage }
		if err := ws.ReadJSON(&m.Raw); err != nil {
			t.Fatal(err)
		}
		var cmd string
		_ = json.Unmarshal(m.Raw["cmd"], &cmd)
		if cmd != "RESULT" {
			continue
		}
		var p struct {
			OK        bool            `json:"ok"`
			RequestID string          `json:"request_id"`
			Result    json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(m.Raw["payload"], &p); err != nil || !p.OK || p.RequestID != "r-1" {
			t.Fatalf("RESULT %s (%v)", m.Raw["payload"], err)
		}
		var res struct {
			Seq      uint64 `json:"seq"`
			DeviceID int    `json:"device_id"`
		}
		if err := json.Unmarshal(p.Result, &res); err != nil || res.Seq == 0 || res.DeviceID != 1 {
			t.Fatalf("read_now result %s", p.Result)
		}
		return
	}
}
