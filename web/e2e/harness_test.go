package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/floorhub/floorhub/internal/testkit"
)

// screenshotsEnv names the directory where the tests leave their
// screenshots; scripts/test.sh points it at artifacts/screenshots.
const screenshotsEnv = "FLOORHUB_SCREENSHOTS"

// prepare starts a test: it builds the agent (once), checks that Chromium
// is here, and returns the binary and a fresh directory for the test's
// config, the agent's data and the browsers' profiles.
func prepare(t *testing.T) (bin, dir string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the agent and a browser")
	}
	if os.Getenv(testkit.EmulatorEnv) != "" {
		t.Skip("the browser runs on the host: nothing here is specific to the gateway's CPU")
	}
	bin = testkit.BuildAgent(t)
	chromium(t)
	return bin, t.TempDir()
}

// TestMain deletes the agent the tests built once they have run.
func TestMain(m *testing.M) { testkit.RunAgentTests(m) }

// anyPort is the listen address of an agent's first start: the kernel
// picks the port, which the agent prints in its URL.
const anyPort = testkit.AnyPort

// writeConfig writes the agent's config in dir and returns its path: two
// simulated devices read five times a second, a critical alert that is
// active from the first reading on, and hub settings (YAML flow mapping
// entries) and top-level keys added.
func writeConfig(t *testing.T, dir, addr, hub, extra string) string {
	t.Helper()
	return testkit.WriteAgentConfig(t, dir, addr, fmt.Sprintf(`store: {commit_interval: 200ms}
auth: {leeway: 1s}
hub: {connects_per_minute: -1%s}
devices:
  - {id: 1, name: press line A, driver: sim-env, interval: 200ms}
  - {id: 2, name: oven probe, driver: sim-hot, interval: 250ms}
rules:
  - {name: line_warm, device_ids: [1], metric: temperature, above: -100, severity: critical, title: Line A warm, message: the line runs warm}
%s`, hub, extra))
}

// startAgent runs the binary with config and waits for its URL line; it is
// stopped at the test's end.
func startAgent(t *testing.T, bin, config string) *testkit.Agent {
	t.Helper()
	return testkit.StartAgent(t, bin, "", "-config", config)
}

// browser is one headless Chromium with its own profile directory.
type browser struct {
	ctx    context.Context
	origin string
	close  func() // closes the browser gracefully (also done at the test's end)
}

// chromium returns the path of Debian's chromium, or marks the part missing.
func chromium(t *testing.T) string {
	for _, p := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	testkit.Missing(t, "Debian's chromium is not installed (apt-get install chromium)")
	return ""
}

// newBrowser starts Chromium with a window of w×h and the profile in
// profile (cookies persist there, as in a kiosk's), stopped at the test's end.
func newBrowser(t *testing.T, origin, profile string, w, h int) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // tests may run as root, where Chromium's sandbox refuses to start
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(w, h),
		chromedp.UserDataDir(profile),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	var once sync.Once
	stop := func() {
		once.Do(func() {
			// Gracefully, as a kiosk browser quits: Chromium writes its
			// cookie jar to the profile then.
			cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
			defer ccancel()
			_ = chromedp.Cancel(cctx)
			cancel()
			acancel()
		})
	}
	t.Cleanup(stop)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(w), int64(h))); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return &browser{ctx: ctx, origin: origin, close: stop}
}

// run runs actions with a deadline.
func (b *browser) run(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("chromium: %v", err)
	}
}

// eval evaluates a JavaScript expression in b's page.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("chromium: evaluating %s: %v", expr, err)
	}
	return v
}

// click clicks the first element matching the CSS selector sel.
func (b *browser) click(t *testing.T, sel string) {
	t.Helper()
	b.run(t, chromedp.Click(chromedp.CSS(sel)))
}

// wait waits until the JavaScript expression is true.
func (b *browser) wait(t *testing.T, what string, d time.Duration, expr string) {
	t.Helper()
	var err error
	ok := testkit.WaitTrue(d, func() bool {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer cancel()
		var v bool
		v, err = chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		return err == nil && v
	})
	if !ok {
		b.shot(t, "failed-"+strings.ReplaceAll(what, " ", "-"))
		state, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.getElementById("conn").dataset.state + ": " + document.body.innerText.slice(0, 600)`))
		t.Fatalf("timed out after %v waiting for %s (%s; last error %v); page: %s", d, what, expr, err, state)
	}
}

// openWithToken loads the page with the agent's bearer token the way the
// page keeps one (this tab's sessionStorage), never in the URL.
func (b *browser) openWithToken(t *testing.T, token string) {
	t.Helper()
	js, _ := json.Marshal(token)
	b.run(t, chromedp.Navigate(b.origin+"/"),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[any](`sessionStorage.setItem("floorhub.token", `+string(js)+`)`)(ctx, tg)
			return err
		}),
		chromedp.Reload())
}

// signedOut is the page's state on the sign-in screen: the connection's
// state, the retry it has scheduled, the screen's message and the bearer
// token it keeps ("" for none).
type signedOut struct{ Conn, Retry, Why, Token string }

// signInScreen waits until the page has gone to the sign-in screen with the
// app hidden, as it does when its token or session ends, and reads its
// state there.
func (b *browser) signInScreen(t *testing.T) signedOut {
	t.Helper()
	b.wait(t, "the sign-in screen", 15*time.Second, `!document.getElementById("login").hidden && document.getElementById("app").hidden`)
	return eval[signedOut](t, b, `({Conn: document.getElementById("conn").dataset.state, Retry: document.body.dataset.retry || "", Why: document.getElementById("loginerr").textContent, Token: sessionStorage.getItem("floorhub.token") || ""})`)
}

// shot saves a screenshot of the whole page as <name>.png in the
// artifacts directory.
func (b *browser) shot(t *testing.T, name string) {
	t.Helper()
	dir := os.Getenv(screenshotsEnv)
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "floorhub-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("screenshots: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(dir, t.Name()+"-"+name+".png")
	path = filepath.Join(dir, strings.ReplaceAll(strings.TrimPrefix(path, dir+"/"), "/", "_"))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Errorf("screenshot: %v", err)
	}
	t.Logf("screenshot %s", path)
}

// live is the expression true when the page is connected and authenticated.
const live = `document.getElementById("conn").dataset.state === "live"`

// deviceJS is an expression reading device id's card.
func deviceJS(id int, rest string) string {
	return fmt.Sprintf(`document.querySelector('.device[data-id="%d"]')%s`, id, rest)
}
