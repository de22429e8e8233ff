package session

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/internal/testkit"
)

func TestLimitKey(t *testing.T) {
	for _, tc := range []struct{ remote, want string }{
		{"192.0.2.7:4711", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:1", "192.0.2.7"},
		{"[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2::1]:1", "2001:db8:1:2::/64"}, // same /64, same bucket
		{"[fe80::1%eth0]:1", "fe80::/64"},
		{"pipe", "pipe"}, // not an IP: as it is
	} {
		if got := limitKey(tc.remote); got != tc.want {
			t.Errorf("limitKey(%q) = %q, want %q", tc.remote, got, tc.want)
		}
	}
}

// Once maxAddrs addresses are tracked within a minute, a new address
// evicts the least recently seen one instead of being refused.
func TestLimiterEvictsOldest(t *testing.T) {
	clk := testkit.NewClock(time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC))
	l := limiter{perMinute: 2, now: clk.Now}
	for i := range maxAddrs {
		if ok, _ := l.allow("a" + strconv.Itoa(i)); !ok {
			t.Fatalf("address %d refused", i)
		}
		clk.Advance(time.Millisecond) // a0 is the oldest
	}
	l.allow("a1") // a1 seen again: a2 is now the oldest but a0
	if ok, _ := l.allow("new"); !ok {
		t.Fatal("a new address refused while the table is full")
	}
	if len(l.buckets) != maxAddrs || l.buckets["a0"] != nil || l.buckets["a1"] == nil || l.buckets["new"] == nil {
		t.Fatalf("after one eviction: %d tracked, a0 %v, a1 %v", len(l.buckets), l.buckets["a0"], l.buckets["a1"])
	}
	if ok, _ := l.allow("newer"); !ok || l.buckets["a2"] != nil || l.buckets["a1"] == nil {
		t.Fatal("the second eviction did not take the least recently seen address")
	}
}

// At most MaxChecks passwords are checked at once, over all addresses;
// a login beyond is answered 429 rate_limited with Retry-After at once.
func TestLoginChecksCapped(t *testing.T) {
	h, err := auth.HashPasswordRounds([]byte("pw"), 10)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Open(Options{Dir: t.TempDir(), MaxChecks: 2, LoginsPerMinute: 100, Logger: slog.New(slog.DiscardHandler)},
		[]User{{Name: "alice", ID: 1, Role: auth.RoleViewer, PasswordHash: h}})
	if err != nil {
		t.Fatal(err)
	}
	login := func(remote string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", LoginPath, strings.NewReader(`{"user":"alice","password":"pw"}`))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = remote
		w := httptest.NewRecorder()
		m.ServeLogin(w, req)
		return w
	}
	m.checks <- struct{}{} // two checks running (held by the test)
	m.checks <- struct{}{}
	for _, remote := range []string{"192.0.2.1:1", "192.0.2.2:1", "[2001:db8::1]:1"} {
		w := login(remote)
		if w.Code != http.StatusTooManyRequests || !strings.Contains(w.Body.String(), `"rate_limited"`) ||
			w.Header().Get("Retry-After") != "1" || w.Header().Get("Set-Cookie") != "" {
			t.Fatalf("login from %s with the checks busy: %d %q %v", remote, w.Code, w.Body, w.Header())
		}
	}
	<-m.checks // one ends: the next login is checked
	if w := login("192.0.2.1:1"); w.Code != http.StatusOK {
		t.Fatalf("login with a check free: %d %q", w.Code, w.Body)
	}
	if len(m.checks) != 1 {
		t.Fatalf("%d slots held after the login, want the test's 1", len(m.checks))
	}
}
