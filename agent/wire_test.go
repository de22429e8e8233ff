package agent

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/auth/authtest"
	"github.com/floorhub/floorhub/hub/wsconn"
)

// Every hub limit set in the YAML reaches the hub.
func TestHubConfigReachesTheHub(t *testing.T) {
	cfg, err := ParseConfig("gw.yaml", []byte(`
hub:
  allowed_origins: [dash.example.com]
  max_message_bytes: 2048
  messages_per_second: -1
  max_connections_per_user: 5
  max_connections: 50
  connects_per_minute: 20
  max_batch: 10
  queue_len: 64
  auth_timeout: 3s
  ping_interval: 20s
  pong_wait: 5s
  write_wait: 4s
  write_delay: 50ms
`))
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	o := a.hubOptions(nil)
	want := wsconn.Options{AllowedOrigins: []string{"dash.example.com"}, MaxMessageBytes: 2048, MessagesPerSecond: -1,
		MaxConnsPerUser: 5, MaxConns: 50, ConnectsPerMinute: 20, QueueLen: 64, AuthTimeout: 3 * time.Second,
		PingInterval: 20 * time.Second, PongWait: 5 * time.Second, WriteWait: 4 * time.Second,
		WriteDelay: 50 * time.Millisecond}
	if !reflect.DeepEqual(o.Conn, want) || o.MaxBatch != 10 {
		t.Fatalf("hub options %+v, max batch %d; want %+v, 10", o.Conn, o.MaxBatch, want)
	}
}

// With auth.algorithm RS256 or ES256 and a public key file, the hub takes
// tokens signed by the matching private key and refuses the local HS256
// secret's.
func TestPublicKeyAuthFromConfig(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		alg    string
		method jwt.SigningMethod
		key    crypto.Signer
	}{
		{"RS256", jwt.SigningMethodRS256, rsaKey},
		{"ES256", jwt.SigningMethodES256, ecKey},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			dir := t.TempDir()
			der, err := x509.MarshalPKIXPublicKey(tc.key.Public())
			if err != nil {
				t.Fatal(err)
			}
			keyFile := filepath.Join(dir, "hub.pub")
			if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
				t.Fatal(err)
			}
			r := start(t, `
data_dir: `+dir+`/data
listen: `+anyPort+`
auth:
  algorithm: `+tc.alg+`
  public_key_file: `+keyFile+`
devices:
  - {id: 1, driver: sim-env, interval: 1h}
`)
			c := auth.Claims{}
			c.Subject = "op"
			c.ExpiresAt = auth.NewNumericDate(time.Now().Add(time.Hour))
			good, err := authtest.Mint(tc.method, tc.key, c)
			if err != nil {
				t.Fatal(err)
			}
			local, err := auth.Mint(r.a.secret, "op", time.Hour, auth.Claims{})
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range []struct {
				name, token string
				ok          bool
			}{{"signed by the key", good, true}, {"local HS256 secret", local, false}} {
				ws, _, err := websocket.DefaultDialer.Dial("ws://"+r.addr+"/ws", http.Header{})
				if err != nil {
					t.Fatal(err)
				}
				ws.SetReadDeadline(time.Now().Add(15 * time.Second))
				ws.WriteJSON(map[string]any{"type": "auth", "token": k.token})
				var m struct {
					Type    string `json:"type"`
					Success bool   `json:"success"`
					Error   string `json:"error"`
				}
				if err := ws.ReadJSON(&m); err != nil {
					t.Fatal(err)
				}
				ws.Close()
				if m.Type != "auth_response" || m.Success != k.ok || !k.ok && m.Error != "invalid_token" {
					t.Fatalf("%s: %+v, want success=%v", k.name, m, k.ok)
				}
			}
		})
	}
}

// TestV3CommandsReachTheAgent checks the wiring: a terminal on the V3
// endpoint runs the same commands as the uplinks, answered by the agent.
func TestV3CommandsReachTheAgent(t *testing.T) {
	dir := t.TempDir()
	r := start(t, `
gateway_id: gw-7
data_dir: `+dir+`
listen: `+anyPort+`
devices:
  - {id: 1, driver: sim-env, interval: 1h}
`)
	tok, err := auth.Mint(r.a.secret, "op", time.Hour, auth.Claims{})
	if err != nil {
		t.Fatal(err)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+r.addr+"/v3/ws/group/floor/client/term-1?token="+tok, nil)
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
