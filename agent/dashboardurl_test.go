package agent

import (
	"net"
	"strings"
	"testing"

	"github.com/floorhub/floorhub/auth"
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
