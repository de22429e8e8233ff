package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/store"
)

// A floor chat message reaches the control room on <prefix>/<gw>/chat
// through a real mosquitto, and the control room's chat_post lands in the
// chat (and comes back on the chat topic, as every message does).
func TestChatOverMQTT(t *testing.T) {
	r, c := startOverMQTT(t, `
devices:
  - {id: 1, driver: sim-env, interval: 1s}
`)
	var chats []string
	c.subscribe("floorhub/gw-1/chat", func(m paho.Message) {
		var b struct {
			Records []struct {
				Kind string `json:"kind"`
				Chat struct {
					SenderName string `json:"sender_name"`
					Message    string `json:"message"`
				} `json:"chat"`
			} `json:"records"`
		}
		if err := json.Unmarshal(m.Payload(), &b); err != nil {
			t.Errorf("chat topic: %v: %s", err, m.Payload())
		}
		for _, r := range b.Records {
			if r.Kind != "chat" {
				t.Errorf("record of kind %q on the chat topic", r.Kind)
			}
			chats = append(chats, r.Chat.SenderName+": "+r.Chat.Message)
		}
	})

	ch, _, err := r.a.store.CreateChat([]int64{1, 2}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.a.store.AppendChat(context.Background(), r.a.clock.stamp(store.Record{Kind: store.KindChat,
		Chat: &store.ChatMessage{ChatID: ch.ID, From: 1, FromName: "alice", To: 2, Text: "belt torn on line 3"}})); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the floor's message on the chat topic", 20*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(chats) >= 1
	})

	for _, p := range []string{
		`{"request_id":"c-1","chat_id":1,"user":"control room","message":"stop line 3"}`,
		`{"request_id":"c-2","chat_id":9,"user":"control room","message":"x"}`,
		`{"request_id":"c-3","chat_id":1,"message":"no sender"}`,
	} {
		c.command("chat_post", p)
	}
	testkit.Eventually(t, "three results and the central message on the chat topic", 20*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.results) == 3 && len(chats) >= 2
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	if res := c.results["c-1"]; res["ok"] != true || res["result"].(map[string]any)["sender_id"] != -1.0 {
		t.Errorf("chat_post: %v", res)
	}
	for _, id := range []string{"c-2", "c-3"} {
		if res := c.results[id]; res["ok"] != false || res["error"] != "bad_args" {
			t.Errorf("%s: %v", id, res)
		}
	}
	if strings.Join(chats, "|") != "alice: belt torn on line 3|control room: stop line 3" {
		t.Errorf("chat topic: %q", chats)
	}
	msgs, err := r.a.store.ChatMessages(ch.ID, 10)
	if err != nil || len(msgs) != 2 || msgs[1].Chat.FromName != "control room" || msgs[1].Chat.From != -1 {
		t.Fatalf("chat after chat_post: %+v %v", msgs, err)
	}
}

// The chat's limits reach its options, a bad one is named, and an
// unauthenticated Engine.IO session waits 10 s for its CONNECT, not 45.
func TestChatConfigReachesTheChat(t *testing.T) {
	cfg, err := ParseConfig("gw.yaml", []byte("chat:\n  max_chats_per_user: 7\n"))
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.chatOptions()
	if o.MaxChatsPerUser != 7 || o.SocketIO.ConnectTimeout != 10*time.Second {
		t.Fatalf("chat options: max chats per user %d, connect timeout %v", o.MaxChatsPerUser, o.SocketIO.ConnectTimeout)
	}
	// Earlier versions took up to 65536: such a config still starts, and
	// the chat takes what a stored record holds.
	for _, c := range []struct{ set, want int }{{65536, 63 << 10}, {64513, 63 << 10}, {64512, 64512}, {4000, 4000}} {
		cfg, err := ParseConfig("gw.yaml", fmt.Appendf(nil, "chat:\n  max_message_bytes: %d\n", c.set))
		if err != nil {
			t.Fatalf("max_message_bytes %d: %v", c.set, err)
		}
		if got := cfg.chatOptions().MaxMessageBytes; got != c.want {
			t.Errorf("max_message_bytes %d: the chat takes %d, want %d", c.set, got, c.want)
		}
	}
	if _, err := ParseConfig("gw.yaml", []byte("chat:\n  max_chats_per_user: -1\n")); err == nil || !strings.Contains(err.Error(), "chat.max_chats_per_user") {
		t.Fatalf("a negative max_chats_per_user: %v", err)
	}
}
