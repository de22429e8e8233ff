package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/floorhub/floorhub/internal/testkit"
)

// TestMain deletes the agent the tests built once they have run.
func TestMain(m *testing.M) { testkit.RunAgentTests(m) }

// TestNewcomer is the README's first command as a new user runs it: no
// config, the printed URL works, telemetry flows, Ctrl-C exits 0.
func TestNewcomer(t *testing.T) {
	bin := testkit.BuildAgent(t)
	dir := t.TempDir()
	// The kernel picks the port; the agent prints it in its URL.
	p := testkit.StartAgent(t, bin, dir, "-listen", "127.0.0.1:0")
	addr := p.Addr
	if !strings.HasPrefix(p.URL, "http://localhost:") || !strings.Contains(p.URL, "/?token=") {
		t.Fatalf("URL %q", p.URL)
	}
	page := strings.Replace(p.URL, "localhost", "127.0.0.1", 1)
	resp, err := http.Get(page)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<title>floorhub</title>") {
		t.Fatalf("dashboard: %d", resp.StatusCode)
	}
	token := page[strings.Index(page, "token=")+len("token="):]
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	send := func(v any) {
		if err := ws.WriteJSON(v); err != nil {
			t.Fatal(err)
		}
	}
	send(map[string]any{"type": "auth", "token": token})
	var m map[string]any
	if err := ws.ReadJSON(&m); err != nil || m["type"] != "auth_response" || m["success"] != true {
		t.Fatalf("auth: %v %v", m, err)
	}
	send(map[string]any{"type": "subscribe", "channel": "telemetry", "device_id": 1})
	for {
		m = nil
		if err := ws.ReadJSON(&m); err != nil {
			t.Fatalf("waiting for telemetry: %v", err)
		}
		if m["type"] == "telemetry_update" {
			break
		}
	}
	if m["device_id"] != float64(1) || m["telemetry"].(map[string]any)["temperature"] == nil {
		t.Fatalf("telemetry_update %v", m)
	}
	// The printed token also opens the floor chat (the dashboard's panel):
	// Engine.IO open, then a Socket.IO CONNECT that is accepted.
	sio, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/socket.io/?EIO=4&transport=websocket&token="+token, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sio.Close()
	sio.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, open, err := sio.ReadMessage(); err != nil || !strings.HasPrefix(string(open), "0{") {
		t.Fatalf("chat: Engine.IO open %q %v", open, err)
	}
	if err := sio.WriteMessage(websocket.TextMessage, []byte("40")); err != nil {
		t.Fatal(err)
	}
	if _, conn, err := sio.ReadMessage(); err != nil || !strings.HasPrefix(string(conn), "40{") {
		t.Fatalf("chat: CONNECT with the printed token answered %q %v", conn, err)
	}
	if code := p.Stop(t); code != 0 {
		t.Fatalf("exit %d after SIGINT:\n%s", code, p.Log)
	}
	// The client got a close frame, not a dropped TCP connection.
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
				t.Fatalf("want close 1001 on shutdown, got %v", err)
			}
			break
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "floorhub.db")); err != nil {
		t.Fatalf("no database under ./data: %v", err)
	}
}

func TestBadConfigExits78(t *testing.T) {
	bin := testkit.BuildAgent(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "c.yaml"), []byte("listen: :1\nbogus: 1\n"), 0o644)
	cmd := testkit.Command(bin, "-config", "c.yaml")
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 78 || !strings.Contains(string(out), "c.yaml:2: bogus") {
		t.Fatalf("exit %d: %s", cmd.ProcessState.ExitCode(), out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := testkit.CommandContext(ctx, bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "floorhub agent ") {
		t.Fatalf("version: %v %s", err, out)
	}
}
