package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"time"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/auth/session"
	"github.com/floorhub/floorhub/history"
	"github.com/floorhub/floorhub/hub"
	"github.com/floorhub/floorhub/hub/chat"
	"github.com/floorhub/floorhub/hub/wsconn"
	"github.com/floorhub/floorhub/store"
	"github.com/floorhub/floorhub/web"
)

// service is a long-running part that the agent owns (hub, uplink).
type service struct {
	name string
	run  func(ctx context.Context) error
}

type wiring struct {
	mux      *http.ServeMux
	services []service
}

// wire builds the hub, the uplinks and the HTTP routes on the open store.
func (a *Agent) wire() (*wiring, error) {
	w := &wiring{mux: http.NewServeMux()}

	verifier, err := a.verifier()
	if err != nil {
		return nil, err
	}
	so := session.Options{Dir: a.cfg.DataDir, TTL: a.cfg.Hub.SessionTTL, Verifier: verifier,
		Logger: a.log.With("component", "sessions"), Now: a.now,
		// The origins the hub trusts with the cookie (hub.allowed_origins,
		// by name; a reload applies), so that the page behind a proxy that
		// rewrites Host can log out.
		TrustOrigin: func(r *http.Request) bool {
			_, named := wsconn.CheckOrigin(r, a.hub.Server().Options().AllowedOrigins)
			return named
		}}
	sessions, err := session.Open(so, a.cfg.sessionUsers())
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.sessions = sessions
	w.services = append(w.services, service{"sessions", sessions.Run})
	w.mux.HandleFunc("POST "+session.LoginPath, sessions.ServeLogin)
	w.mux.HandleFunc("POST "+session.LogoutPath, sessions.ServeLogout)
	w.mux.HandleFunc("GET "+session.SessionPath, sessions.ServeSession)
	ho := a.hubOptions(verifier)
	ho.Auth, ho.Commander = sessions, a
	h, err := hub.New(ho)
	if err != nil {
		return nil, fmt.Errorf("agent: hub: %w", err)
	}
	a.hub = h
	a.system = h.PublishSystem
	a.conns = h.Connections
	w.services = append(w.services, service{"hub", h.Run})
	w.mux.Handle("/ws", h.Handler())
	w.mux.Handle("/ws/", h.Handler())
	vo := a.cfg.v3Options()
	vo.Commander, vo.Logger = a, a.log.With("component", "v3")
	v3, err := hub.NewV3(h, vo)
	if err != nil {
		return nil, fmt.Errorf("agent: hub v3: %w", err)
	}
	w.services = append(w.services, service{"v3", v3.Run})
	w.mux.Handle("/v3/ws/", v3.Handler())
	hist, err := history.New(history.Options{Auth: sessions, Source: a.store, Logger: a.log.With("component", "history")})
	if err != nil {
		return nil, fmt.Errorf("agent: history: %w", err)
	}
	w.mux.Handle("GET "+history.Path, hist)
	co := a.cfg.chatOptions()
	co.Store, co.Verifier, co.Auth, co.Users, co.Logger, co.Stamp = a.store, verifier, sessions, sessions, a.log.With("component", "chat"), a.clock.stamp
	co.SocketIO.Engine.AllowedOrigins, co.SocketIO.Engine.Logger = a.cfg.Hub.AllowedOrigins, co.Logger
	ch, err := chat.New(co)
	if err != nil {
		return nil, fmt.Errorf("agent: chat: %w", err)
	}
	a.chat = ch
	w.services = append(w.services, service{"chat", ch.Run})
	w.mux.Handle("/socket.io/", ch)
	w.mux.Handle("GET /{$}", web.Handler())
	w.mux.HandleFunc("GET /healthz", a.serveHealth)
	w.mux.HandleFunc("GET /metrics", a.serveMetrics)

	return w, nil
}

// hubOptions are the config's hub options (those Config.Validate checked)
// with what the running agent adds.
func (a *Agent) hubOptions(v *auth.Verifier) hub.Options {
	o := a.cfg.hubOptions()
	o.Verifier, o.Replay, o.State = v, a.store, hubState{a}
	o.Acker = a
	o.Logger = a.log.With("component", "hub")
	return o
}

func (a *Agent) verifier() (*auth.Verifier, error) {
	o := auth.VerifierOptions{Algorithm: a.cfg.Auth.Algorithm, Secret: a.secret, Leeway: a.cfg.Auth.Leeway}
	if a.cfg.Auth.PublicKeyFile != "" {
		pem, err := os.ReadFile(a.cfg.Auth.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("agent: auth.public_key_file: %w", err)
		}
		o.PublicKeyPEM = pem
	}
	return auth.NewVerifier(o)
}

// hubState shows the hub the agent's current state for new subscribers.
type hubState struct{ a *Agent }

func (s hubState) Devices() []hub.DeviceState {
	snap := s.a.snapshot()
	out := make([]hub.DeviceState, len(snap))
	for i, d := range snap {
		out[i] = hub.DeviceState{DeviceID: d.ID, Status: d.Status, Reason: d.Reason, LastSeen: d.LastSeen,
			DeviceInfo: hub.DeviceInfo{Name: d.Name, Driver: d.Driver, Units: d.Units}}
	}
	return out
}

// Device names a device for the hub's device status updates.
func (s hubState) Device(id int) (hub.DeviceInfo, bool) {
	s.a.viewMu.Lock()
	defer s.a.viewMu.Unlock()
	d := s.a.devices[id]
	if d == nil {
		return hub.DeviceInfo{}, false
	}
	return hub.DeviceInfo{Name: d.cfg.Name, Driver: d.cfg.Driver, Units: d.units}, true
}

// ActiveAlerts gives a new alerts subscriber the active alerts, in seq
// order.
func (s hubState) ActiveAlerts() []store.Record {
	s.a.viewMu.Lock()
	out := make([]store.Record, 0, len(s.a.alerts))
	for _, r := range s.a.alerts {
		out = append(out, r)
	}
	s.a.viewMu.Unlock()
	// sort.Slice, not slices.SortFunc: a generic sort instantiated for
	// store.Record's shape is about 11 KB of code, sort.Slice is in the
	// binary already.
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

func (s hubState) System() hub.System {
	s.a.sysMu.Lock()
	defer s.a.sysMu.Unlock()
	return s.a.sysNow
}

// httpMaxHeader caps a request's line and headers: a browser's, with the
// session cookie or a 4 KiB token, is a few KiB. net/http's default, 1 MiB,
// let a few hundred connections each sending a long header within
// ReadHeaderTimeout reach the agent's MemoryMax (systemd unit, 256 MiB).
const httpMaxHeader = 16 << 10

// newHTTPServer is the agent's HTTP server. No ReadTimeout or
// WriteTimeout: they would cut the WebSockets and long polls short, which
// keep their own deadlines. IdleTimeout ends keep-alive connections left
// idle, which net/http otherwise keeps waiting for a request forever.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: httpMaxHeader, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
}
