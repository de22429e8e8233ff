// Package agent is floorhub's gateway: it owns every goroutine, reads the
// devices on their schedules, stamps and stores each reading, evaluates the
// alert rules and the device status, and wires the store to the local hub
// and the uplinks.
//
// Data flows one way: sensor -> agent -> store (durable, seq) -> hub (live
// fan-out, replay) and uplinks (from their cursors). Nothing downstream ever
// blocks a sensor read: the store is the buffer between them.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/auth/session"
	"github.com/floorhub/floorhub/hub"
	"github.com/floorhub/floorhub/hub/chat"
	"github.com/floorhub/floorhub/sensors"
	"github.com/floorhub/floorhub/sensors/catalog"
	"github.com/floorhub/floorhub/store"
)

// Options are what the agent needs besides its config.
type Options struct {
	// Hardware opens buses and pins for real drivers. Nil: only drivers
	// that need no hardware (the simulated ones) can be built; the others
	// report the missing hardware as a read error.
	Hardware catalog.Hardware
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Version is reported in status messages.
	Version string
	// Now is the wall clock; default time.Now.
	Now func() time.Time
	// Ready is called once, when everything is up, with the dashboard URL
	// (carrying a fresh token).
	Ready func(dashboardURL string)
	// Notify receives systemd notifications (READY=1, WATCHDOG=1,
	// STOPPING=1); nil means none.
	Notify func(state string)
	// WatchdogInterval is systemd's WatchdogSec; the agent sends WATCHDOG=1
	// every half of it while its store keeps committing. 0: no watchdog.
	WatchdogInterval time.Duration
	// LogLevel is the level of Logger's handler, which Reload sets from a
	// reloaded log.level. Nil: a reload cannot change the level (it says so).
	LogLevel *slog.LevelVar
}

// Agent is one running gateway.
type Agent struct {
	cfg     *Config
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	clock   *clock
	started time.Time
	// grid is the origin of the read schedule (monotonic): every device
	// reads at grid + k×interval (plus its jitter), so devices with one
	// interval read together (readSchedule).
	grid time.Time
	// runID is new at every start of the agent; the boot id is the
	// kernel's, the same across restarts within one boot.
	runID string

	store    *store.Store
	secret   []byte
	sessions *session.Manager // the dashboard's users and logins
	rules    *rules

	// devices and order are replaced by Reload under both mu and viewMu;
	// read them under either.
	devices map[int]*device
	order   []*device // config order

	mu  sync.Mutex // guards device status, rule state, the running clock, the device set, publish, and the append order of events
	run runClock   // the agent's running time, for the offline rule (offline.go)
	// offlineTicks drives the offline check (offlineLoop); nil: a ticker
	// every offlineCheckEvery. Tests set it before Run.
	offlineTicks <-chan time.Time
	// viewMu also guards each device's status, reason and lastSeen (writers
	// hold both locks), so that snapshot reads them without a.mu, which is
	// held across store appends: a reader (the hub, under a client's lock)
	// never waits on the disk. A leaf lock.
	viewMu sync.Mutex
	// alerts holds the raising records of the active alerts, for the
	// hub's snapshot to new alerts subscribers; guarded by viewMu, set by
	// show before the record is published.
	alerts map[uint64]store.Record
	// ackCommitTimeout bounds the wait for an acknowledgement's commit;
	// 0: defaultAckCommitTimeout. Tests set it before Run.
	ackCommitTimeout time.Duration

	// publish fans a record out live (the hub, the WebSocket uplink's
	// previews); guarded by mu.
	publish []func(store.Record)
	system  func(hub.System)
	conns   func() int
	hub     *hub.Hub
	chat    *chat.Service // the floor chat; nil until wire

	sysMu  sync.Mutex
	sysNow hub.System
	cpu    cpuSampler

	upMu    sync.Mutex
	uplinks []*uplinkRun // the running uplinks; replaced by Reload

	// lastCommit is when the store last committed (a.now, unix ns); 0: not
	// since start. For /healthz and /metrics.
	lastCommit atomic.Int64

	// Reload hands configs to Run's goroutine, which owns what follows.
	reloads chan reloadReq
	stopped chan struct{} // closed when Run returns
	live    *Config       // the config applied last (start or reload)
	devCtx  context.Context
	devWG   *sync.WaitGroup
	svcCtx  context.Context
	svcWG   *sync.WaitGroup
}

// DBFile is the database's name in the data directory.
const DBFile = "floorhub.db"

// New checks the config and prepares the agent; Run starts it.
func New(cfg *Config, o Options) (*Agent, error) {
	if cfg == nil {
		cfg = Defaults()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	// The same checks as `agent -check-config`: a config that passed it
	// fails nowhere below for its values.
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	validAfter, err := time.Parse("2006-01-02", cfg.Clock.ValidAfter)
	if err != nil {
		return nil, fmt.Errorf("agent: clock.valid_after: %w", err)
	}
	a := &Agent{cfg: cfg, opts: o, log: o.Logger, now: o.Now, devices: map[int]*device{}, runID: newRunID(),
		reloads: make(chan reloadReq), stopped: make(chan struct{}), live: cfg}
	a.clock = newClock(o.Now, validAfter)
	a.rules = newRules(a, cfg.Rules)
	return a, nil
}

// Run runs the gateway until ctx ends, then shuts down in order: devices
// stop, pending readings are committed, uplinks say goodbye, hub clients get
// close frames, the store closes. It returns nil after a clean shutdown.
func (a *Agent) Run(ctx context.Context) (err error) {
	defer close(a.stopped)
	a.started = a.now()
	a.grid = time.Now()
	if err := os.MkdirAll(a.cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("agent: data dir: %w", err)
	}
	// Before the store is made: a data directory with a store and no id
	// file reads as one from before the id was persisted.
	if a.cfg.gatewayPersist {
		if err := persistGatewayID(a.cfg.DataDir, a.cfg.GatewayID); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		a.log.Info("gateway_id chosen and kept for the next starts", "gateway_id", a.cfg.GatewayID, "from", a.cfg.GatewayIDSource(),
			"file", filepath.Join(a.cfg.DataDir, GatewayIDFile))
	}
	a.secret, err = auth.LoadOrCreateSecret(a.cfg.DataDir)
	if err != nil {
		return err
	}
	so := a.cfg.storeOptions()
	so.Logger = a.log.With("component", "store")
	a.store, err = store.Open(filepath.Join(a.cfg.DataDir, DBFile), &so)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer func() {
		if cerr := a.store.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("agent: closing the store: %w", cerr)
		}
	}()

	for _, dc := range a.cfg.Devices {
		d := a.makeDevice(dc)
		a.devices[dc.ID] = d
		a.order = append(a.order, d)
	}
	defer func() {
		for _, d := range a.order {
			if cerr := d.close(); cerr != nil {
				a.log.Warn("closing a device", "device_id", d.cfg.ID, "err", cerr)
			}
		}
	}()
	active, err := a.store.ActiveAlerts()
	if err != nil {
		return fmt.Errorf("agent: reading active alerts: %w", err)
	}
	a.viewMu.Lock()
	a.alerts = make(map[uint64]store.Record, len(active))
	for _, r := range active {
		if r.Alert != nil {
			a.alerts[r.Alert.ID] = r
		}
	}
	a.viewMu.Unlock()
	a.mu.Lock()
	a.rules.restore(active)
	a.mu.Unlock()

	w, err := a.wire()
	if err != nil {
		return err
	}
	ups, err := a.buildUplinks(a.cfg, nil)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("agent: listen %s: %w", a.cfg.Listen, err)
	}
	srv := newHTTPServer(w.mux, a.log)

	// Services that outlive the devices: hub, uplinks, HTTP.
	svcCtx, stopSvc := context.WithCancel(context.WithoutCancel(ctx))
	var svc sync.WaitGroup
	a.svcCtx, a.svcWG = svcCtx, &svc
	w.services = append(w.services, service{"commits", a.watchCommits})
	for _, c := range w.services {
		svc.Add(1)
		go func() {
			defer svc.Done()
			if err := c.run(svcCtx); err != nil && !errors.Is(err, context.Canceled) {
				a.log.Error("service stopped", "service", c.name, "err", err)
			}
		}()
	}
	svc.Add(1)
	go func() {
		defer svc.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("http server stopped", "err", err)
		}
	}()

	// The pipeline: devices and the periodic work.
	devCtx, stopDev := context.WithCancel(ctx)
	var dev sync.WaitGroup
	a.devCtx, a.devWG = devCtx, &dev
	a.mu.Lock()
	a.run.tick(time.Now()) // running time starts; every device's silence with it
	a.publish = []func(store.Record){a.hub.Publish}
	for _, u := range ups {
		if u.publish != nil {
			a.publish = append(a.publish, u.publish) // LIVE previews of alerts during a drain
		}
	}
	a.mu.Unlock()
	for _, u := range ups {
		a.startUplink(u)
	}
	a.upMu.Lock()
	a.uplinks = ups
	a.upMu.Unlock()
	for _, d := range a.order {
		a.startDevice(d)
	}
	dev.Add(2)
	go func() { defer dev.Done(); a.offlineLoop(devCtx) }()
	go func() { defer dev.Done(); a.housekeeping(devCtx) }()

	a.publishSystem() // new system subscribers get real figures, not zeros
	url := a.dashboardURL(ln.Addr())
	a.log.Info("floorhub agent running", "gateway_id", a.cfg.GatewayID, "gateway_id_from", a.cfg.GatewayIDSource(), "run_id", a.runID, "boot_id", a.clock.bootID, "listen", ln.Addr().String(),
		"data_dir", a.cfg.DataDir, "devices", len(a.order), "version", a.opts.Version)
	if a.cfg.GatewayIDSource() == "hostname" {
		a.log.Warn("gateway_id is the host name: there is no machine id, and gateways flashed from one image share host names; set gateway_id", "gateway_id", a.cfg.GatewayID)
	}
	a.notify("READY=1")
	if a.opts.Ready != nil {
		a.opts.Ready(url)
	}

	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case req := <-a.reloads:
			req.done <- a.apply(req.cfg)
		}
	}
	a.notify("STOPPING=1")
	a.log.Info("shutting down")
	stopDev()
	dev.Wait()
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := a.store.Flush(fctx); err != nil {
		a.log.Error("committing the last readings failed", "err", err)
	}
	cancel()
	stopSvc() // hub sends close frames; uplinks publish offline
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = srv.Shutdown(sctx) // hijacked WebSockets are the hub's to close
	cancel()
	svc.Wait()
	a.log.Info("stopped cleanly")
	return nil
}

// offlineLoop advances the running time and marks silent devices offline
// (checkOffline) at every tick, until ctx ends. It has its own goroutine,
// apart from housekeeping, whose store calls can block for a minute (the
// re-stamp) or until the next failed commit (the watchdog's flush on a
// failing disk): the running time stops while its ticks stop (offline.go),
// so with the check in that loop a failing disk would keep every device
// from turning offline.
func (a *Agent) offlineLoop(ctx context.Context) {
	ticks := a.offlineTicks
	if ticks == nil {
		tick := time.NewTicker(offlineCheckEvery)
		defer tick.Stop()
		ticks = tick.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case t := <-ticks:
			a.checkOffline(t) // a ticker's time carries the monotonic reading
		}
	}
}

// housekeeping tracks the uplinks, watches the clock, publishes the system
// status and pets the watchdog. Its store calls may block (see
// offlineLoop).
func (a *Agent) housekeeping(ctx context.Context) {
	tick := time.NewTicker(offlineCheckEvery)
	defer tick.Stop()
	next, lastPet := time.Time{}, time.Time{}
	var petCommits uint64 // the store's commit count at the last pet
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		a.trackUplinks()
		a.mu.Lock()
		synced := a.clock.check()
		a.mu.Unlock()
		if synced {
			a.restamp(ctx)
		}
		if now := a.now(); !now.Before(next) {
			next = now.Add(a.cfg.System.Interval)
			a.publishSystem()
		}
		if wd := a.opts.WatchdogInterval; wd > 0 && time.Since(lastPet) >= wd/2 {
			// Pet the watchdog only while the store can commit: a wedged
			// writer (a dead disk) gets the agent restarted. A commit
			// since the last pet proves it; only without one is a commit
			// forced (each costs the card a few pages).
			commits := a.store.Stats().Commits
			err := error(nil)
			if commits == petCommits {
				fctx, cancel := context.WithTimeout(ctx, wd/4)
				err = a.store.Flush(fctx)
				cancel()
				commits = a.store.Stats().Commits
			}
			if err == nil {
				a.notify("WATCHDOG=1")
				lastPet, petCommits = time.Now(), commits
			} else if ctx.Err() == nil {
				a.log.Error("store did not commit in time; not petting the watchdog", "err", err)
			}
		}
	}
}

// restamp corrects the times of this boot's readings taken before the wall
// clock was synced, now that it is: they keep clock_synced=false and carry
// restamped=true, never a silent 1970.
func (a *Agent) restamp(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	n, err := a.store.Restamp(rctx, a.clock.bootID, a.clock.offset.Load())
	if err != nil {
		a.log.Error("re-stamping readings taken before the clock was synced failed", "err", err)
		return
	}
	a.log.Info("wall clock is synced; re-stamped the readings taken before", "records", n, "now", a.now().UTC())
}

func (a *Agent) publishSystem() {
	s := a.systemStatus()
	a.sysMu.Lock()
	a.sysNow = s
	a.sysMu.Unlock()
	if a.system != nil {
		a.system(s)
	}
}

// systemStatus measures the gateway now.
func (a *Agent) systemStatus() hub.System {
	st := a.store.Stats()
	s := hub.System{
		CPUUsage:      a.cpu.sample(),
		MemoryUsage:   memoryUsage(),
		DiskUsage:     diskUsage(a.cfg.DataDir),
		UptimeSeconds: a.now().Sub(a.started).Seconds(),
		Evicted:       st.Evicted,
		LastSeq:       st.LastSeq,
		ClockSynced:   a.clock.synced.Load(),
		Timestamp:     a.now().UTC(),
	}
	if a.conns != nil {
		s.ActiveConnections = a.conns()
	}
	if cursors := a.cursorNames(); len(cursors) > 0 {
		low := ^uint64(0)
		for _, c := range cursors {
			if v, err := a.store.Cursor(c); err == nil && v < low {
				low = v
			}
		}
		if n, _, err := a.store.Backlog(low); err == nil {
			s.Backlog = n
		}
	}
	ups := a.uplinkStates(a.now(), st.FirstSeq)
	s.Uplinks = make([]hub.UplinkStatus, len(ups))
	for i, u := range ups {
		s.Uplinks[i] = hub.UplinkStatus{Name: u.Name, Connected: u.Connected, LastAck: u.LastAck, AckedSeq: u.AckedSeq,
			Backlog: u.Backlog, OldestUnsentAge: u.OldestUnsent.Seconds(), Evictions: st.Evicted, Missed: u.Missed}
	}
	return s
}

// stamp fills a record's time fields.
func (a *Agent) stamp(r store.Record) store.Record { return a.clock.stamp(r) }

// append stores a record and fans it out live. Callers hold a.mu so that
// events keep the order in which they were decided.
func (a *Agent) append(r store.Record) (store.Record, error) {
	rec, err := a.store.Append(r)
	if err != nil {
		return rec, err
	}
	a.show(rec)
	return rec, nil
}

// show puts a stored record in the active-alerts view and publishes it
// live; a.mu is held. append shows at once; an acknowledgement is shown
// only once committed (ack.go).
func (a *Agent) show(rec store.Record) {
	if rec.Kind == store.KindAlert && rec.Alert != nil {
		// The hub's snapshot must show it before the record is published.
		a.viewMu.Lock()
		if rec.Alert.State == store.AlertActive {
			if a.alerts == nil {
				a.alerts = map[uint64]store.Record{}
			}
			a.alerts[rec.Alert.ID] = rec
		} else {
			delete(a.alerts, rec.Alert.ID)
		}
		a.viewMu.Unlock()
	}
	if rec.Kind == store.KindAlertAck {
		a.viewMu.Lock()
		if r, ok := a.alerts[rec.Alert.ID]; ok {
			r.Ack = rec.Ack
			a.alerts[rec.Alert.ID] = r
		}
		a.viewMu.Unlock()
	}
	for _, p := range a.publish {
		p(rec)
	}
}

func (a *Agent) deviceName(id int) string {
	if d := a.devices[id]; d != nil && d.cfg.Name != "" {
		return d.cfg.Name
	}
	return fmt.Sprintf("device %d", id)
}

func (a *Agent) notify(state string) {
	if a.opts.Notify != nil {
		a.opts.Notify(state)
	}
}

// statusReport is the `status` command's answer.
func (a *Agent) statusReport() map[string]any {
	devs := a.snapshot()
	list := make([]map[string]any, 0, len(devs))
	for _, d := range devs {
		m := map[string]any{"device_id": d.ID, "name": d.Name, "driver": d.Driver, "status": d.Status,
			"reason": d.Reason, "interval": d.Interval.String()}
		if !d.LastSeen.IsZero() {
			m["last_seen"] = d.LastSeen.UTC().Format(time.RFC3339Nano)
		}
		list = append(list, m)
	}
	sort.Slice(list, func(i, j int) bool { return list[i]["device_id"].(int) < list[j]["device_id"].(int) })
	a.sysMu.Lock()
	sys := a.sysNow
	a.sysMu.Unlock()
	st := a.store.Stats()
	return map[string]any{
		"gateway_id": a.cfg.GatewayID, "version": a.opts.Version, "boot_id": a.clock.bootID, "run_id": a.runID,
		"uptime_seconds": a.now().Sub(a.started).Seconds(), "clock_synced": a.clock.synced.Load(),
		"devices": list, "system": sys,
		"store": map[string]any{"last_seq": st.LastSeq, "committed_seq": st.CommittedSeq, "records": st.Records,
			"bytes": st.Bytes, "evicted": st.Evicted},
	}
}

// lazySensor builds its driver on first use and again after a failed
// build, so a bus that appears late (or a chip plugged in later) is picked
// up without a restart; meanwhile the failure is an ordinary read error.
type lazySensor struct {
	spec catalog.Spec
	hw   catalog.Hardware
	last func() []sensors.Reading // the device's last stored reading, for a resumer
	log  *slog.Logger             // the device's; nil: no log
	mu   sync.Mutex
	s    Sensor
}

// resumer is implemented by drivers whose values accumulate (pulse
// counters): built, they continue from the device's last stored reading
// instead of from zero.
type resumer interface {
	Resume(last []sensors.Reading)
}

// noticer is implemented by drivers that can work below their best on
// some hosts, such as DS18B20 probes that cannot convert together through
// the kernel's w1: Notice says how and why, "" when they do not. The
// agent logs it when the driver is built, so a slow or late reading has
// its cause in the log.
type noticer interface {
	Notice() string
}

// resumeScan bounds the stored telemetry records looked at for a device's
// last reading when its driver is built.
const resumeScan = 100_000

// lastReadings returns a lookup of device id's last stored reading (nil
// when there is none among the newest resumeScan telemetry records).
func (a *Agent) lastReadings(id int) func() []sensors.Reading {
	return func() []sensors.Reading {
		rec, ok, err := a.store.LastTelemetry(id, resumeScan)
		if err != nil {
			a.log.Warn("reading the device's last stored reading failed; its counters start from zero", "device_id", id, "err", err)
			return nil
		}
		if !ok {
			a.log.Info("no stored reading of the device to resume its counters from; they start from zero",
				"device_id", id, "looked_at", resumeScan)
			return nil
		}
		out := make([]sensors.Reading, len(rec.Metrics))
		for i, m := range rec.Metrics {
			out[i] = sensors.Reading{Metric: m.Name, Value: m.Value, Unit: m.Unit}
		}
		return out
	}
}

func (l *lazySensor) get() (Sensor, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s != nil {
		return l.s, nil
	}
	hw := l.hw
	if hw == nil {
		hw = noHardware{}
	}
	s, err := catalog.Build(&l.spec, hw)
	if err != nil {
		return nil, err
	}
	if r, ok := s.(resumer); ok && l.last != nil {
		r.Resume(l.last())
	}
	if n, ok := s.(noticer); ok && l.log != nil {
		if msg := n.Notice(); msg != "" {
			l.log.Warn("device opened with a limitation", "notice", msg)
		}
	}
	l.s = s
	return s, nil
}

func (l *lazySensor) Read(ctx context.Context) ([]sensors.Reading, error) {
	s, err := l.get()
	if err != nil {
		return nil, err
	}
	return s.Read(ctx)
}

// Changes forwards a driver's change notifications once it is built.
func (l *lazySensor) Changes() <-chan struct{} {
	s, err := l.get()
	if err != nil {
		return nil
	}
	if cn, ok := s.(changeNotifier); ok {
		return cn.Changes()
	}
	return nil
}

func (l *lazySensor) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.s.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

// noHardware is the Hardware of an agent started without one: real drivers
// fail their reads with a clear reason instead of the agent failing to start.
type noHardware struct{}

var errNoHardware = errors.New("no hardware access in this process (the agent opens the host only when started by cmd/agent on a gateway)")

func (noHardware) I2C(string) (i2c.Bus, error)    { return nil, errNoHardware }
func (noHardware) Pin(string) (gpio.PinIO, error) { return nil, errNoHardware }
func (noHardware) W1Dir() string                  { return "" }

// dashboardURL is the URL printed at start: the dashboard, with a fresh
// 24-hour token for the local operator where no users are configured (a
// first start's way in). The token carries chat user id 1, so that the
// dashboard's chat works there.
func (a *Agent) dashboardURL(addr net.Addr) string {
	base := a.cfg.PublicURL
	if base == "" {
		host, port := "localhost", "8000"
		if ta, ok := addr.(*net.TCPAddr); ok {
			port = strconv.Itoa(ta.Port)
			// Bound to one address (a LAN IP): that is where the operator
			// reaches it. Bound to all: localhost works on the gateway.
			if !ta.IP.IsUnspecified() && !ta.IP.IsLoopback() {
				host = ta.IP.String()
				if ta.IP.To4() == nil {
					host = "[" + host + "]"
				}
			}
		}
		base = "http://" + host + ":" + port
	}
	if len(a.cfg.Users) > 0 {
		// People log in. The line goes to the journal under systemd: a
		// token there would let its readers past the passwords.
		return strings.TrimRight(base, "/") + "/"
	}
	tok, err := auth.Mint(a.secret, "operator", 24*time.Hour, auth.Claims{UserID: 1})
	if err != nil {
		a.log.Error("minting the dashboard token failed", "err", err)
		return strings.TrimRight(base, "/") + "/"
	}
	return strings.TrimRight(base, "/") + "/?token=" + tok
}
