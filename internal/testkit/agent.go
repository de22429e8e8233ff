package testkit

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// AgentPackage is the import path of the agent's command, which
// [BuildAgent] compiles.
const AgentPackage = "github.com/floorhub/floorhub/cmd/agent"

// AnyPort is the listen address of an agent whose port the kernel picks;
// the agent prints the port it got in its URL line, where [StartAgent]
// reads it.
const AnyPort = "127.0.0.1:0"

// agentTimeout bounds each wait on the agent: its URL line after a start,
// its exit after SIGINT. A start takes well under a second; the rest is
// room for a loaded machine or an emulator.
const agentTimeout = 30 * time.Second

// agentBuild is one build of the agent, made once per test binary and
// shared by every test; [RunAgentTests] deletes it.
type agentBuild struct {
	once sync.Once
	dir  string // the temporary directory holding the binary "agent"
	err  error
}

// The agent's builds: as released ([BuildAgent]) and with the race
// detector ([BuildAgentRace]).
var releaseBuild, raceBuild agentBuild

// path builds the agent on the first call, with go build's flags and env
// added to the environment, and returns the binary's path.
func (b *agentBuild) path(t testing.TB, env []string, flags ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the agent's binary")
	}
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "floorhub-agent-")
		if err != nil {
			b.err = err
			return
		}
		b.dir = dir
		args := append(append([]string{"build", "-o", filepath.Join(dir, "agent")}, flags...), AgentPackage)
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), args...)
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return filepath.Join(b.dir, "agent")
}

// BuildAgent compiles the agent's real binary ([AgentPackage]) with
// cgo off, as the release is built, and returns its path. It builds once
// per test binary and every test shares the result; the package's TestMain
// is [RunAgentTests], which deletes it. The go command is the one of the
// toolchain running the test, and it builds for the GOOS and GOARCH of the
// environment, so under an emulator (see [EmulatorEnv]) for the emulated
// architecture; start the result with [StartAgent] or [Command]. BuildAgent
// skips the test under -short.
func BuildAgent(t testing.TB) string {
	t.Helper()
	return releaseBuild.path(t, []string{"CGO_ENABLED=0"})
}

// BuildAgentRace is [BuildAgent] with the race detector when the tests run
// with it ([RaceEnabled]): a data race that a test provokes in the agent
// then ends the agent with exit code 66, which [Agent.Stop] returns. The
// race detector needs cgo, so this build leaves cgo as the environment has
// it; without -race it is BuildAgent.
func BuildAgentRace(t testing.TB) string {
	t.Helper()
	if !RaceEnabled {
		return BuildAgent(t)
	}
	return raceBuild.path(t, nil, "-race")
}

// RunAgentTests is the TestMain of a package whose tests build the agent
// ([BuildAgent], [BuildAgentRace]): it runs the tests, deletes what they
// built once no test can use it any more, and exits with the tests' code.
//
//	func TestMain(m *testing.M) { testkit.RunAgentTests(m) }
func RunAgentTests(m *testing.M) {
	code := m.Run()
	for _, b := range []*agentBuild{&releaseBuild, &raceBuild} {
		if b.dir != "" {
			os.RemoveAll(b.dir)
		}
	}
	os.Exit(code)
}

// AgentPasswordHash runs `bin passwd` with password on its standard input
// (not a terminal, so it does not prompt) and returns the hash it prints,
// for a config's users. It fails the test when the command fails or prints
// anything but one hash.
func AgentPasswordHash(t testing.TB, bin, password string) string {
	t.Helper()
	cmd := Command(bin, "passwd")
	cmd.Stdin = strings.NewReader(password + "\n")
	out, err := cmd.Output()
	hash := strings.TrimSpace(string(out))
	if err != nil || hash == "" || strings.ContainsAny(hash, " \n") {
		t.Fatalf("agent passwd: %v, printed %q", err, out)
	}
	return hash
}

// WriteAgentConfig writes the agent's config file floorhub.yaml in dir
// and returns its path: data_dir is dir/data, listen is listen (often
// [AnyPort], or the Addr of an earlier run to start again on the same
// port), then body, which holds the rest of the YAML. Writing it again and
// sending SIGHUP reloads it. The file is 0600, as a config that holds
// password hashes is kept.
func WriteAgentConfig(t testing.TB, dir, listen, body string) string {
	t.Helper()
	path := filepath.Join(dir, "floorhub.yaml")
	cfg := "data_dir: " + filepath.Join(dir, "data") + "\nlisten: " + listen + "\n" + body
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// agentURLLine is the line the agent prints on standard output once it
// listens.
var agentURLLine = regexp.MustCompile(`^floorhub is running: dashboard (http://\S+)$`)

// Agent is one run of the agent's binary, started by [StartAgent]. Its
// fields are set before StartAgent returns and not changed afterwards.
type Agent struct {
	// Cmd is the running process: send it signals (SIGHUP reloads the
	// config), read its pid. Its ProcessState is set once Exited is
	// closed.
	Cmd *exec.Cmd
	// URL is the dashboard URL the agent printed,
	// http://localhost:port/?token=....
	URL string
	// Addr is where it listens: 127.0.0.1 and the URL's port ("" when the
	// URL has none).
	Addr string
	// Token is the bearer token in the URL.
	Token string
	// Ready is when the URL line was read: the agent serves from then on.
	Ready time.Time
	// Log is the agent's standard error, its log, as written so far.
	Log *Buffer

	exited chan struct{} // closed once Cmd.Wait has returned
}

// StartAgent runs bin with args in the working directory dir (the test's
// own when dir is "") and waits until it prints its URL line; it fails the
// test, with the agent's log, when the agent exits first or prints none
// within 30 s. At the end of the test the agent is stopped as by [Agent.Stop]
// unless it has exited already.
func StartAgent(t testing.TB, bin, dir string, args ...string) *Agent {
	t.Helper()
	a := &Agent{Cmd: Command(bin, args...), Log: &Buffer{}, exited: make(chan struct{})}
	a.Cmd.Dir = dir
	a.Cmd.Stderr = a.Log
	out, err := a.Cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// One goroutine owns the process: it reads standard output to its end
	// (Wait must not be called before that), hands on the URL line and
	// then waits.
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		found := false
		for sc.Scan() {
			if m := agentURLLine.FindStringSubmatch(sc.Text()); m != nil && !found {
				found = true
				urlc <- m[1]
			}
		}
		// A line too long for the scanner ends the scan: read on, so that
		// the agent never blocks writing.
		io.Copy(io.Discard, out)
		a.Cmd.Wait()
		close(a.exited)
	}()
	t.Cleanup(func() { a.Stop(t) })
	var line string
	select {
	case line = <-urlc:
	case <-a.exited:
		select {
		case line = <-urlc: // printed, then exited: the caller sees the exit
		default:
			t.Fatalf("agent exited before printing its URL:\n%s", a.Log)
		}
	case <-time.After(agentTimeout):
		t.Fatalf("no URL line within %v:\n%s", agentTimeout, a.Log)
	}
	a.Ready = time.Now()
	u, err := url.Parse(line)
	if err != nil {
		t.Fatalf("agent's URL %q: %v", line, err)
	}
	a.URL, a.Token = line, u.Query().Get("token")
	if u.Port() != "" {
		a.Addr = net.JoinHostPort("127.0.0.1", u.Port())
	}
	return a
}

// Exited is closed once the agent has exited.
func (a *Agent) Exited() <-chan struct{} { return a.exited }

// Kill ends the agent with SIGKILL, as kill -9 or a power cut would, and
// waits until it has exited.
func (a *Agent) Kill(t testing.TB) {
	t.Helper()
	if err := a.Cmd.Process.Kill(); err != nil {
		// It may have exited already, its wait not yet noticed.
		select {
		case <-a.exited:
		case <-time.After(agentTimeout):
			t.Fatalf("kill -9 the agent: %v", err)
		}
	}
	<-a.exited
}

// Stop ends the agent with SIGINT, a clean stop such as systemd's or a
// Ctrl-C, and returns its exit code. An agent that has not exited within
// 30 s is killed and the test fails (with the agent's log); an agent that
// had exited already is left as it is. Either way Stop returns once the
// process is gone.
func (a *Agent) Stop(t testing.TB) int {
	t.Helper()
	select {
	case <-a.exited:
		return a.Cmd.ProcessState.ExitCode()
	default:
	}
	_ = a.Cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-a.exited:
	case <-time.After(agentTimeout):
		_ = a.Cmd.Process.Kill()
		<-a.exited
		t.Errorf("agent did not stop within %v of SIGINT:\n%s", agentTimeout, a.Log)
	}
	return a.Cmd.ProcessState.ExitCode()
}
