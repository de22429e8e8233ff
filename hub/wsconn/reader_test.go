package wsconn

import (
	"bytes"
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/floorhub/floorhub/internal/testkit"
)

// A client's frames as the wire has them: a fragmented message with a
// ping between its frames, a close with a code, and a frame that breaks
// the protocol.
func TestReaderFrames(t *testing.T) {
	_, url, _ := start(t, Options{})
	t.Run("fragments and ping", func(t *testing.T) {
		ws := dial(t, url)
		pong := make(chan string, 1)
		ws.SetPongHandler(func(p string) error { pong <- p; return nil })
		nc := ws.NetConn()
		raw := append(clientBytes(0x01, []byte("login:")), clientBytes(0x89, []byte("are you there"))...)
		raw = append(raw, clientBytes(0x80, []byte("frag"))...)
		// One byte at a time: every frame arrives in pieces.
		for i := range raw {
			if _, err := nc.Write(raw[i : i+1]); err != nil {
				t.Fatal(err)
			}
		}
		if got := readText(t, ws); got != "login:frag" {
			t.Fatalf("echo %q", got)
		}
		select {
		case p := <-pong:
			if p != "are you there" {
				t.Fatalf("pong %q", p)
			}
		default:
			t.Fatal("no pong before the echo")
		}
	})
	t.Run("close code", func(t *testing.T) {
		ws := dial(t, url)
		if _, err := ws.NetConn().Write(clientBytes(0x88, appendClose(nil, 4001, "done"))); err != nil {
			t.Fatal(err)
		}
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err := ws.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 4001 {
			t.Fatalf("%v, want the close code 4001 back", err)
		}
	})
	t.Run("unmasked frame", func(t *testing.T) {
		ws := dial(t, url)
		if _, err := ws.NetConn().Write([]byte{0x81, 0x02, 'h', 'i'}); err != nil {
			t.Fatal(err)
		}
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err := ws.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseProtocolError {
			t.Fatalf("%v, want a close with 1002", err)
		}
	})
}

// An idle connection's reader keeps the smallest goroutine stack however
// deep a message's handling went. The test runs itself again with the
// runtime's adaptive starting stack off (GODEBUG), so that every new
// goroutine starts at 2 KiB and only growth can make it more.
func TestIdleReaderStack(t *testing.T) {
	if os.Getenv("WSCONN_STACK_CHILD") == "" {
		cmd := testkit.Reexec(t, "-test.run=^TestIdleReaderStack$", "-test.v")
		cmd.Env = append(os.Environ(), "WSCONN_STACK_CHILD=1", "GODEBUG=adaptivestackstart=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		t.Logf("%s", bytes.TrimSpace(out))
		return
	}
	_, url, sessions := start(t, Options{ConnectsPerMinute: -1, MaxConns: -1, MaxConnsPerUser: -1})
	const n = 200
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		ws := dial(t, url)
		<-sessions
		// The echo session's handling of a login goes through SetUser
		// and SendWait: deeper than a waiting reader.
		ws.WriteMessage(websocket.TextMessage, []byte("login:u"))
		if got := readText(t, ws); got != "login:u" {
			t.Fatalf("echo %q", got)
		}
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	// The server's reader is the only goroutine per connection (gorilla's
	// client reads on the test's goroutine).
	per := float64(after.StackInuse-before.StackInuse) / n
	t.Logf("stack per connection: %.0f bytes", per)
	if !testkit.RaceEnabled && per > 3200 { // 2.6 KB measured; a reader that grew holds 4 KiB or more (4.3 KB before)
		t.Fatalf("stack per idle connection %.0f bytes, want the 2 KiB a waiting reader needs", per)
	}
}
