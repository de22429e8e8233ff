// Package hub is the gateway's local real-time hub: the WebSocket API of
// seed 000 (the "Valtronics" API) on /ws and /ws/{telemetry,alerts,system,
// devices}, built on the connection core in hub/wsconn.
//
// The agent calls Publish for every record right after the store assigned
// its seq, and PublishSystem periodically; neither ever blocks. Run owns
// the hub's goroutines: the fan-out that turns records into messages for
// the subscribed clients, and the ticker of frequency-limited
// subscriptions. A client that falls behind has its telemetry coalesced
// (the newest value of each metric wins) and is disconnected with 1013 if
// messages that may not be dropped (alerts, device status) would overflow
// its queue; it resumes with since=<last seq> and gets what it missed from
// the store, then live data, with no gap and no duplicate at the seam.
//
// See docs/hub.md for every message, error code, close code and limit.
package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/command"
	"github.com/floorhub/floorhub/hub/wsconn"
	"github.com/floorhub/floorhub/store"
)

// Errors returned by New and NewV3.
var (
	ErrNoVerifier = errors.New("hub: Options.Verifier is required")
	// ErrOptions is wrapped by every *FieldError of Options.Validate and
	// V3Options.Validate (those of Options.Conn wrap wsconn.ErrOptions).
	ErrOptions = errors.New("hub: invalid options")
)

// FieldError is an Options or V3Options field that Validate refuses.
// Field is the Go name of the field; it wraps ErrOptions.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return "hub: invalid options: " + e.Field + " " + e.Reason }

// Unwrap makes errors.Is(err, ErrOptions) true.
func (e *FieldError) Unwrap() error { return ErrOptions }

func invalidOption(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// TokenVerifier checks a JWT; *auth.Verifier satisfies it. Verify returns
// auth.ErrMissing, ErrTooLong, ErrExpired, ErrInvalid or ErrNoSubject.
type TokenVerifier interface {
	Verify(token string) (*auth.Claims, error)
}

// Authenticator authenticates dashboard sessions and tells the identity
// (user, numeric id, role) of tokens from the configured users;
// *session.Manager (auth/session) satisfies it.
type Authenticator interface {
	// Cookie authenticates a session cookie's value (and renews the
	// session).
	Cookie(value string) (auth.Identity, error)
	// Token verifies a JWT and returns its identity; errors as
	// TokenVerifier's.
	Token(token string) (auth.Identity, error)
	// Check tells whether an identity still holds (a session: live, and
	// renewed; a token: not expired) and returns its current role.
	Check(id auth.Identity) (auth.Identity, error)
}

// Replayer reads committed records; *store.Store satisfies it.
type Replayer interface {
	Read(after uint64, max int, kinds ...store.Kind) ([]store.Record, error)
}

// committer is the optional part of a Replayer that tells when a commit
// happened (*store.Store has it); without it replay polls.
type committer interface {
	Committed() <-chan struct{}
}

// flusher is the optional part of a Replayer that commits at once
// (*store.Store has it): a resume then does not wait for the store's next
// group commit (telemetry may wait up to its commit interval, 10 s by
// default) before it goes live. The hub forces at most one commit per
// second in all (forcedCommitGap), however many clients resume.
type flusher interface {
	Flush(ctx context.Context) error
}

// StateSource gives the current state to new subscribers of the devices
// and system channels. The hub calls it with a client's lock held, so that
// no change slips between the snapshot and live delivery: it must not call
// into the hub, must not wait (no I/O, no lock held across I/O: the fan-out
// waits for that client's lock), and must reflect a change before the
// change's record is published.
type StateSource interface {
	// Devices returns every configured device and its current status.
	Devices() []DeviceState
	// System returns the latest system status.
	System() System
}

// DeviceState is one device's current status.
type DeviceState struct {
	DeviceID int
	DeviceInfo
	Status   string // online, warning or offline
	Reason   string
	LastSeen time.Time
}

// DeviceInfo is what a device is, for people: it rides on every
// device_status_update (the initial ones and the changes) when known.
type DeviceInfo struct {
	Name   string // the configured label; "" when none
	Driver string // the driver kind (bme280, sim-env)
	// Units maps each metric the device has returned to its unit; nil
	// before its first reading. Not modified once handed to the hub.
	Units map[string]string
}

// DeviceDirectory is the optional part of a StateSource that names the
// device of a device status record, live or replayed. Same rules as
// StateSource: leaf locks only, no I/O.
type DeviceDirectory interface {
	// Device returns what device id is, false when it is not configured.
	Device(id int) (DeviceInfo, bool)
}

// AlertSource is the optional part of a StateSource that gives a new
// alerts subscriber the active alerts first (as devices gives the device
// states). Same rules as StateSource: called with the client's lock held,
// leaf locks only, no I/O, and an alert raised or cleared must be in it
// before its record is published.
type AlertSource interface {
	// ActiveAlerts returns the raising records of the alerts active now,
	// in seq order.
	ActiveAlerts() []store.Record
}

// AlertAcker acknowledges alerts for the ack_alert message; the agent
// implements it. Refusals wrap the command package's sentinels
// (command.ErrUnknownAlert, ErrAlertCleared, ErrAlreadyAcknowledged,
// ErrNoteTooLong, ErrBadArgs), whose codes the error message carries. The
// alert_ack record is published (Hub.Publish) before AckAlert returns.
type AlertAcker interface {
	// AckAlert acknowledges the active alert id for user, with an
	// optional note, and returns the alert_ack record.
	AckAlert(ctx context.Context, id uint64, user, note string) (store.Record, error)
}

// System is the `metrics` object of system_status_update: the seed's four
// fields plus floorhub's. Timestamp is the message's `timestamp`.
type System struct {
	CPUUsage          float64   `json:"cpu_usage"`    // percent
	MemoryUsage       float64   `json:"memory_usage"` // percent
	DiskUsage         float64   `json:"disk_usage"`   // percent
	ActiveConnections int       `json:"active_connections"`
	UptimeSeconds     float64   `json:"uptime_seconds"`
	Backlog           int       `json:"backlog"`  // records not yet acked by every uplink
	Evicted           uint64    `json:"evicted"`  // records evicted by the store's cap
	LastSeq           uint64    `json:"last_seq"` // highest seq assigned
	ClockSynced       bool      `json:"clock_synced"`
	Timestamp         time.Time `json:"timestamp"`
	// Uplinks is the health of each uplink, sent beside "metrics" as
	// "uplinks" (docs/hub.md); nil: not sent.
	Uplinks []UplinkStatus `json:"-"`
}

// UplinkStatus is one uplink's health, for the dashboard.
type UplinkStatus struct {
	Name      string `json:"name"` // mqtt, websocket
	Connected bool   `json:"connected"`
	// LastAck is when the uplink's cursor last advanced (the central side
	// acknowledged records), to about a second; zero: not since start.
	LastAck time.Time `json:"-"`
	// AckedSeq is the highest seq acknowledged (the lowest of its cursors).
	AckedSeq uint64 `json:"acked_seq"`
	// Backlog counts the stored records not acknowledged yet.
	Backlog int `json:"backlog"`
	// OldestUnsentAge is the age of the oldest of them, in seconds; 0
	// when none.
	OldestUnsentAge float64 `json:"oldest_unsent_age_seconds"`
	// Evictions counts the records the store evicted (its cap, its max
	// age) since it was created, sent or not: the figure of the uplink's
	// own heartbeat.
	Evictions uint64 `json:"evictions"`
	// Missed counts the records evicted before this uplink had them
	// acknowledged and still ahead of its cursor: they will never be
	// sent (an upper bound when seqs were skipped by a crash).
	Missed uint64 `json:"missed"`
}

// Options configures a Hub. The zero value of every field but Verifier
// means its default.
type Options struct {
	// Verifier checks tokens. Required.
	Verifier TokenVerifier
	// Auth authenticates session cookies (the dashboard's login) and
	// gives tokens the configured users' ids and roles. Without it only
	// tokens authenticate, and a token's role is its role claim, else
	// auth.DefaultTokenRole.
	Auth Authenticator
	// Commander runs the `command` messages of admins (and of operators
	// for ack_alert). Without it every command is answered
	// unknown_command.
	Commander command.Commander
	// CommandTimeout bounds one command. Default 10 s.
	CommandTimeout time.Duration
	// Replay serves resume (since=<seq>) from the store. Without it a
	// request to resume is answered with the error replay_unavailable and
	// live data only.
	Replay Replayer
	// State gives new subscribers of devices and system the current
	// state. Without it devices subscribers get no snapshot and system
	// subscribers get the last PublishSystem value, if any.
	State StateSource
	// Acker acknowledges alerts (the ack_alert message). Without it
	// ack_alert is answered with the error unknown_type.
	Acker AlertAcker
	// Logger receives the hub's log lines. Default slog.Default().
	Logger *slog.Logger
	// Conn holds the connection limits (message size and rate,
	// connections in all, per user and per address, origins, timeouts,
	// queue length); its zero value is the seed's defaults.
	Conn wsconn.Options
	// MaxBatch caps the messages of one batch. Default 50.
	MaxBatch int
	// ReplayBuffer caps the live records held back for a subscription
	// while its replay runs; beyond it they are dropped and read from the
	// store instead. Default 1024.
	ReplayBuffer int
	// CommitWait bounds how long a replay waits for records already
	// published to be committed. Default 10 s.
	CommitWait time.Duration
	// InboxLen caps the records and statuses waiting for the fan-out
	// (only reached when Run is not running); beyond it the oldest are
	// dropped and logged. Default 65536.
	InboxLen int
	// Now is the clock of frequency filters and timestamps. Default
	// time.Now.
	Now func() time.Time

	tick <-chan time.Time // tests drive frequency ticks with it
	// afterSubscribe, when set, runs right after subscribe queued its
	// "subscribed" reply, still under c.mu: tests look there at what the
	// fan-out sees, and publish, at the instant the client may read the
	// reply.
	afterSubscribe func(*client, channel)
}

// Hub is the local real-time hub.
type Hub struct {
	o   Options
	srv *wsconn.Server
	log *slog.Logger
	// leeway is the clock skew allowed on an open connection's token
	// expiry: the Verifier's, so that no token is accepted and then
	// closed at once as expired.
	leeway time.Duration

	inMu    sync.Mutex
	inbox   []event
	dropped uint64
	wake    chan struct{}

	maxBatch     atomic.Int64  // Options.MaxBatch, changed by SetLimits
	inboxDropped atomic.Uint64 // events dropped by a full inbox, for Stats

	lastSeq atomic.Uint64 // highest seq fanned out

	mu    sync.Mutex
	subs  [numChannels]map[*client]struct{}
	snap  [numChannels]atomic.Pointer[[]*client]
	timed map[*client]struct{} // clients with frequency-limited entries
	all   map[*client]struct{} // authenticated clients, for token expiry

	sysMu  sync.Mutex
	system *System

	// Forced commits for resumes, hub-wide (forceCommit): the one in
	// flight, shared by every resume that asks meanwhile, and when the
	// last one started, by Options.Now.
	fcMu   sync.Mutex
	fcCall *flushCall
	fcLast time.Time
}

// forcedCommitGap is the least time between two commits that resumes
// force on the store, whatever the number of clients and subscribes:
// the store's commit interval (10 s) spares the SD card, and a reconnect
// loop must not bring back a commit per subscribe. A resume whose records
// wait for a commit waits at most this long (or the store's own next
// commit) beyond the forced commit before it.
const forcedCommitGap = time.Second

// flushCall is one forced commit; err is set before done is closed.
type flushCall struct {
	done chan struct{}
	err  error
}

type event struct {
	rec store.Record
	sys *System
}

// Validate reports the first value of o that cannot mean anything: its own
// fields as a *FieldError, then Conn's (a *wsconn.FieldError). It does not
// require the Verifier, which is not configuration. New calls it, and so
// does the agent's config check.
func (o *Options) Validate() error {
	switch {
	case o.MaxBatch < 0:
		return invalidOption("MaxBatch", "is negative (%d)", o.MaxBatch)
	case o.ReplayBuffer < 0:
		return invalidOption("ReplayBuffer", "is negative (%d)", o.ReplayBuffer)
	case o.CommitWait < 0:
		return invalidOption("CommitWait", "is negative (%v)", o.CommitWait)
	case o.InboxLen < 0:
		return invalidOption("InboxLen", "is negative (%d)", o.InboxLen)
	case o.CommandTimeout < 0:
		return invalidOption("CommandTimeout", "is negative (%v)", o.CommandTimeout)
	}
	if err := o.Conn.Validate(); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	return nil
}

// New returns a Hub. Call Run to start it and mount Handler.
func New(o Options) (*Hub, error) {
	if o.Verifier == nil {
		return nil, ErrNoVerifier
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 50
	}
	if o.ReplayBuffer == 0 {
		o.ReplayBuffer = 1024
	}
	if o.CommitWait == 0 {
		o.CommitWait = 10 * time.Second
	}
	if o.InboxLen == 0 {
		o.InboxLen = 65536
	}
	if o.CommandTimeout == 0 {
		o.CommandTimeout = 10 * time.Second
	}
	if o.Conn.Logger == nil {
		o.Conn.Logger = o.Logger
	}
	srv, err := wsconn.NewServer(o.Conn)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	h := &Hub{o: o, srv: srv, log: o.Logger, leeway: auth.DefaultLeeway,
		wake: make(chan struct{}, 1), timed: make(map[*client]struct{}), all: make(map[*client]struct{})}
	if lv, ok := o.Verifier.(interface{ Leeway() time.Duration }); ok {
		h.leeway = lv.Leeway()
	}
	h.maxBatch.Store(int64(o.MaxBatch))
	for i := range h.subs {
		h.subs[i] = make(map[*client]struct{})
		h.snap[i].Store(&[]*client{})
	}
	return h, nil
}

// Server returns the connection core, so that other front ends (the
// Aether V3 endpoint, ...) share its limits and its shutdown.
func (h *Hub) Server() *wsconn.Server { return h.srv }

// SetLimits replaces the connection limits and timeouts (see
// wsconn.Server.SetOptions for what applies to open connections) and the
// batch limit while the hub runs, as a reloaded config asks. Open
// connections stay open. Zero values mean the defaults, as in New.
func (h *Hub) SetLimits(conn wsconn.Options, maxBatch int) error {
	if maxBatch < 0 {
		return invalidOption("MaxBatch", "is negative (%d)", maxBatch) // as Options.Validate
	}
	if maxBatch == 0 {
		maxBatch = 50
	}
	if err := h.srv.SetOptions(conn); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	h.maxBatch.Store(int64(maxBatch))
	return nil
}

// Stats are the hub's counters: its connections' (shared with the other
// front ends on its Server) and the events its inbox dropped.
type Stats struct {
	wsconn.Stats
	// InboxDropped counts records and status updates dropped because the
	// hub's inbox was full (Options.InboxLen): the hub fell behind.
	InboxDropped uint64
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	return Stats{Stats: h.srv.Stats(), InboxDropped: h.inboxDropped.Load()}
}

// Connections returns the number of open connections.
func (h *Hub) Connections() int { return h.srv.Len() }

// Handler serves /ws and /ws/{telemetry,alerts,system,devices}; mount it
// at "/ws" and "/ws/".
func (h *Hub) Handler() http.Handler { return http.HandlerFunc(h.serveHTTP) }

// Publish hands a record to the hub for delivery to its subscribers. It
// never blocks. Call it with increasing seqs (the order of store.Append).
func (h *Hub) Publish(r store.Record) {
	h.enqueue(event{rec: r})
}

// PublishSystem hands the latest system status to the hub. It never
// blocks.
func (h *Hub) PublishSystem(s System) {
	h.sysMu.Lock()
	h.system = &s
	h.sysMu.Unlock()
	h.enqueue(event{sys: &s})
}

func (h *Hub) enqueue(e event) {
	h.inMu.Lock()
	if len(h.inbox) >= h.o.InboxLen {
		h.inbox = h.inbox[1:]
		h.dropped++
		h.inboxDropped.Add(1)
	}
	h.inbox = append(h.inbox, e)
	h.inMu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Run fans records out to clients until ctx ends; then it sends a close
// frame (1001) to every client, waits for them (at most
// Conn.ShutdownWait) and returns when every goroutine of the hub exited.
func (h *Hub) Run(ctx context.Context) error {
	tick := h.o.tick
	if tick == nil {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			h.srv.Shutdown(context.Background())
			return nil
		case <-h.wake:
			h.drain()
		case <-tick:
			h.tickTimed()
		}
	}
}

func (h *Hub) drain() {
	h.inMu.Lock()
	batch := h.inbox
	h.inbox = nil
	dropped := h.dropped
	h.dropped = 0
	h.inMu.Unlock()
	if dropped > 0 {
		h.log.Warn("hub: inbox full, oldest events dropped", "dropped", dropped)
	}
	// Concurrent publishers may race by a hair: deliver records in seq
	// order. Only the newest system status matters.
	recs := make([]*store.Record, 0, len(batch))
	var sys *System
	for i := range batch {
		if batch[i].sys != nil {
			sys = batch[i].sys
			continue
		}
		recs = append(recs, &batch[i].rec)
	}
	sortBySeq(recs)
	for _, r := range recs {
		h.fanRecord(r)
	}
	if sys != nil {
		h.fanSystem(*sys)
	}
}

// sortBySeq sorts records that are nearly in seq order already: an
// insertion sort, linear on such input, stable, and a fraction of the code
// of a generic sort.
func sortBySeq(recs []*store.Record) {
	for i := 1; i < len(recs); i++ {
		for j := i; j > 0 && recs[j].Seq < recs[j-1].Seq; j-- {
			recs[j], recs[j-1] = recs[j-1], recs[j]
		}
	}
}

func channelOf(k store.Kind) (channel, bool) {
	switch k {
	case store.KindTelemetry:
		return chTelemetry, true
	case store.KindAlert, store.KindAlertAck:
		return chAlerts, true
	case store.KindDeviceStatus:
		return chDevices, true
	}
	return 0, false
}

func (h *Hub) fanRecord(r *store.Record) {
	if r.Seq > h.lastSeq.Load() {
		h.lastSeq.Store(r.Seq)
	}
	ch, ok := channelOf(r.Kind)
	if !ok {
		h.log.Warn("hub: record of unknown kind not delivered", "seq", r.Seq, "kind", r.Kind)
		return
	}
	enc := &encoding{rec: r, at: time.Now()}
	if ch == chDevices {
		enc.info = h.deviceInfo(r.DeviceID)
	}
	for _, c := range *h.snap[ch].Load() {
		c.deliver(ch, r, enc)
	}
}

func (h *Hub) fanSystem(s System) {
	if s.ActiveConnections == 0 {
		s.ActiveConnections = h.Connections()
	}
	cache := map[string][]byte{}
	at := time.Now()
	for _, c := range *h.snap[chSystem].Load() {
		c.deliverSystem(s, cache, at)
	}
}

// tickTimed runs every second: it flushes frequency-limited
// subscriptions that are due and closes connections whose token expired.
func (h *Hub) tickTimed() {
	now := h.o.Now()
	h.mu.Lock()
	cs := make([]*client, 0, len(h.timed))
	for c := range h.timed {
		cs = append(cs, c)
	}
	all := make([]*client, 0, len(h.all))
	for c := range h.all {
		all = append(all, c)
	}
	h.mu.Unlock()
	at := time.Now()
	for _, c := range cs {
		c.flushDue(now, at)
	}
	for _, c := range all {
		c.expireBy(now)
	}
}

func (h *Hub) track(c *client, on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if on {
		h.all[c] = struct{}{}
	} else {
		delete(h.all, c)
	}
}

// deviceInfo is what Options.State knows of device id (nothing without
// a DeviceDirectory).
func (h *Hub) deviceInfo(id int) DeviceInfo {
	if d, ok := h.o.State.(DeviceDirectory); ok {
		if info, ok := d.Device(id); ok {
			return info
		}
	}
	return DeviceInfo{}
}

// activeAlerts is what a new alerts subscriber gets first.
func (h *Hub) activeAlerts() []store.Record {
	if as, ok := h.o.State.(AlertSource); ok {
		return as.ActiveAlerts()
	}
	return nil
}

// currentSystem is what a new system subscriber gets first.
func (h *Hub) currentSystem() (System, bool) {
	if h.o.State != nil {
		s := h.o.State.System()
		if s.ActiveConnections == 0 {
			s.ActiveConnections = h.Connections()
		}
		return s, true
	}
	h.sysMu.Lock()
	defer h.sysMu.Unlock()
	if h.system == nil {
		return System{}, false
	}
	s := *h.system
	if s.ActiveConnections == 0 {
		s.ActiveConnections = h.Connections()
	}
	return s, true
}

// index adds or removes c from the subscribers of ch.
func (h *Hub) index(c *client, ch channel, on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, had := h.subs[ch][c]
	if had == on {
		return
	}
	if on {
		h.subs[ch][c] = struct{}{}
	} else {
		delete(h.subs[ch], c)
	}
	list := make([]*client, 0, len(h.subs[ch]))
	for c := range h.subs[ch] {
		list = append(list, c)
	}
	h.snap[ch].Store(&list)
}

// forceCommit asks the store to commit now, for a resume waiting for
// records that are published but not committed yet. It reports whether a
// commit was made meanwhile (then the caller reads again). Concurrent
// callers share one Flush, and a new one starts at most once per
// forcedCommitGap of Options.Now; otherwise it returns false at once and
// the caller waits for the store's next commit, or asks again later.
func (h *Hub) forceCommit(ctx context.Context, fl flusher) bool {
	h.fcMu.Lock()
	call := h.fcCall
	if call == nil {
		now := h.o.Now()
		// A clock set back does not stop forced commits for a second.
		if since := now.Sub(h.fcLast); !h.fcLast.IsZero() && since >= 0 && since < forcedCommitGap {
			h.fcMu.Unlock()
			return false
		}
		h.fcLast = now
		call = &flushCall{done: make(chan struct{})}
		h.fcCall = call
		h.fcMu.Unlock()
		fctx, cancel := context.WithTimeout(ctx, h.o.CommitWait)
		call.err = fl.Flush(fctx)
		cancel()
		h.fcMu.Lock()
		h.fcCall = nil
		h.fcMu.Unlock()
		close(call.done)
		return call.err == nil
	}
	h.fcMu.Unlock()
	select {
	case <-call.done:
		return call.err == nil
	case <-ctx.Done():
		return false
	}
}

func (h *Hub) setTimed(c *client, on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if on {
		h.timed[c] = struct{}{}
	} else {
		delete(h.timed, c)
	}
}

// encoding caches a record's messages during its fan-out: one per metrics
// filter for telemetry, one for the other kinds.
type encoding struct {
	rec  *store.Record
	at   time.Time  // when the fan-out took the record: every copy's Message.At
	info DeviceInfo // device status records
	data []byte
	tel  map[string]*telemetryUpdate
	msgs map[string][]byte
}

func (e *encoding) bytes() []byte {
	if e.data == nil {
		if e.rec.Kind == store.KindAlert || e.rec.Kind == store.KindAlertAck {
			e.data = encodeAlert(e.rec)
		} else {
			e.data = encodeDeviceStatus(e.rec, e.info)
		}
	}
	return e.data
}

// telemetry returns the update for a subscription's metrics filter and its
// encoded form, or nil when the record has none of those metrics.
func (e *encoding) telemetry(metrics []string) (*telemetryUpdate, []byte) {
	key := ""
	for _, m := range metrics {
		key += m + "\x00"
	}
	if u, ok := e.tel[key]; ok {
		return u, e.msgs[key]
	}
	if e.tel == nil {
		e.tel = map[string]*telemetryUpdate{}
		e.msgs = map[string][]byte{}
	}
	u := newTelemetry(e.rec, metrics)
	var b []byte
	if len(u.Telemetry) == 0 {
		u = nil
	} else {
		b = mustJSON(u)
	}
	e.tel[key], e.msgs[key] = u, b
	return u, b
}
