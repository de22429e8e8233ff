package hub

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/auth/authtest"
)

// Hostile clients of every kind at once, while a well-behaved client keeps
// receiving every alert with no gap, and the server stays up.
func TestHostileInput(t *testing.T) {
	th := newTestHub(t, limitless)
	good := th.login(t, "/ws/alerts", "good")
	good.readType("subscribed")

	// The publisher: an alert every few hundred microseconds until the
	// hostile clients are done.
	stop := make(chan struct{})
	var pubWG sync.WaitGroup
	var mu sync.Mutex
	last := uint64(0)
	pubWG.Add(1)
	go func() {
		defer pubWG.Done()
		tk := time.NewTicker(500 * time.Microsecond)
		defer tk.Stop()
		for seq := uint64(1); ; seq++ {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			th.Publish(alert(seq, 1, "critical", "temp_high"))
			mu.Lock()
			last = seq
			mu.Unlock()
		}
	}()
	// The good client reads concurrently and checks for gaps.
	goodDone := make(chan struct{})
	var goodErr error
	got := uint64(0)
	go func() {
		defer close(goodDone)
		for {
			m, err := good.next()
			if err != nil {
				return // closed by the test at the end
			}
			if m["type"] != "alert" {
				continue
			}
			mu.Lock()
			s := seqOf(m)
			if s != got+1 && goodErr == nil {
				goodErr = fmt.Errorf("good client: seq %d after %d", s, got)
			}
			got = s
			mu.Unlock()
		}
	}()

	// Each hostile client runs in a subtest of its own, concurrently; every
	// helper it calls takes the subtest's t, so a failure is reported (and
	// stops) there, never on this test from another goroutine.
	var wg sync.WaitGroup
	run := func(name string, fn func(t *testing.T)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(name, fn)
		}()
	}
	run("oversized frame", func(t *testing.T) {
		c := th.login(t, "/ws", "h1")
		c.sendRaw(`{"type":"ping","timestamp":"` + strings.Repeat("x", 2000) + `"}`)
		if code, _ := c.closeCode(); code != websocket.CloseMessageTooBig {
			t.Errorf("close %d, want 1009", code)
		}
	})
	run("oversized before auth", func(t *testing.T) {
		c := th.dial(t, "/ws", nil)
		// Over the 1024-byte limit but within the client's 4096-byte write
		// buffer: the frame leaves in one write. A larger one is written in
		// two, and the second can meet the reset of a server that has
		// already refused the frame and closed (seen under qemu-user).
		c.sendRaw(strings.Repeat("[", 2000))
		if code, _ := c.closeCode(); code != websocket.CloseMessageTooBig {
			t.Errorf("close %d, want 1009", code)
		}
	})
	run("invalid json and unknown types", func(t *testing.T) {
		c := th.login(t, "/ws", "h2")
		for _, s := range []string{`{`, `{"type":`, "\xff\xfe", `null`, `"auth"`, `{"type":"telemetry_update"}`, `{"type":"ping","timestamp":{"deep":[[[[[]]]]]}}`} {
			c.sendRaw(s)
			m := c.read()
			if m["type"] != "error" && m["type"] != "pong" {
				t.Errorf("%q: %v", s, m)
			}
		}
		c.send(map[string]any{"type": "ping"})
		c.readType("pong", "error")
	})
	run("binary frame", func(t *testing.T) {
		c := th.login(t, "/ws", "h3")
		c.ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
		if code, _ := c.closeCode(); code != websocket.CloseUnsupportedData {
			t.Errorf("close %d, want 1003", code)
		}
	})
	run("10000 message burst", func(t *testing.T) {
		c := th.login(t, "/ws", "h4")
		sent := 0
		for ; sent < 10000; sent++ {
			if c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)) != nil {
				break // the server closed the connection
			}
		}
		pongs, limited := 0, 0
		for {
			m, err := c.next()
			if err != nil {
				ce, ok := err.(*websocket.CloseError)
				if !ok || ce.Code != websocket.ClosePolicyViolation {
					t.Errorf("burst ended with %v, want close 1008", err)
				}
				break
			}
			switch {
			case m["type"] == "pong":
				pongs++
			case m["error"] == "rate_limited":
				limited++
			}
		}
		if pongs == 0 || pongs > 300 || limited == 0 {
			t.Errorf("%d pongs, %d rate_limited errors for %d messages", pongs, limited, sent)
		}
	})
	run("bad tokens", func(t *testing.T) {
		expired, _ := authtest.Mint(jwt.SigningMethodHS256, testSecret, auth.Claims{RegisteredClaims: auth.RegisteredClaims{
			Subject: "eve", ExpiresAt: auth.NewNumericDate(time.Now().Add(-time.Hour))}})
		none, _ := authtest.Mint(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, auth.Claims{RegisteredClaims: auth.RegisteredClaims{
			Subject: "eve", ExpiresAt: auth.NewNumericDate(time.Now().Add(time.Hour))}})
		for _, tok := range []string{expired, none, "a.b.c", "", strings.Repeat("e", 900), `"; DROP`} {
			c := th.dial(t, "/ws", nil)
			c.send(map[string]any{"type": "auth", "token": tok})
			if m := c.read(); m["success"] != false {
				t.Errorf("token %.20q accepted: %v", tok, m)
			}
			if code, _ := c.closeCode(); code != websocket.ClosePolicyViolation {
				t.Errorf("close %d, want 1008", code)
			}
		}
	})
	// A silent connection opens and says nothing while the others run:
	// closed at the auth timeout, not here; it must simply not disturb
	// anyone. (Dialled by this test, so that it lasts until the end.)
	th.dial(t, "/ws", nil)
	wg.Wait()
	close(stop)
	pubWG.Wait()
	eventually(t, "the good client to get the last alert", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got == last || goodErr != nil
	})
	good.ws.Close()
	<-goodDone
	if goodErr != nil {
		t.Fatal(goodErr)
	}
	// Still up.
	c := th.login(t, "/ws", "after")
	c.send(map[string]any{"type": "ping"})
	c.readType("pong")
}
