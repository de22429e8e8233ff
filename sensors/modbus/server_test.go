package modbus_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/floorhub/floorhub/internal/testkit"
)

// python is Debian's interpreter, which finds Debian's python3-pymodbus
// whatever python3 comes first on PATH.
const python = "/usr/bin/python3"

// server is testdata/server.py (pymodbus) running for one test.
type server struct {
	cmd  *exec.Cmd
	line string // the first line it printed
}

// startServer runs testdata/server.py with args and waits for its first
// line ("port N" or "ready"). It is killed when the test ends.
func startServer(t testing.TB, args ...string) *server {
	t.Helper()
	if err := exec.Command(python, "-c", "import pymodbus, serial_asyncio").Run(); err != nil {
		testkit.Missing(t, "python3-pymodbus is not installed (apt-get install python3-pymodbus)")
	}
	cmd := exec.Command(python, append([]string{"testdata/server.py"}, args...)...)
	cmd.Stderr = &testkit.Buffer{}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT) // a stopped process dies only once continued
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			first <- sc.Text()
		}
		close(first)
		for sc.Scan() {
		}
	}()
	select {
	case l, ok := <-first:
		if !ok {
			t.Fatalf("server.py %v exited: %s", args, cmd.Stderr)
		}
		s.line = l
	case <-time.After(20 * time.Second):
		t.Fatalf("server.py %v printed nothing in 20s: %s", args, cmd.Stderr)
	}
	return s
}

// stop freezes the server (SIGSTOP): its sockets and port stay open but
// nothing answers, as a hung device. resume lets it go on.
func (s *server) stop(t testing.TB) {
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
}

func (s *server) resume(t testing.TB) {
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

// tcpServer starts the server on loopback and returns its host:port.
func tcpServer(t testing.TB) (*server, string) {
	s := startServer(t, "tcp")
	port, ok := strings.CutPrefix(s.line, "port ")
	if !ok {
		t.Fatalf("server.py said %q", s.line)
	}
	return s, "127.0.0.1:" + port
}

// ptyPair starts socat with two linked pseudo-terminals, a null-modem
// cable between the client's end and the server's end, and returns their
// paths.
func ptyPair(t testing.TB) (client, srv string) {
	t.Helper()
	socat, err := exec.LookPath("socat")
	if err != nil {
		testkit.Missing(t, "socat is not installed (apt-get install socat)")
	}
	dir := t.TempDir()
	client, srv = filepath.Join(dir, "client"), filepath.Join(dir, "server")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, socat, "pty,raw,echo=0,link="+client, "pty,raw,echo=0,link="+srv)
	cmd.Stderr = &testkit.Buffer{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	testkit.Eventually(t, "socat's pseudo-terminals", 10*time.Second, func() bool { return exists(client) && exists(srv) })
	return client, srv
}

// relay joins two pseudo-terminals as one line: what one end writes
// reaches the other no sooner than charTime a byte after the line was last
// free (0: at once). While damage holds n > 0, the fourth byte (the first
// data byte) of the next n replies from y, each replyLen bytes long, is
// flipped. It stops with the test.
func relay(t testing.TB, x, y string, charTime time.Duration, damage *damage) {
	t.Helper()
	open := func(p string) *os.File {
		f, err := os.OpenFile(p, os.O_RDWR|syscall.O_NOCTTY, 0)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	fx, fy := open(x), open(y)
	var (
		mu   sync.Mutex
		free time.Time // when the line is next free
		wg   sync.WaitGroup
	)
	pace := func(dst io.Writer, src io.Reader, replies bool) {
		defer wg.Done()
		buf := make([]byte, 512)
		for {
			n, err := src.Read(buf)
			if err != nil {
				return
			}
			if replies && damage != nil {
				damage.apply(buf[:n])
			}
			if charTime > 0 {
				mu.Lock()
				start := time.Now()
				if free.After(start) {
					start = free
				}
				free = start.Add(time.Duration(n) * charTime)
				done := free
				mu.Unlock()
				// The bytes are on the wire until done: this paces a
				// simulated line, it does not wait for a condition.
				time.Sleep(time.Until(done))
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
	}
	wg.Add(2)
	go pace(fy, fx, false)
	go pace(fx, fy, true)
	t.Cleanup(func() {
		fx.Close()
		fy.Close()
		wg.Wait()
	})
}

// damage flips a byte in replies passing a relay.
type damage struct {
	mu       sync.Mutex
	replyLen int // bytes in one reply
	left     int // replies still to damage
	pos      int // bytes of the current reply seen
}

func (d *damage) arm(replies, replyLen int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.left, d.replyLen, d.pos = replies, replyLen, 0
}

func (d *damage) apply(b []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range b {
		if d.left == 0 {
			return
		}
		if d.pos == 3 {
			b[i] ^= 0x40
		}
		if d.pos++; d.pos == d.replyLen {
			d.pos = 0
			d.left--
		}
	}
}

// proxy passes TCP connections on to a server and can drop them all, as a
// server that closes idle connections does.
type proxy struct {
	addr  string
	mu    sync.Mutex
	conns []net.Conn
	n     int
}

func newProxy(t testing.TB, to string) *proxy {
	ln, addr := testkit.ListenAddr(t)
	p := &proxy{addr: addr}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		p.drop()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.n++
			p.mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(s, c); s.Close() }()
			go func() { defer wg.Done(); io.Copy(c, s); c.Close() }()
		}
	}()
	return p
}

// drop closes every connection passed on so far.
func (p *proxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// accepted is the number of connections the proxy took.
func (p *proxy) accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}
