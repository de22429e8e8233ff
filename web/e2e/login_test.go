package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/floorhub/floorhub/auth/session"
	"github.com/floorhub/floorhub/internal/testkit"
)

// password is every test user's password; [usersConfig] has its hash.
const password = "correct horse"

// usersConfig returns the config's users, an operator and a viewer with
// [password], and the hash of password it gives them (from `agent passwd`).
func usersConfig(t *testing.T, bin string) (users, hash string) {
	t.Helper()
	hash = testkit.AgentPasswordHash(t, bin, password)
	return `users:
  - {name: alice, id: 7, role: operator, password_hash: "` + hash + `"}
  - {name: victor, id: 8, role: viewer, password_hash: "` + hash + `"}
`, hash
}

// signIn fills the sign-in form of the page loaded in b.
func (b *browser) signIn(t *testing.T, user, password string) {
	t.Helper()
	b.wait(t, "the sign-in screen", 15*time.Second, `!document.getElementById("login").hidden`)
	b.run(t, chromedp.SendKeys(chromedp.CSS("#lu"), user), chromedp.SendKeys(chromedp.CSS("#lp"), password))
	b.click(t, `#login button[type=submit]`)
}

// signInLive loads the page, signs in as user with [password] and waits
// for the live state.
func (b *browser) signInLive(t *testing.T, user string) {
	t.Helper()
	b.run(t, chromedp.Navigate(b.origin+"/"))
	b.signIn(t, user, password)
	b.wait(t, "the live state", 15*time.Second, live)
}

// TestDashboardLogin: sign in with a password, live values with names, and
// a kiosk whose browser restarts (a new process on the same profile, so the
// same cookie jar) comes back to the live screen with no one at it.
func TestDashboardLogin(t *testing.T) {
	bin, dir := prepare(t)
	users, _ := usersConfig(t, bin)
	cfg := writeConfig(t, dir, anyPort, "", users)
	origin := "http://" + startAgent(t, bin, cfg).Addr
	profile := filepath.Join(dir, "kiosk")

	a := newBrowser(t, origin, profile, 1280, 900)
	a.run(t, chromedp.Navigate(origin+"/"))
	a.signIn(t, "alice", "wrong")
	a.wait(t, "the refusal", 10*time.Second, `document.getElementById("loginerr").textContent.includes("wrong user or password")`)
	eval[any](t, a, `document.getElementById("lu").value = document.getElementById("lp").value = ""`)
	a.signIn(t, "alice", password)
	a.wait(t, "the live state", 15*time.Second, live)
	a.wait(t, "device 1's name", 10*time.Second, deviceJS(1, `.querySelector(".name").textContent === "press line A"`))
	a.wait(t, "the user and role", 5*time.Second, `document.getElementById("who").textContent === "alice (operator)"`)
	if u := eval[string](t, a, `location.href`); strings.Contains(u, "token") {
		t.Errorf("a token in the URL after sign-in: %s", u)
	}
	a.shot(t, "signed-in")
	a.close()

	// The kiosk's browser restarts on the same profile.
	k := newBrowser(t, origin, profile, 1280, 900)
	k.run(t, chromedp.Navigate(origin+"/"))
	k.wait(t, "the live screen after the browser restarted", 15*time.Second, live)
	k.wait(t, "named cards", 10*time.Second, deviceJS(1, `.querySelector(".name").textContent === "press line A"`))
	k.shot(t, "kiosk-restarted")

	// A viewer reads, and gets no Acknowledge button.
	v := newBrowser(t, origin, filepath.Join(dir, "viewer"), 1280, 900)
	v.signInLive(t, "victor")
	v.wait(t, "the user and role", 5*time.Second, `document.getElementById("who").textContent === "victor (viewer)"`)
	v.wait(t, "the active alert", 10*time.Second, `document.querySelector('#alertlist .alert[data-state="active"]')`)
	v.wait(t, "a temperature with its unit", 10*time.Second, deviceJS(1, `.querySelector('tr[data-metric="temperature"] td.v').textContent.includes("°C")`))
	if n := eval[int](t, v, `document.querySelectorAll("#alertlist .ackb").length`); n != 0 {
		t.Errorf("a viewer sees %d Acknowledge buttons", n)
	}
	v.shot(t, "viewer")
}

// TestDashboardSessionRevoked: an open page whose session ends (here its
// user is removed from the config, which a SIGHUP reload applies) goes to
// the sign-in screen and stops reconnecting.
func TestDashboardSessionRevoked(t *testing.T) {
	bin, dir := prepare(t)
	users, hash := usersConfig(t, bin)
	cfg := writeConfig(t, dir, anyPort, "", users)
	ag := startAgent(t, bin, cfg)

	a := newBrowser(t, "http://"+ag.Addr, filepath.Join(dir, "profile"), 1280, 900)
	a.signInLive(t, "alice")

	writeConfig(t, dir, anyPort, "", "users:\n  - {name: victor, id: 8, role: viewer, password_hash: \""+hash+"\"}\n")
	if err := ag.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	st := a.signInScreen(t)
	if st.Conn != "login" || st.Retry != "" || !strings.Contains(st.Why, "expired") {
		t.Errorf("after the session ended: %+v, want the login state saying so, no retry scheduled", st)
	}
	a.shot(t, "session-revoked")
}

// TestDashboardSessionExpired: a kiosk browser that finds its session
// expired (after the agent restarted) shows the sign-in screen rather than
// retrying. The shortest hub.session_ttl is a minute, renewed by every use,
// so rather than leave the session unused that long the test ages it in
// the agent's sessions file while the agent is stopped.
func TestDashboardSessionExpired(t *testing.T) {
	bin, dir := prepare(t)
	users, _ := usersConfig(t, bin)
	cfg := writeConfig(t, dir, anyPort, ", session_ttl: 1m", users)
	ag := startAgent(t, bin, cfg)
	origin := "http://" + ag.Addr
	profile := filepath.Join(dir, "kiosk")

	a := newBrowser(t, origin, profile, 1280, 900)
	a.signInLive(t, "alice")
	a.close()
	ag.Stop(t)

	path := filepath.Join(dir, "data", "sessions.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the agent's sessions: %v", err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if n := expire(doc, time.Now().Add(-time.Hour)); n != 1 {
		t.Fatalf("%s: %d sessions, want alice's one: %s", path, n, raw)
	}
	if raw, err = json.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}

	writeConfig(t, dir, ag.Addr, ", session_ttl: 1m", users)
	startAgent(t, bin, cfg)
	k := newBrowser(t, origin, profile, 1280, 900)
	k.run(t, chromedp.Navigate(origin+"/"))
	st := k.signInScreen(t)
	if st.Conn != "login" || st.Retry != "" {
		t.Errorf("with an expired session: %+v, want the login state, no retry scheduled", st)
	}
	t.Logf("the sign-in screen says %q", st.Why)
	k.shot(t, "session-expired")
}

// expire sets every "expires" and "used" time in a decoded JSON document
// to at and returns how many sessions (objects with "expires") it found.
func expire(v any, at time.Time) int {
	n := 0
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v["expires"]; ok {
			v["expires"] = at.UTC().Format(time.RFC3339Nano)
			if _, ok := v["used"]; ok {
				v["used"] = at.Add(-time.Minute).UTC().Format(time.RFC3339Nano)
			}
			n++
		}
		for _, e := range v {
			n += expire(e, at)
		}
	case []any:
		for _, e := range v {
			n += expire(e, at)
		}
	}
	return n
}

// TestDashboardLogoutFromAnotherSite: another site's page that posts a form
// to /api/v1/logout (no CORS preflight for that) does not sign the kiosk
// out: the gateway refuses it (403, a page the browser shows) and the
// cookie stays. The dashboard's own Log out button still works.
func TestDashboardLogoutFromAnotherSite(t *testing.T) {
	bin, dir := prepare(t)
	users, _ := usersConfig(t, bin)
	cfg := writeConfig(t, dir, anyPort, "", users)
	origin := "http://" + startAgent(t, bin, cfg).Addr
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(`<form method=post action="` + origin + session.LogoutPath + `"></form><script>document.forms[0].submit()</script>`))
	}))
	t.Cleanup(evil.Close)
	// localhost and 127.0.0.1 are different sites to the browser.
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)

	a := newBrowser(t, origin, filepath.Join(dir, "kiosk"), 1280, 900)
	a.signInLive(t, "alice")
	a.run(t, chromedp.Navigate(evilURL+"/"))
	a.wait(t, "the gateway's answer to the foreign form", 15*time.Second, `location.href === "`+origin+session.LogoutPath+`"`)
	if body := eval[string](t, a, `document.body.innerText`); !strings.Contains(body, "forbidden") {
		t.Errorf("the foreign logout was answered %q, want 403 forbidden", body)
	}
	a.run(t, chromedp.Navigate(origin+"/"))
	a.wait(t, "the live screen, still signed in", 15*time.Second, live)

	a.click(t, "#logout")
	a.signInScreen(t)
	a.run(t, chromedp.Reload())
	a.signInScreen(t) // the session ended on the gateway, not only in the page
}
