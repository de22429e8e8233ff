package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/floorhub/floorhub/internal/testkit"
)

// chatClientDir holds the stock socket.io-client (pinned by its
// package-lock.json, installed by scripts/test.sh) and chat.mjs, the seed
// 001 flow.
const chatClientDir = "../sioconformance/testdata/client"

// The seed's floor chat with the stock npm socket.io-client (default
// options) against the real binary, across a kill -9: two users, one
// offline while messages arrive, who then finds them with unread counts.
func TestChatStockClient(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		testkit.Missing(t, "node is not installed (Node.js 20 runs the stock socket.io-client)")
	}
	if _, err := os.Stat(filepath.Join(chatClientDir, "node_modules", "socket.io-client")); err != nil {
		testkit.Missing(t, "socket.io-client is not installed: run npm ci in cmd/sioconformance/testdata/client (scripts/test.sh does)")
	}
	bin := testkit.BuildAgent(t)
	dir := t.TempDir()
	p := testkit.StartAgent(t, bin, dir, "-listen", "127.0.0.1:0")
	token := func(user, uid string) string {
		out, err := testkit.Command(bin, "token", "-user", user, "-uid", uid, "-data", filepath.Join(dir, "data")).Output()
		if err != nil {
			t.Fatalf("agent token: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	alice, bob := token("alice", "1"), token("bob", "2")
	node := func(p *testkit.Agent, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "node", append([]string{filepath.Join(chatClientDir, "chat.mjs"), args[0], "http://" + p.Addr, alice, bob}, args[1:]...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("chat.mjs %s: %v\n%s\nagent:\n%s", args[0], err, out, p.Log)
		}
		t.Logf("chat.mjs %s:\n%s", args[0], out)
		return string(out)
	}
	out := node(p, "before")
	_, id, ok := strings.Cut(out, "chat_id ")
	if !ok {
		t.Fatalf("no chat id in %q", out)
	}
	id, _, _ = strings.Cut(id, "\n")

	// kill -9: what was acknowledged must be there after the restart.
	p.Kill(t)
	p = testkit.StartAgent(t, bin, dir, "-listen", "127.0.0.1:0")
	out = node(p, "after", id)
	for _, want := range []string{"offline member gets unread counts on connect", "chat_messages after the restart", "connect_error without a valid token or with another userId"} {
		if !strings.Contains(out, "ok "+want+"\n") {
			t.Errorf("chat.mjs did not report %q", want)
		}
	}
	if code := p.Stop(t); code != 0 {
		t.Fatalf("exit %d after SIGINT:\n%s", code, p.Log)
	}
}
