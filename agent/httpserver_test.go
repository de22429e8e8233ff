package agent

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A request whose headers run past httpMaxHeader is refused (431), not
// read whole: under MemoryMax=256M (systemd/floorhub.service) net/http's
// default of 1 MiB a request let a few hundred connections, each sending a
// long header within ReadHeaderTimeout, get the agent killed.
func TestHTTPHeadersCapped(t *testing.T) {
	r := start(t, "listen: "+anyPort+"\n")
	get := func(header int) int {
		req, err := http.NewRequest("GET", "http://"+r.addr+"/healthz", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Pad", strings.Repeat("a", header))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(4096); code != http.StatusOK && code != http.StatusServiceUnavailable {
		t.Fatalf("a 4 KiB header: %d", code)
	}
	if code := get(64 << 10); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a 64 KiB header: %d, want 431", code)
	}
}

// An idle keep-alive connection is closed in the end: without IdleTimeout
// (nor ReadTimeout) net/http waits for its next request forever.
func TestHTTPIdleConnectionsEnd(t *testing.T) {
	srv := newHTTPServer(http.NotFoundHandler(), slog.Default())
	if srv.IdleTimeout <= 0 || srv.IdleTimeout > 5*time.Minute {
		t.Fatalf("IdleTimeout %v, want (0, 5m]", srv.IdleTimeout)
	}
	if srv.ReadHeaderTimeout <= 0 {
		t.Fatalf("ReadHeaderTimeout %v", srv.ReadHeaderTimeout)
	}
}
