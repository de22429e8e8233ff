package chat

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/hub/engineio"
	"github.com/floorhub/floorhub/hub/socketio"
	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/gorilla/websocket"
)

// memSessions is how many sessions TestSessionMemory opens.
const memSessions = 500

// maxHeapPerSession is TestSessionMemory's bound on the live heap of one
// idle session, in bytes (without -race, which inflates memory): about
// twice what it measures (2.3 KB; 2.9 KB in a process's first run), so
// that only a real regression trips it.
const maxHeapPerSession = 6 << 10

// Environment of the helper process that holds TestSessionMemory's clients.
const (
	memURLEnv   = "FLOORHUB_CHATMEM_URL"   // the server's http:// address
	memTokenEnv = "FLOORHUB_CHATMEM_TOKEN" // user 2's token
	memNEnv     = "FLOORHUB_CHATMEM_N"     // how many sessions
)

// memProfileEnv, when set, names a file TestSessionMemory writes the heap
// profile of the open sessions to (MemProfileRate 64), to see what holds
// the bytes: go tool pprof -sample_index=inuse_space.
const memProfileEnv = "FLOORHUB_CHATMEM_PROFILE"

// The live heap one idle chat session holds on the server: memSessions
// Socket.IO clients over WebSocket (as cmd/siobench's, in a helper process
// so that their memory is not counted) join the chat as one user, and the
// heap after a GC grows by what the sessions hold. Logged (with the
// goroutine stacks, StackInuse), and bounded when not under -race.
func TestSessionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 500 sessions")
	}
	if p := os.Getenv(memProfileEnv); p != "" {
		runtime.MemProfileRate = 64
		defer func() { runtime.MemProfileRate = 512 * 1024 }()
	}
	s, st := newService(t, Options{MaxConnsPerUser: memSessions, SocketIO: socketio.Options{
		Engine: engineio.Options{MaxSessions: memSessions + 10, MaxSessionsPerAddr: -1}}})
	if _, _, err := st.CreateChat([]int64{1, 2}, time.Now()); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, s)
	tok, err := auth.Mint(secret, "bob", time.Hour, auth.Claims{UserID: 2})
	if err != nil {
		t.Fatal(err)
	}

	before := liveHeap()
	cmd := testkit.Reexec(t, "-test.run=^TestHelperChatClients$")
	cmd.Env = append(os.Environ(), memURLEnv+"="+srv.URL, memTokenEnv+"="+tok, memNEnv+"="+strconv.Itoa(memSessions))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	read := make(chan struct{}) // closed when the helper's stdout is
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "ready") || strings.HasPrefix(line, "failed") {
				select {
				case ready <- line:
				default:
				}
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	defer func() {
		stdin.Close() // the helper closes its clients and exits
		kill := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
		<-read // before Wait, which closes the pipe
		cmd.Wait()
		kill.Stop()
	}()
	select {
	case line := <-ready:
		if line != "ready" {
			t.Fatalf("the clients: %q", line)
		}
	case <-read:
		t.Fatal("the clients' process ended before they connected")
	case <-time.After(2 * time.Minute):
		t.Fatal("the clients did not connect within 2 minutes")
	}
	testkit.Eventually(t, "every session in the chat", 30*time.Second, func() bool {
		return len(s.sockets([]int64{2})) == memSessions
	})
	after := liveHeap()
	heap := float64(after.HeapAlloc-before.HeapAlloc) / memSessions
	stack := float64(after.StackInuse-before.StackInuse) / memSessions
	t.Logf("%d idle sessions: live heap %.0f B/session, goroutine stacks %.0f B/session (race %v)", memSessions, heap, stack, testkit.RaceEnabled)
	if p := os.Getenv(memProfileEnv); p != "" {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if !testkit.RaceEnabled && heap > maxHeapPerSession {
		t.Errorf("live heap %.0f B/session, want at most %d", heap, maxHeapPerSession)
	}
}

// liveHeap is the memory statistics just after a full collection.
func liveHeap() runtime.MemStats {
	runtime.GC()
	runtime.GC() // what the first one's finalizers let go
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

// TestHelperChatClients is TestSessionMemory's helper process: it opens
// the sessions, prints "ready" once every one has joined, and holds them
// until its stdin closes.
func TestHelperChatClients(t *testing.T) {
	base := os.Getenv(memURLEnv)
	if base == "" {
		t.Skip("the helper process of TestSessionMemory")
	}
	n, _ := strconv.Atoi(os.Getenv(memNEnv))
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Scheme, u.Path = "ws", "/socket.io/"
	u.RawQuery = "EIO=4&transport=websocket&userId=2"
	auth, _ := json.Marshal(map[string]string{"token": os.Getenv(memTokenEnv)})
	conns := make([]*websocket.Conn, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	slots := make(chan struct{}, 16)
	for i := range conns {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			ws, err := joinChat(u.String(), auth)
			if err != nil {
				errs <- err
				return
			}
			conns[i] = ws
		}()
	}
	wg.Wait()
	defer func() {
		for _, ws := range conns {
			if ws != nil {
				ws.Close()
			}
		}
	}()
	select {
	case err := <-errs:
		fmt.Printf("failed: %v\n", err)
		return
	default:
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
}

// joinChat opens a WebSocket session at u and joins the namespace "/" with
// the auth payload; it returns once the server answered the CONNECT.
func joinChat(u string, auth []byte) (*websocket.Conn, error) {
	ws, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		return nil, err
	}
	ws.SetReadDeadline(time.Now().Add(time.Minute))
	if _, b, err := ws.ReadMessage(); err != nil || len(b) == 0 || b[0] != '0' {
		ws.Close()
		return nil, fmt.Errorf("the open packet: %q %v", b, err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, append([]byte("40"), auth...)); err != nil {
		ws.Close()
		return nil, err
	}
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			ws.Close()
			return nil, err
		}
		switch {
		case strings.HasPrefix(string(b), "40"):
			return ws, nil
		case strings.HasPrefix(string(b), "44"):
			ws.Close()
			return nil, fmt.Errorf("refused: %s", b)
		}
	}
}
