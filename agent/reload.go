package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/floorhub/floorhub/internal/yamlconf"
	"github.com/floorhub/floorhub/store"
	"github.com/floorhub/floorhub/uplink/mqtt"
	wsuplink "github.com/floorhub/floorhub/uplink/websocket"
)

// ErrNotRunning is returned by Reload when Run has ended.
var ErrNotRunning = errors.New("agent: not running")

type reloadReq struct {
	cfg  *Config
	done chan error
}

// Reload applies a config re-read while the agent runs (cmd/agent does on
// SIGHUP). cfg is validated first, as New does; an invalid one changes
// nothing and its error (a *ConfigError) is returned. A valid one applies,
// without dropping hub clients or losing records:
//
//   - devices: added ones start, removed ones stop, changed ones restart
//     with their status kept; unchanged ones go on undisturbed;
//
//   - rules: the new list applies at once; alerts of rules that are gone,
//     or that no longer watch a device, are cleared;
//
//   - hub limits and timeouts (hub.*, but v3_group);
//
//   - log.level (with Options.LogLevel);
//
//   - uplinks whose settings changed reconnect with the new ones and go on
//     from their cursors; removed ones say goodbye.
//
//   - users: sessions of users removed, or whose id or password changed,
//     end (their open dashboards are closed with session_expired); a
//     changed role applies at once.
//
// Everything else (gateway_id, data_dir, listen, public_url, log.format,
// store, auth, system, clock, hub.v3_group, hub.session_ttl) takes effect at the next start:
// what the reload applies runs on their running values (a websocket uplink
// whose new url names a new gateway_id stays as it runs), and the log says
// which of them changed. Reload waits until Run has applied
// cfg; call it while Run runs.
func (a *Agent) Reload(cfg *Config) error {
	if cfg == nil {
		return errors.New("agent: Reload: nil config")
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	req := reloadReq{cfg: cfg, done: make(chan error, 1)}
	select {
	case a.reloads <- req:
	case <-a.stopped:
		return ErrNotRunning
	}
	return <-req.done
}

// apply runs in Run's goroutine: it owns the device and service wait groups.
// Whatever can fail is done before anything changes.
func (a *Agent) apply(cfg *Config) error {
	old := a.live
	file := cfg
	later := restartOnly(a.cfg, file)
	cfg, held := keepRestartOnly(old, file) // old holds a.cfg's restart-only keys
	a.upMu.Lock()
	running := slices.Clone(a.uplinks)
	a.upMu.Unlock()
	ups, err := a.buildUplinks(cfg, running)
	if err != nil {
		return err
	}
	ho := cfg.hubOptions()
	if err := a.hub.SetLimits(ho.Conn, ho.MaxBatch); err != nil {
		return fmt.Errorf("agent: hub: %w", err)
	}
	var changes []string
	if cfg.Log.Level != old.Log.Level {
		if lv := a.opts.LogLevel; lv != nil {
			var level slog.Level
			if err := level.UnmarshalText([]byte(cfg.Log.Level)); err == nil {
				lv.Set(level)
				changes = append(changes, "log.level "+cfg.Log.Level)
			}
		} else {
			a.log.Warn("log.level changed, but this logger's level is fixed: it takes effect at the next start")
		}
	}
	if c := a.applyDevices(cfg.Devices); c != "" {
		changes = append(changes, c)
	}
	if !reflect.DeepEqual(old.Rules, cfg.Rules) {
		ids := map[int]bool{}
		for _, dc := range cfg.Devices {
			ids[dc.ID] = true
		}
		a.mu.Lock()
		a.rules.replace(cfg.Rules, ids)
		a.mu.Unlock()
		changes = append(changes, fmt.Sprintf("rules (%d)", len(cfg.Rules)))
	}
	if !reflect.DeepEqual(old.Hub, cfg.Hub) {
		changes = append(changes, "hub limits")
	}
	if !reflect.DeepEqual(old.Users, cfg.Users) && a.sessions != nil {
		n, err := a.sessions.SetUsers(cfg.sessionUsers())
		if err != nil {
			a.log.Error("writing the sessions failed", "err", err)
		}
		changes = append(changes, fmt.Sprintf("users (%d; %d sessions ended)", len(cfg.Users), n))
	}
	changes = append(changes, a.swapUplinks(running, ups)...)
	a.live = cfg
	if later = append(later, held...); len(later) > 0 {
		a.log.Warn("config reloaded, but these keys take effect at the next start only", "keys", strings.Join(later, ", "))
	}
	if len(changes) == 0 {
		changes = []string{"nothing"}
	}
	a.log.Info("config reloaded", "file", cfg.Source(), "changed", strings.Join(changes, "; "))
	return nil
}

// keepRestartOnly returns a copy of cfg, the reloaded file, with the keys
// that apply at the next start only (restartOnly's) as in run, the config
// applied last, so that
// nothing a reload rebuilds (an uplink: its topics and payloads carry the
// gateway_id) runs on them while the rest of the agent runs on the old
// ones. A websocket uplink whose url names a new gateway_id cannot run
// under the running one: the running uplink is kept as it is, and held
// names it.
func keepRestartOnly(run, cfg *Config) (eff *Config, held []string) {
	c := *cfg
	c.GatewayID, c.gatewaySource, c.gatewayPersist = run.GatewayID, run.gatewaySource, run.gatewayPersist
	c.DataDir, c.Listen, c.PublicURL = run.DataDir, run.Listen, run.PublicURL
	c.Log.Format = run.Log.Format
	c.Store, c.Auth, c.System, c.Clock = run.Store, run.Auth, run.System, run.Clock
	c.Hub.V3Group, c.Hub.SessionTTL, c.Chat = run.Hub.V3Group, run.Hub.SessionTTL, run.Chat
	if w := c.Uplink.WebSocket.URL; w != "" {
		if id, ok := wsClientID(w); ok && id != c.GatewayID {
			c.Uplink.WebSocket = run.Uplink.WebSocket
			held = append(held, "uplink.websocket (its url names the new gateway_id)")
		}
	}
	return &c, held
}

// applyDevices starts, stops and restarts devices for a reloaded list and
// says what it did ("" for nothing).
func (a *Agent) applyDevices(list []DeviceConfig) string {
	a.viewMu.Lock()
	current := a.devices // replaced, never changed in place: stays valid
	a.viewMu.Unlock()
	next := make([]*device, 0, len(list))
	devices := make(map[int]*device, len(list))
	fresh := map[*device]*device{} // a new device -> the one it replaces, or nil
	for _, dc := range list {
		d := current[dc.ID]
		if d == nil || !sameDevice(d.cfg, dc) {
			nd := a.makeDevice(dc)
			fresh[nd] = d
			d = nd
		}
		next = append(next, d)
		devices[dc.ID] = d
	}
	// A replaced device's loop and driver end before the new one starts:
	// a pin or a bus address is not opened twice.
	stopped := 0
	for id, d := range current {
		if devices[id] != d {
			a.stopDevice(d)
			if err := d.close(); err != nil {
				a.log.Warn("closing a device", "device_id", id, "err", err)
			}
			stopped++
		}
	}
	a.mu.Lock()
	a.viewMu.Lock()
	for d, old := range fresh {
		if old != nil {
			// The same device, reconfigured: it keeps its status, so
			// the reload itself raises no status change or alert.
			d.status, d.reason, d.lastSeen, d.good, d.lastErr = old.status, old.reason, old.lastSeen, old.good, old.lastErr
		} else {
			d.good = a.run.now(time.Now()) // its silence starts now
		}
	}
	a.devices, a.order = devices, next
	a.viewMu.Unlock()
	a.mu.Unlock()
	for d := range fresh {
		a.startDevice(d)
	}
	if len(fresh)+stopped == 0 {
		return ""
	}
	return fmt.Sprintf("devices: %d started, %d stopped", len(fresh), stopped)
}

// sameDevice tells whether two device entries configure the same thing; the
// driver settings are compared by value, not by their place or style in
// the file.
func sameDevice(x, y DeviceConfig) bool {
	sx, okx := settingsValue(&x.Settings)
	sy, oky := settingsValue(&y.Settings)
	x.Settings, y.Settings = yamlconf.Node{}, yamlconf.Node{}
	return okx && oky && reflect.DeepEqual(sx, sy) && reflect.DeepEqual(x, y)
}

func settingsValue(n *yamlconf.Node) (any, bool) {
	if n.Kind == 0 {
		return nil, true
	}
	var v any
	if err := yamlconf.Decode(n, &v); err != nil {
		return nil, false
	}
	return v, true
}

// restartOnly names the keys that changed between the running config and
// cfg but apply only at the next start.
func restartOnly(run, cfg *Config) []string {
	var out []string
	for _, k := range [...]struct {
		key  string
		x, y any
	}{
		{"gateway_id", run.GatewayID, cfg.GatewayID},
		{"data_dir", run.DataDir, cfg.DataDir},
		{"listen", run.Listen, cfg.Listen},
		{"public_url", run.PublicURL, cfg.PublicURL},
		{"log.format", run.Log.Format, cfg.Log.Format},
		{"store", run.Store, cfg.Store},
		{"auth", run.Auth, cfg.Auth},
		{"system", run.System, cfg.System},
		{"clock", run.Clock, cfg.Clock},
		{"hub.v3_group", run.Hub.V3Group, cfg.Hub.V3Group},
		{"chat", run.Chat, cfg.Chat},
		{"hub.session_ttl", run.Hub.SessionTTL, cfg.Hub.SessionTTL},
	} {
		if k.x != k.y {
			out = append(out, k.key)
		}
	}
	return out
}

// uplinkRun is one uplink and its goroutine.
type uplinkRun struct {
	name      string // "mqtt" or "websocket"
	opts      any    // the config's options it was built from, to tell a change
	cursors   []string
	connected func() bool
	run       func(context.Context) error
	publish   func(store.Record) // LIVE previews; nil for none

	cancel context.CancelFunc
	done   chan struct{}
	// downSince is when it was last seen disconnected after being
	// connected or started (a.now, unix ns); 0 while connected. Kept by
	// the housekeeping loop.
	downSince atomic.Int64
	// acked is its lowest cursor at the last look plus one (0: not looked
	// yet), and lastAck when that last advanced (a.now, unix ns; 0: not since start). Kept by the
	// housekeeping loop.
	acked   atomic.Uint64
	lastAck atomic.Int64
}

// buildUplinks builds the uplinks cfg configures, reusing those in running
// whose settings are unchanged. Nothing is started.
func (a *Agent) buildUplinks(cfg *Config, running []*uplinkRun) ([]*uplinkRun, error) {
	var out []*uplinkRun
	if m := cfg.mqttOptions(); m.URL != "" {
		u, err := a.uplink(running, "mqtt", m, func(log *slog.Logger) (*uplinkRun, error) {
			m.Version, m.BootID, m.RunID, m.Clock, m.Logger = a.opts.Version, a.clock.bootID, a.runID, a.clock.state, log
			// Sparkplug's bdSeq must keep increasing across restarts: a
			// small file of its own, written before each CONNECT, not a
			// store key, which would wait for the store's group commit.
			m.BdSeqFile = filepath.Join(cfg.DataDir, SparkplugBdSeqFile)
			c, err := mqtt.New(a.store, a, m)
			if err != nil {
				return nil, err
			}
			return &uplinkRun{cursors: []string{mqtt.CursorEvents, mqtt.CursorTelemetry}, connected: c.Connected, run: c.Run}, nil
		})
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	if w := cfg.websocketOptions(); w.URL != "" {
		u, err := a.uplink(running, "websocket", w, func(log *slog.Logger) (*uplinkRun, error) {
			w.Version, w.BootID, w.RunID, w.Clock, w.Logger = a.opts.Version, a.clock.bootID, a.runID, a.clock.state, log
			c, err := wsuplink.New(a.store, a, w)
			if err != nil {
				return nil, err
			}
			return &uplinkRun{cursors: []string{wsuplink.Cursor}, connected: c.Connected, run: c.Run, publish: c.Publish}, nil
		})
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// uplink returns the running uplink name built from opts (the config's
// options, compared by value), or a new one from build, which adds what
// the running agent does to its copy of opts.
func (a *Agent) uplink(running []*uplinkRun, name string, opts any, build func(*slog.Logger) (*uplinkRun, error)) (*uplinkRun, error) {
	for _, u := range running {
		if u.name == name && reflect.DeepEqual(u.opts, opts) {
			return u, nil
		}
	}
	component := name
	if name == "websocket" {
		component = "websocket-uplink" // "websocket" alone would read as the hub's
	}
	u, err := build(a.log.With("component", component))
	if err != nil {
		return nil, fmt.Errorf("agent: uplink.%s: %w", name, err)
	}
	u.name, u.opts = name, opts
	return u, nil
}

// startUplink runs u under Run's service context. Run's goroutine only.
func (a *Agent) startUplink(u *uplinkRun) {
	ctx, cancel := context.WithCancel(a.svcCtx)
	u.cancel, u.done = cancel, make(chan struct{})
	u.downSince.Store(a.now().UnixNano())
	a.svcWG.Add(1)
	go func() {
		defer a.svcWG.Done()
		defer close(u.done)
		if err := u.run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			a.log.Error("uplink stopped", "uplink", u.name, "err", err)
		}
	}()
}

// swapUplinks stops the running uplinks that next does not keep (an uplink
// whose settings changed is stopped before its successor starts on the same
// cursor) and starts the new ones.
func (a *Agent) swapUplinks(running, next []*uplinkRun) []string {
	var out []string
	for _, u := range running {
		if !slices.Contains(next, u) {
			u.cancel()
			<-u.done
			out = append(out, "uplink."+u.name+" stopped")
		}
	}
	pub := []func(store.Record){a.hub.Publish}
	for _, u := range next {
		if u.publish != nil {
			pub = append(pub, u.publish)
		}
	}
	a.mu.Lock()
	a.publish = pub
	a.mu.Unlock()
	for _, u := range next {
		if !slices.Contains(running, u) {
			a.startUplink(u)
			out = append(out, "uplink."+u.name+" started")
		}
	}
	a.upMu.Lock()
	a.uplinks = next
	a.upMu.Unlock()
	return out
}

// cursorNames lists the delivery cursors of the running uplinks.
func (a *Agent) cursorNames() []string {
	a.upMu.Lock()
	defer a.upMu.Unlock()
	var out []string
	for _, u := range a.uplinks {
		out = append(out, u.cursors...)
	}
	return out
}

// watchCommits notes when the store commits, for /healthz and /metrics.
func (a *Agent) watchCommits(ctx context.Context) error {
	for {
		c := a.store.Committed()
		select {
		case <-ctx.Done():
			return nil
		case <-c:
			a.lastCommit.Store(a.now().UnixNano())
		}
	}
}
