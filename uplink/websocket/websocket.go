// Package websocket forwards floorhub's records to a central server over a
// WebSocket that speaks the Aether V3 envelope (package aether): the agent
// is one client of the central /v3/ws/group/{site}/client/{gateway}.
//
// Delivery is at least once, from the store's "websocket" cursor: records
// go out as msg envelopes to the gateway's group, the center acknowledges
// with a cmd ACK {"seq": N} ("I hold every seq <= N you sent"), and only
// then does the cursor advance. What was not acknowledged when a connection
// dropped is sent again on the next one. An alert or device status that
// would wait behind a draining backlog also goes out at once as a LIVE
// preview, never acknowledged (Uplink.Publish). The package owns reconnects:
// exponential backoff with full jitter (uplink/backoff), never giving up.
// docs/aether.md documents every message.
package websocket

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	gws "github.com/gorilla/websocket"

	"github.com/floorhub/floorhub/aether"
	"github.com/floorhub/floorhub/command"
	"github.com/floorhub/floorhub/store"
	"github.com/floorhub/floorhub/uplink"
	"github.com/floorhub/floorhub/uplink/backoff"
)

// Cursor is the name of the store's delivery cursor of this uplink,
// independent of the MQTT uplink's.
const Cursor = "websocket"

// Heartbeat interval bounds (the seed's 30–60 s).
const (
	MinHeartbeat     = 30 * time.Second
	MaxHeartbeat     = 60 * time.Second
	DefaultHeartbeat = 30 * time.Second
)

// Sentinel errors.
var (
	// ErrOptions is wrapped by every error New returns for bad Options.
	ErrOptions = errors.New("websocket: invalid options")
	// ErrRunning is returned by a second call of Run.
	ErrRunning = errors.New("websocket: Run called more than once")
	// ErrAckTimeout ends a connection on which records stayed
	// unacknowledged for longer than Options.AckTimeout.
	ErrAckTimeout = errors.New("websocket: records not acknowledged in time")
	// ErrConnLost fails the acknowledgements outstanding when a
	// connection ends; the records are sent again on the next one.
	ErrConnLost = errors.New("websocket: connection lost")
)

// FieldError is an Options field that Validate refuses. Field is the Go
// name of the field; it wraps ErrOptions.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return "websocket: invalid options: " + e.Field + " " + e.Reason }

// Unwrap makes errors.Is(err, ErrOptions) true.
func (e *FieldError) Unwrap() error { return ErrOptions }

// Validate reports the first field of o that New would refuse, as a
// *FieldError; it loads the TLS files as New does. New runs exactly these
// checks, and so does the agent's config check.
func (o *Options) Validate() error {
	var u Uplink
	return u.setOptions(*o)
}

// Options configures an Uplink. The zero value of each field means its
// default; URL is required. The yaml tags are the keys under
// uplink.websocket in the agent's configuration.
type Options struct {
	// URL is the central endpoint,
	// wss://central/v3/ws/group/{site}/client/{gateway} (ws:// allowed).
	// Its last path segments give the group and the client id.
	URL string `yaml:"url"`
	// Token is sent as "Authorization: Bearer <token>". Default none.
	Token string `yaml:"token"`
	// CAFile is a PEM file of the CAs that sign the server's certificate.
	// Default: the system's roots. wss only.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// servers that authenticate clients by certificate. wss only.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// InsecureSkipVerify turns off the server certificate check. For tests
	// only: it lets anyone in the path read and forge the traffic.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// HeartbeatInterval is the period of heartbeat messages (and pings).
	// Default 30 s; valid 30 s to 60 s.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// AckTimeout is how long records may stay unacknowledged before the
	// connection is considered broken and made again. Default 2 x
	// HeartbeatInterval.
	AckTimeout time.Duration `yaml:"ack_timeout"`
	// BatchSize is the most records in one message. Default 100 (about
	// 25 KB of JSON for telemetry).
	BatchSize int `yaml:"batch_size"`
	// MaxInFlight is the most record messages sent and not yet
	// acknowledged. Default 8.
	MaxInFlight int `yaml:"max_inflight"`
	// MaxMessageBytes caps a message received from the server, in bytes.
	// Default 64 KiB.
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
	// DialTimeout bounds one connection attempt (TCP, TLS, upgrade).
	// Default 10 s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// WriteWait bounds one write to the server. Default 10 s.
	WriteWait time.Duration `yaml:"write_wait"`
	// CommandTimeout bounds one command run for the server. Default 10 s.
	CommandTimeout time.Duration `yaml:"command_timeout"`
	// CursorInterval is the shortest time between two cursor updates
	// handed to the store, which commits them with its next group commit
	// (no write of their own); records acknowledged since the last commit
	// are sent again after a crash. Default 1 s.
	CursorInterval time.Duration `yaml:"cursor_interval"`
	// GatewayID names the gateway in payloads. Default: the client id of
	// URL; if both are set they must be equal.
	GatewayID string `yaml:"-"`
	// Version is the agent's version, BootID the kernel's boot id (the
	// same across agent restarts within one boot) and RunID this start
	// of the agent's id, all sent in HELLO and heartbeats.
	Version string `yaml:"-"`
	BootID  string `yaml:"-"`
	RunID   string `yaml:"-"`
	// Clock reports whether the wall clock is known to be right and its
	// offset from the boot's monotonic clock (HELLO and heartbeats carry
	// both). Default: synced, offset unknown.
	Clock uplink.Clock `yaml:"-"`
	// Logger receives the uplink's log lines. Default slog.Default().
	Logger *slog.Logger `yaml:"-"`
	// Backoff tunes the reconnect delays (zero: 1 s initial, 60 s cap,
	// reset after a stable minute), the same as the MQTT uplink's.
	Backoff backoff.Options `yaml:"-"`

	// heartbeat overrides HeartbeatInterval without its bounds; tests only.
	heartbeat time.Duration
}

// Uplink forwards a Source to a central Aether V3 server. Make one with New
// and call Run once.
type Uplink struct {
	o      Options
	src    uplink.Source
	cmd    command.Commander
	url    string
	group  string
	self   string
	header http.Header
	dialer *gws.Dialer
	log    *slog.Logger
	stream *uplink.Stream

	running   atomic.Bool
	connected atomic.Bool
	conn      atomic.Pointer[conn] // the connection records go over, nil between
	started   time.Time
}

// liveQueue bounds the LIVE previews waiting for the writer; beyond it
// previews are dropped (their records still come in RECORDS).
const liveQueue = 64

// Publish is told of every record as it is stored (the agent calls it under
// its lock: it never blocks). An alert, acknowledgement or device status stored while a
// backlog drains (Stream.Behind) is sent at once as a LIVE preview, so
// that the center learns of it
// without waiting for the backlog: live alerts go first, as on MQTT, while
// RECORDS keep the one seq order their ACK relies on. A preview is not
// acknowledged and the record comes again in RECORDS (docs/aether.md).
func (u *Uplink) Publish(r store.Record) {
	if r.Kind != store.KindAlert && r.Kind != store.KindDeviceStatus && r.Kind != store.KindAlertAck {
		return
	}
	c := u.conn.Load()
	if c == nil || !u.stream.Behind() {
		return
	}
	frame := recordsFrame(aether.CmdLive, r.Kind, uplink.AppendBatch(nil, u.o.GatewayID, []store.Record{r}))
	select {
	case c.live <- frame:
	default:
		u.log.Debug("websocket uplink: LIVE preview dropped (queue full); the record follows in RECORDS", "seq", r.Seq)
	}
}

// New validates o and returns an Uplink; it never dials. cmd may be nil
// (every command is then answered unknown_command).
func New(src uplink.Source, cmd command.Commander, o Options) (*Uplink, error) {
	if src == nil {
		return nil, fmt.Errorf("%w: nil Source", ErrOptions)
	}
	u := &Uplink{src: src, cmd: cmd}
	if err := u.setOptions(o); err != nil {
		return nil, err
	}
	var err error
	u.stream, err = uplink.NewStream(src, uplink.StreamOptions{
		Consumer:       Cursor,
		GatewayID:      u.o.GatewayID,
		BatchSize:      u.o.BatchSize,
		MaxInFlight:    u.o.MaxInFlight,
		CursorInterval: u.o.CursorInterval,
		Logger:         u.log,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOptions, err)
	}
	return u, nil
}

func (u *Uplink) setOptions(o Options) error {
	bad := func(field, format string, args ...any) error {
		return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	p, err := url.Parse(o.URL)
	switch {
	case o.URL == "":
		return bad("URL", "is required")
	case err != nil:
		return bad("URL", "%v", err)
	case p.Scheme != "ws" && p.Scheme != "wss":
		return bad("URL", "%q: scheme must be ws or wss", o.URL)
	case p.Host == "":
		return bad("URL", "%q: no host", o.URL)
	}
	// .../v3/ws/group/{group}/client/{client}
	seg := strings.Split(strings.TrimSuffix(p.Path, "/"), "/")
	n := len(seg)
	if n < 4 || seg[n-4] != "group" || seg[n-2] != "client" {
		return bad("URL", "%q: path must end in /group/{group_id}/client/{client_id}", o.URL)
	}
	u.group, u.self = seg[n-3], seg[n-1]
	if err := aether.ValidID(u.group); err != nil {
		return bad("URL", "group id: %v", err)
	}
	if err := aether.ValidID(u.self); err != nil {
		return bad("URL", "client id: %v", err)
	}
	if o.GatewayID == "" {
		o.GatewayID = u.self
	} else if o.GatewayID != u.self {
		return bad("GatewayID", "%q differs from the URL's client id %q", o.GatewayID, u.self)
	}
	switch {
	case o.HeartbeatInterval == 0:
		o.HeartbeatInterval = DefaultHeartbeat
	case o.HeartbeatInterval < MinHeartbeat || o.HeartbeatInterval > MaxHeartbeat:
		return bad("HeartbeatInterval", "%v: must be between %v and %v", o.HeartbeatInterval, MinHeartbeat, MaxHeartbeat)
	}
	if o.heartbeat == 0 {
		o.heartbeat = o.HeartbeatInterval
	}
	for _, d := range []struct {
		p    *time.Duration
		def  time.Duration
		name string
	}{
		{&o.AckTimeout, 2 * o.heartbeat, "AckTimeout"},
		{&o.DialTimeout, 10 * time.Second, "DialTimeout"},
		{&o.WriteWait, 10 * time.Second, "WriteWait"},
		{&o.CommandTimeout, 10 * time.Second, "CommandTimeout"},
		{&o.CursorInterval, time.Second, "CursorInterval"},
	} {
		if *d.p < 0 {
			return bad(d.name, "%v is negative", *d.p)
		}
		if *d.p == 0 {
			*d.p = d.def
		}
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"BatchSize", int64(o.BatchSize)}, {"MaxInFlight", int64(o.MaxInFlight)}, {"MaxMessageBytes", o.MaxMessageBytes}} {
		if f.v < 0 {
			return bad(f.name, "%d is negative", f.v)
		}
	}
	if o.BatchSize == 0 {
		o.BatchSize = 100
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = 8
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = 64 << 10
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	tlsConf, err := tlsConfig(p.Scheme == "wss", &o)
	if err != nil {
		return err
	}
	u.o, u.url, u.log = o, o.URL, o.Logger
	u.header = http.Header{}
	if o.Token != "" {
		u.header.Set("Authorization", "Bearer "+o.Token)
	}
	u.dialer = &gws.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: o.DialTimeout,
		TLSClientConfig:  tlsConf,
	}
	return nil
}

// tlsConfig loads the CA and client certificate files now, so that a bad
// path fails at start-up instead of at every reconnect.
func tlsConfig(secure bool, o *Options) (*tls.Config, error) {
	if !secure {
		field := ""
		switch {
		case o.CAFile != "":
			field = "CAFile"
		case o.CertFile != "":
			field = "CertFile"
		case o.KeyFile != "":
			field = "KeyFile"
		case o.InsecureSkipVerify:
			field = "InsecureSkipVerify"
		}
		if field != "" {
			return nil, &FieldError{Field: field, Reason: "needs a wss:// URL (so do CAFile, CertFile, KeyFile and InsecureSkipVerify)"}
		}
		return nil, nil
	}
	c, err := uplink.TLSConfig(o.CAFile, o.CertFile, o.KeyFile)
	if err != nil {
		return nil, tlsError(err)
	}
	c.InsecureSkipVerify = o.InsecureSkipVerify
	return c, nil
}

// tlsError names the option that uplink.TLSConfig's error is about.
func tlsError(err error) *FieldError {
	var te *uplink.TLSError
	if errors.As(err, &te) {
		return &FieldError{Field: te.Field, Reason: te.Reason}
	}
	return &FieldError{Field: "CertFile", Reason: err.Error()}
}

// Connected reports whether a connection to the server is up.
func (u *Uplink) Connected() bool { return u.connected.Load() }

// Acked returns the seq up to which the server acknowledged every record.
func (u *Uplink) Acked() uint64 { return u.stream.Acked() }

// Run connects and forwards records until ctx ends, reconnecting forever
// with backoff. It returns nil once ctx has ended and every goroutine it
// started has exited; on the way out it waits briefly (2 s) for
// outstanding acknowledgements and writes the cursor. Run may be called
// once.
func (u *Uplink) Run(ctx context.Context) error {
	if !u.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	u.started = time.Now()
	b := backoff.New(u.o.Backoff)
	var lastWarn time.Time
	for {
		err := u.session(ctx, b)
		if ctx.Err() != nil {
			return nil
		}
		// One line per failure would flood the log during a long outage.
		if time.Since(lastWarn) >= time.Minute || b.Attempt() == 0 {
			u.log.Warn("websocket uplink: connection failed; retrying with backoff", "url", u.url, "err", err, "attempt", b.Attempt()+1)
			lastWarn = time.Now()
		}
		if b.Wait(ctx) != nil {
			return nil
		}
	}
}
