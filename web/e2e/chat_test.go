package e2e

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestDashboardChat: two operators in two browsers chat through the page's
// own Socket.IO client. Alice starts a chat with Bob's user id and writes;
// Bob's page shows the chat live with an unread count, he opens it (the
// count goes) and answers; Alice's page shows the answer live.
func TestDashboardChat(t *testing.T) {
	bin, dir := prepare(t)
	users, hash := usersConfig(t, bin)
	users += `  - {name: bob, id: 9, role: operator, password_hash: "` + hash + `"}
`
	cfg := writeConfig(t, dir, anyPort, "", users)
	ag := startAgent(t, bin, cfg)
	origin := "http://" + ag.Addr

	a := newBrowser(t, origin, filepath.Join(dir, "alice"), 1280, 900)
	b := newBrowser(t, origin, filepath.Join(dir, "bob"), 800, 480) // a panel PC's screen
	for _, u := range []struct {
		b    *browser
		name string
	}{{a, "alice"}, {b, "bob"}} {
		u.b.run(t, chromedp.Navigate(origin+"/"))
		u.b.signIn(t, u.name, password)
		u.b.wait(t, u.name+"'s chat connected", 15*time.Second, `document.getElementById("chat").dataset.state === "live" && !document.getElementById("chat").hidden`)
	}

	a.run(t, chromedp.SendKeys(chromedp.CSS("#chatuid"), "9"))
	a.click(t, `#chatnew button`)
	a.wait(t, "the new chat open", 10*time.Second, `document.querySelector('#chatlist button[aria-pressed="true"]') && !document.getElementById("chatsend").hidden`)
	a.run(t, chromedp.SendKeys(chromedp.CSS("#chatmsg"), "line A runs warm, can you look?"))
	a.click(t, `#chatsend button`)
	a.wait(t, "alice's own message", 10*time.Second, `document.querySelector("#chatmsgs .msg.mine") && document.getElementById("chatmsgs").textContent.includes("line A runs warm")`)

	b.wait(t, "the chat with an unread count", 10*time.Second, `document.querySelector("#chatlist button .unread") && document.querySelector("#chatlist button .unread").textContent === "1" && document.querySelector("#chatlist button").textContent.includes("alice · 7")`)
	b.shot(t, "bob-unread")
	b.click(t, `#chatlist button`)
	b.wait(t, "alice's message, read", 10*time.Second, `document.getElementById("chatmsgs").textContent.includes("line A runs warm") && !document.querySelector("#chatlist .unread")`)
	b.run(t, chromedp.SendKeys(chromedp.CSS("#chatmsg"), "on my way"))
	b.click(t, `#chatsend button`)
	b.wait(t, "bob's own answer", 10*time.Second, `[...document.querySelectorAll("#chatmsgs .msg.mine")].some((m) => m.textContent.includes("on my way"))`)

	a.wait(t, "bob's answer", 10*time.Second, `[...document.querySelectorAll("#chatmsgs .msg:not(.mine)")].some((m) => m.textContent.includes("bob") && m.textContent.includes("on my way"))`)
	if e := eval[string](t, a, `document.getElementById("chaterr").textContent`); e != "" {
		t.Errorf("alice's chat shows an error: %q", e)
	}
	a.shot(t, "alice-answered")
	b.shot(t, "bob-answered")

	// The agent restarts: both panels reconnect by themselves, with the
	// chat still open, and the conversation goes on.
	ag.Stop(t)
	for _, p := range []*browser{a, b} {
		p.wait(t, "the chat down", 10*time.Second, `document.getElementById("chat").dataset.state === "down"`)
	}
	writeConfig(t, dir, ag.Addr, "", users)
	startAgent(t, bin, cfg)
	for _, p := range []*browser{a, b} {
		p.wait(t, "the chat back", 15*time.Second, `document.getElementById("chat").dataset.state === "live"`)
	}
	a.run(t, chromedp.SendKeys(chromedp.CSS("#chatmsg"), "thanks"))
	a.click(t, `#chatsend button`)
	b.wait(t, "alice's message after the restart", 10*time.Second, `[...document.querySelectorAll("#chatmsgs .msg:not(.mine)")].some((m) => m.textContent.includes("thanks")) && document.querySelectorAll("#chatmsgs .msg").length === 3 && !document.querySelector("#chatlist .unread")`)

	// A viewer gets no chat panel.
	v := newBrowser(t, origin, filepath.Join(dir, "viewer"), 800, 480)
	v.signInLive(t, "victor")
	if !eval[bool](t, v, `document.getElementById("chat").hidden`) {
		t.Errorf("a viewer sees the chat panel")
	}
}
