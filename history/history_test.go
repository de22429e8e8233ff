package history

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/store"
)

var (
	secret = []byte("0123456789abcdef0123456789abcdef")
	t0     = time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
)

type server struct {
	url string
	st  *store.Store
}

// serve runs the handler on a real socket over a real store holding an
// hour of readings of devices 1 and 2, one a second; temperature of device
// 1 at second i is i%60.
func serve(t *testing.T, edit ...func(*Options)) *server {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "h.db"), &store.Options{CommitInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for i := range 3600 {
		for dev := 1; dev <= 2; dev++ {
			r := store.Record{Kind: store.KindTelemetry, DeviceID: dev, TS: t0.Add(time.Duration(i) * time.Second), ClockSynced: true,
				Metrics: []store.Metric{{Name: "temperature", Value: float64(i%60) + float64(dev-1)*100, Unit: "°C"}}}
			if _, err := st.Append(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.VerifierOptions{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Verifier: v, Source: st}
	for _, e := range edit {
		e(&o)
	}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(Path, h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &server{url: srv.URL, st: st}
}

func token(t *testing.T, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.Mint(secret, "alice", ttl, auth.Claims{})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// get requests the history with query and token (none when ""), and
// decodes the JSON answer.
func (s *server) get(t *testing.T, method, query, tok string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+Path+"?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q: %s", ct, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return resp.StatusCode, m, resp.Header
}

func q(kv ...string) string {
	v := url.Values{}
	for i := 0; i < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v.Encode()
}

func TestHistory(t *testing.T) {
	s := serve(t)
	tok := token(t, time.Hour)
	code, m, _ := s.get(t, "GET", q("device_id", "1", "metric", "temperature",
		"from", "2026-12-01T08:00:00Z", "to", "2026-12-01T09:00:00Z", "points", "60"), tok)
	if code != 200 {
		t.Fatalf("%d %v", code, m)
	}
	if m["device_id"] != 1.0 || m["metric"] != "temperature" || m["unit"] != "°C" || m["points"] != 60.0 ||
		m["step_seconds"] != 60.0 || m["readings"] != 3600.0 || m["from"] != "2026-12-01T08:00:00Z" || m["to"] != "2026-12-01T09:00:00Z" {
		t.Fatalf("answer: %v", m)
	}
	bs := m["buckets"].([]any)
	if len(bs) != 60 {
		t.Fatalf("%d buckets", len(bs))
	}
	for i, b := range bs {
		b := b.(map[string]any)
		start := t0.Add(time.Duration(i) * time.Minute).Format(time.RFC3339)
		if b["start"] != start || b["min"] != 0.0 || b["max"] != 59.0 || b["avg"] != 29.5 || b["count"] != 60.0 {
			t.Fatalf("bucket %d: %v", i, b)
		}
	}
	// Device 2, a window partly without data: only buckets with readings.
	code, m, _ = s.get(t, "GET", q("device_id", "2", "metric", "temperature",
		"from", "2026-12-01T08:59:00+00:00", "to", "2026-12-01T10:00:00Z", "points", "61"), tok)
	if bs := m["buckets"].([]any); code != 200 || len(bs) != 1 || bs[0].(map[string]any)["min"] != 100.0 || m["readings"] != 60.0 {
		t.Fatalf("%d %v", code, m)
	}
	// points defaults to DefaultPoints.
	code, m, _ = s.get(t, "GET", q("device_id", "1", "metric", "temperature", "from", "2026-12-01T08:00:00Z", "to", "2026-12-01T09:00:00Z"), tok)
	if code != 200 || m["points"] != float64(DefaultPoints) {
		t.Fatalf("%d %v", code, m)
	}
	// No such metric: an empty chart, not an error.
	code, m, _ = s.get(t, "GET", q("device_id", "1", "metric", "pressure", "from", "2026-12-01T08:00:00Z", "to", "2026-12-01T09:00:00Z"), tok)
	if code != 200 || len(m["buckets"].([]any)) != 0 || m["unit"] != "" {
		t.Fatalf("%d %v", code, m)
	}
}

func TestHistoryRefusals(t *testing.T) {
	s := serve(t, func(o *Options) { o.MaxRange = 48 * time.Hour })
	good := q("device_id", "1", "metric", "temperature", "from", "2026-12-01T08:00:00Z", "to", "2026-12-01T09:00:00Z")
	expired, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Hour).Unix()}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, method, query, token string
		code                       int
		err, in                    string
	}{
		{"no token", "GET", good, "", 401, "missing_token", "Bearer"},
		{"bad token", "GET", good, "x.y.z", 401, "invalid_token", ""},
		{"other secret", "GET", good, mintWith(t, []byte("another secret, 32 bytes long...")), 401, "invalid_token", ""},
		{"expired", "GET", good, expired, 401, "token_expired", ""},
		{"POST", "POST", good, token(t, time.Hour), 405, "method_not_allowed", ""},
		{"no device", "GET", q("metric", "temperature", "from", "2026-12-01T08:00:00Z", "to", "2026-12-01T09:00:00Z"), token(t, time.Hour), 400, "invalid_query", "device_id"},
		{"no metric", "GET", q("device_id", "1", "from", "2026-12-01T08:00:00Z", "to", "2026-12-01T09:00:00Z"), token(t, time.Hour), 400, "invalid_query", "metric"},
		{"bad from", "GET", q("device_id", "1", "metric", "t", "from", "yesterday", "to", "2026-12-01T09:00:00Z"), token(t, time.Hour), 400, "invalid_query", "from"},
		{"no to", "GET", q("device_id", "1", "metric", "t", "from", "2026-12-01T08:00:00Z"), token(t, time.Hour), 400, "invalid_query", "to"},
		{"to before from", "GET", q("device_id", "1", "metric", "t", "from", "2026-12-01T09:00:00Z", "to", "2026-12-01T08:00:00Z"), token(t, time.Hour), 400, "invalid_query", "not after"},
		{"too long", "GET", q("device_id", "1", "metric", "t", "from", "2026-11-01T09:00:00Z", "to", "2026-12-01T08:00:00Z"), token(t, time.Hour), 400, "invalid_query", "longer than 48h"},
		{"year 0", "GET", q("device_id", "1", "metric", "t", "from", "0000-11-01T09:00:00Z", "to", "2026-12-01T08:00:00Z"), token(t, time.Hour), 400, "invalid_query", "out of range"},
		// Past 2262 a time has no UnixNano, which the store keeps: the
		// user's query is wrong, the store is not unavailable.
		{"past 2262", "GET", q("device_id", "1", "metric", "t", "from", "2300-01-01T00:00:00Z", "to", "2300-01-01T01:00:00Z"), token(t, time.Hour), 400, "invalid_query", "out of range"},
		{"points 0", "GET", good + "&points=0", token(t, time.Hour), 400, "invalid_query", "points"},
		{"points over", "GET", good + "&points=1001", token(t, time.Hour), 400, "invalid_query", "1 to 1000"},
		{"points twice", "GET", good + "&points=10&points=20", token(t, time.Hour), 400, "invalid_query", "2 times"},
		{"unknown", "GET", good + "&device=2", token(t, time.Hour), 400, "invalid_query", "unknown parameter"},
	} {
		code, m, hdr := s.get(t, c.method, c.query, c.token)
		msg, _ := m["message"].(string)
		if code != c.code || m["error"] != c.err || !strings.Contains(msg+hdr.Get("WWW-Authenticate"), c.in) {
			t.Errorf("%s: %d %v, want %d %s (%q)", c.name, code, m, c.code, c.err, c.in)
		}
	}
	// A store that cannot be read: 503, said as JSON.
	s.st.Close()
	if code, m, _ := s.get(t, "GET", good, token(t, time.Hour)); code != 503 || m["error"] != "store_unavailable" {
		t.Fatalf("closed store: %d %v", code, m)
	}
}

func mintWith(t *testing.T, key []byte) string {
	t.Helper()
	tok, err := auth.Mint(key, "alice", time.Hour, auth.Claims{})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestOptions(t *testing.T) {
	v, _ := auth.NewVerifier(auth.VerifierOptions{Secret: secret})
	for _, o := range []Options{
		{},
		{Verifier: v},
		{Verifier: v, Source: &store.Store{}, MaxPoints: store.MaxBuckets + 1},
		{Verifier: v, Source: &store.Store{}, MaxRange: -1},
		{Verifier: v, Source: &store.Store{}, MaxConcurrent: -1},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%+v: accepted", o)
		}
	}
}

// The query runs under the request's context: a client gone before (or
// during) the scan stops it, and nothing is answered or logged as a
// store failure.
func TestHistoryCancelledWithRequest(t *testing.T) {
	s := serve(t)
	v, err := auth.NewVerifier(auth.VerifierOptions{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	var log testkit.Buffer
	h, err := New(Options{Verifier: v, Source: s.st, MaxConcurrent: 1, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, "GET", Path+"?"+q("device_id", "1", "metric", "temperature",
		"from", "2026-12-01T08:00:00Z", "to", "2026-12-01T09:00:00Z"), nil)
	req.Header.Set("Authorization", "Bearer "+token(t, time.Hour))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Body.Len() != 0 || log.String() != "" {
		t.Fatalf("a cancelled request answered %d %q, logged %q", w.Code, w.Body, log.String())
	}
	if st, err := s.st.History(ctx, store.HistoryQuery{DeviceID: 1, Metric: "temperature", From: t0, To: t0.Add(time.Hour), Buckets: 1}); !errors.Is(err, context.Canceled) {
		t.Fatalf("the store under a cancelled context: %+v %v", st, err)
	}
}
