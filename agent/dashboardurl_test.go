package agent

import (
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/auth/session"
)

// The URL the agent prints at start (to the journal, under systemd) holds
// a fresh 24-hour token only where no users are configured, as the way in
// on a first start. With users, people log in: a token there would be a
// way past their passwords (the role of its "operator", else admin) for
// whoever reads the journal.
func TestDashboardURLTokenOnlyWithoutUsers(t *testing.T) {
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8000}
	r := start(t, "listen: "+anyPort+"\n")
	if u := r.a.dashboardURL(addr); !strings.Contains(u, "/?token=") {
		t.Errorf("no users: %q, want a token", u)
	}
	r = start(t, "listen: "+anyPort+`
users:
  - {name: alice, id: 7, role: operator, password_hash: "`+testHash(t)+`"}
`)
	if u := r.a.dashboardURL(addr); u != "http://localhost:8000/" {
		t.Errorf("with users: %q, want http://localhost:8000/ (no token)", u)
	}
}

func testHash(t *testing.T) string {
	t.Helper()
	h, err := auth.HashPasswordRounds([]byte("pw"), 100000) // the least the config takes
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Logout takes the origins the hub trusts with its cookie
// (hub.allowed_origins, by name), not only the request's own host: behind
// a proxy that rewrites Host, the dashboard's own Log out would otherwise
// be refused, and its session would live on.
func TestLogoutFromAllowedOrigin(t *testing.T) {
	r := start(t, "listen: "+anyPort+`
hub:
  allowed_origins: ["https://dash.example.com"]
users:
  - {name: alice, id: 7, role: operator, password_hash: "`+testHash(t)+`"}
`)
	for _, c := range []struct {
		origin string
		want   int
	}{
		{"https://dash.example.com", http.StatusNoContent},
		{"https://evil.example", http.StatusForbidden},
	} {
		req, err := http.NewRequest("POST", "http://"+r.addr+session.LogoutPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", c.origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("logout from %s: %d, want %d", c.origin, resp.StatusCode, c.want)
		}
	}
}
