package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// pageBudget is the dashboard's weight budget in bytes (README, "The
// dashboard"): the page is embedded in the agent, whose arm64 binary must
// stay under 8 MiB, and a kiosk on a slow link loads it whole.
const pageBudget = 100 * 1024

func get(t *testing.T, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Result()
}

// TestPageBudget fails when the served page outgrows its budget.
func TestPageBudget(t *testing.T) {
	res := get(t, "/")
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || len(body) == 0 {
		t.Fatalf("GET /: %d, %d bytes", res.StatusCode, len(body))
	}
	if len(body) > pageBudget {
		t.Fatalf("the page is %d bytes, over its budget of %d", len(body), pageBudget)
	}
	t.Logf("page: %d bytes of %d", len(body), pageBudget)
}

// TestPageOffline fails when the page names any external URL: a gateway's
// screen must work with no internet (no CDN, no web fonts).
func TestPageOffline(t *testing.T) {
	res := get(t, "/")
	body, _ := io.ReadAll(res.Body)
	low := strings.ToLower(string(body))
	for _, s := range []string{"http://", "https://", "//cdn", "@import", "url(", "@font-face"} {
		if i := strings.Index(low, s); i >= 0 {
			t.Errorf("the page contains %q at byte %d: %q", s, i, low[max(0, i-40):min(len(low), i+40)])
		}
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
}

func TestNotFound(t *testing.T) {
	if res := get(t, "/other"); res.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /other: %d", res.StatusCode)
	}
}

// Another site's page cannot frame the dashboard and have an operator
// click its Acknowledge button unseen (clickjacking): a sibling host of
// the same site gets the SameSite=Strict session cookie sent to the frame.
// default-src does not cover frame-ancestors.
func TestPageNotFramed(t *testing.T) {
	csp := get(t, "/").Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "frame-ancestors 'self'") {
		t.Fatalf("Content-Security-Policy %q: want frame-ancestors 'self'", csp)
	}
}
