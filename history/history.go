// Package history serves the dashboard's charts: GET /api/v1/history
// answers one metric of one device over a time window as JSON buckets
// (start, min, avg, max, count), downsampled on the gateway from the
// store's telemetry, so that a 24 h chart moves a few kilobytes rather
// than 86,400 readings. Requests carry the hub's JWT
// (Authorization: Bearer). See docs/history.md.
package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/store"
)

// Path is where the agent mounts Handler.
const Path = "/api/v1/history"

// ErrOptions is wrapped by the errors of Options.Validate and New.
var ErrOptions = errors.New("history: invalid options")

// TokenVerifier checks a JWT; *auth.Verifier satisfies it (the hub's).
type TokenVerifier interface {
	Verify(token string) (*auth.Claims, error)
}

// Source downsamples the stored telemetry; *store.Store satisfies it.
type Source interface {
	// History stops with ctx.Err() once ctx is done (the client left).
	History(ctx context.Context, q store.HistoryQuery) (store.History, error)
}

// Authenticator authenticates a request by its session cookie or bearer
// token; *session.Manager (auth/session) satisfies it.
type Authenticator interface {
	Authenticate(r *http.Request) (auth.Identity, error)
}

// Options configures the handler. The zero value of every field but
// Verifier and Source means its default.
type Options struct {
	// Verifier checks the bearer token. Required unless Auth is set.
	Verifier TokenVerifier
	// Auth, when set, authenticates instead of Verifier: the dashboard's
	// session cookie as well as a bearer token.
	Auth Authenticator
	// Source answers the queries. Required.
	Source Source
	// MaxPoints caps the points (buckets) of one answer. Default 1000, at
	// most store.MaxBuckets.
	MaxPoints int
	// MaxRange caps the window of one query (to - from). Default 31 days.
	MaxRange time.Duration
	// MaxConcurrent caps the queries read at once (each may take a tenth
	// of a second of a Pi's core for a day of data); others wait their
	// turn, or until their client goes away. Default 2.
	MaxConcurrent int
	// Logger receives failed reads. Default slog.Default().
	Logger *slog.Logger
}

// DefaultPoints is the points of a query that names none.
const DefaultPoints = 500

// Validate reports the first field of o that cannot mean anything.
func (o *Options) Validate() error {
	switch {
	case o.MaxPoints < 0 || o.MaxPoints > store.MaxBuckets:
		return fmt.Errorf("%w: MaxPoints %d: want 0 (default) to %d", ErrOptions, o.MaxPoints, store.MaxBuckets)
	case o.MaxRange < 0:
		return fmt.Errorf("%w: MaxRange %v is negative", ErrOptions, o.MaxRange)
	case o.MaxConcurrent < 0:
		return fmt.Errorf("%w: MaxConcurrent %d is negative", ErrOptions, o.MaxConcurrent)
	}
	return nil
}

// Handler serves GET /api/v1/history.
type Handler struct {
	o   Options
	sem chan struct{} // a slot per query being read
}

// New returns the handler; mount it at Path.
func New(o Options) (*Handler, error) {
	if (o.Verifier == nil && o.Auth == nil) || o.Source == nil {
		return nil, fmt.Errorf("%w: Verifier (or Auth) and Source are required", ErrOptions)
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.MaxPoints == 0 {
		o.MaxPoints = 1000
	}
	if o.MaxRange == 0 {
		o.MaxRange = 31 * 24 * time.Hour
	}
	if o.MaxConcurrent == 0 {
		o.MaxConcurrent = 2
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Handler{o: o, sem: make(chan struct{}, o.MaxConcurrent)}, nil
}

// answer is the JSON of a successful query.
type answer struct {
	DeviceID int      `json:"device_id"`
	Metric   string   `json:"metric"`
	Unit     string   `json:"unit"`
	From     string   `json:"from"`
	To       string   `json:"to"`
	Points   int      `json:"points"`
	Step     float64  `json:"step_seconds"`
	Buckets  []bucket `json:"buckets"`
	Readings int      `json:"readings"`
	Scanned  int      `json:"scanned"`
}

type bucket struct {
	Start string `json:"start"`
	Min   number `json:"min"`
	Avg   number `json:"avg"`
	Max   number `json:"max"`
	Count int    `json:"count"`
}

// number encodes a non-finite float (a sum that overflowed) as null.
type number float64

func (n number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

type errorAnswer struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func reply(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // plain fields only: a programming mistake
		code, b = http.StatusInternalServerError, []byte(`{"error":"internal_error","message":"encoding failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func fail(w http.ResponseWriter, code int, errCode, format string, args ...any) {
	reply(w, code, errorAnswer{Error: errCode, Message: fmt.Sprintf(format, args...)})
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		fail(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
		return
	}
	if code, msg := h.authenticate(r); code == "forbidden" {
		fail(w, http.StatusForbidden, code, "%s", msg)
		return
	} else if code != "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="floorhub", error="invalid_token"`)
		fail(w, http.StatusUnauthorized, code, "%s", msg)
		return
	}
	q, err := h.parse(r.URL.Query())
	if err != nil {
		fail(w, http.StatusBadRequest, "invalid_query", "%v", err)
		return
	}
	select {
	case h.sem <- struct{}{}:
	case <-r.Context().Done():
		return // the client left
	}
	res, err := h.o.Source.History(r.Context(), q)
	<-h.sem
	if err != nil && r.Context().Err() != nil {
		return // the client left mid-scan: nobody to answer
	}
	if err != nil {
		h.o.Logger.Error("history: reading the store failed", "err", err)
		fail(w, http.StatusServiceUnavailable, "store_unavailable", "the store could not be read")
		return
	}
	a := answer{DeviceID: q.DeviceID, Metric: q.Metric, Unit: res.Unit, From: stamp(q.From), To: stamp(q.To),
		Points: q.Buckets, Step: res.Step.Seconds(), Buckets: make([]bucket, len(res.Buckets)),
		Readings: res.Matched, Scanned: res.Scanned}
	for i, b := range res.Buckets {
		a.Buckets[i] = bucket{Start: stamp(b.Start), Min: number(b.Min), Avg: number(b.Sum / float64(b.Count)),
			Max: number(b.Max), Count: b.Count}
	}
	reply(w, http.StatusOK, a)
}

// authenticate checks the bearer token; it returns the error code and
// message of a refusal (the hub's codes), or "".
func (h *Handler) authenticate(r *http.Request) (string, string) {
	var err error
	if h.o.Auth != nil {
		var id auth.Identity
		id, err = h.o.Auth.Authenticate(r)
		if err == nil && !id.May(auth.Read) {
			return "forbidden", "this user may not read"
		}
	} else {
		hdr := r.Header.Get("Authorization")
		if len(hdr) < 7 || !strings.EqualFold(hdr[:7], "bearer ") {
			return "missing_token", "send the hub's token as Authorization: Bearer <jwt>"
		}
		_, err = h.o.Verifier.Verify(strings.TrimSpace(hdr[7:]))
	}
	switch {
	case err == nil:
		return "", ""
	case errors.Is(err, auth.ErrNoSession):
		return "no_session", "log in, or send the hub's token as Authorization: Bearer <jwt>"
	case errors.Is(err, auth.ErrSessionExpired):
		return "session_expired", "the session expired or was ended: log in again"
	case errors.Is(err, auth.ErrMissing):
		return "missing_token", "send the hub's token as Authorization: Bearer <jwt>"
	case errors.Is(err, auth.ErrTooLong):
		return "token_too_long", fmt.Sprintf("token longer than %d bytes", auth.MaxTokenLen)
	case errors.Is(err, auth.ErrExpired):
		return "token_expired", "token expired"
	default:
		return "invalid_token", "invalid token"
	}
}

// lastTime is the latest time a UnixNano holds, and so the store.
var lastTime = time.Unix(0, math.MaxInt64)

// parse checks the query string; its errors name the parameter.
func (h *Handler) parse(v url.Values) (store.HistoryQuery, error) {
	var q store.HistoryQuery
	for k, vs := range v {
		switch k {
		case "device_id", "metric", "from", "to", "points":
			if len(vs) > 1 {
				return q, fmt.Errorf("%s: given %d times", k, len(vs))
			}
		default:
			return q, fmt.Errorf("%s: unknown parameter (want device_id, metric, from, to, points)", k)
		}
	}
	id, err := strconv.Atoi(v.Get("device_id"))
	if err != nil {
		return q, fmt.Errorf("device_id: %q is not a device number", v.Get("device_id"))
	}
	q.DeviceID = id
	if q.Metric = v.Get("metric"); q.Metric == "" || len(q.Metric) > 256 {
		return q, fmt.Errorf("metric: want a metric name (1 to 256 bytes)")
	}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		s := v.Get(p.name)
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return q, fmt.Errorf("%s: %q is not an RFC 3339 time (2026-12-02T08:00:00Z)", p.name, s)
		}
		// The store keeps times as UnixNano, which ends in April 2262: a
		// later window is the query's fault, not the store's (503).
		if t.Year() < 1970 || t.After(lastTime) {
			return q, fmt.Errorf("%s: %s is out of range (1970 to 2262)", p.name, s)
		}
		*p.t = t
	}
	switch span := q.To.Sub(q.From); {
	case span <= 0:
		return q, fmt.Errorf("to: %s is not after from (%s)", v.Get("to"), v.Get("from"))
	case span > h.o.MaxRange:
		return q, fmt.Errorf("to: the window of %v is longer than %v", span, h.o.MaxRange)
	}
	q.Buckets = DefaultPoints
	if s := v.Get("points"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > h.o.MaxPoints {
			return q, fmt.Errorf("points: %q: want 1 to %d", s, h.o.MaxPoints)
		}
		q.Buckets = n
	}
	q.Buckets = min(q.Buckets, h.o.MaxPoints)
	// A bucket narrower than a nanosecond means nothing: fewer points.
	if span := q.To.Sub(q.From); int64(q.Buckets) > int64(span) {
		q.Buckets = int(span)
	}
	return q, nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
