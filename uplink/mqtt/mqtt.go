// Package mqtt forwards floorhub's records to an MQTT broker,
// store-and-forward: records are read from the store's delivery cursors,
// published at QoS 1, and the cursors advance only on PUBACK, so a record
// is never lost across outages, restarts and power cuts (it may arrive
// twice; receivers drop duplicates by seq).
//
// Topics live under <prefix>/<gateway_id>/; docs/mqtt.md documents every
// topic and payload. The package owns the connections: it dials them
// itself and speaks MQTT 3.1.1 over them with package mqttwire (one Conn
// per connection, clean session), and it owns reconnects: one loop,
// exponential backoff with full jitter, never giving up.
package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/floorhub/floorhub/command"
	"github.com/floorhub/floorhub/store"
	"github.com/floorhub/floorhub/uplink"
	"github.com/floorhub/floorhub/uplink/backoff"
	"github.com/floorhub/floorhub/uplink/mqtt/mqttwire"
	"github.com/floorhub/floorhub/uplink/sparkplug"
)

// The delivery cursors in the store. Events (alerts, device status, chat
// messages) and telemetry have their own, so that events overtake a
// telemetry backlog.
const (
	CursorEvents    = "mqtt.events"
	CursorTelemetry = "mqtt.telemetry"
)

// Sentinel errors.
var (
	// ErrOptions is wrapped by every error New returns for bad Options.
	ErrOptions = errors.New("mqtt: invalid options")
	// ErrRunning is returned by a second call of Run.
	ErrRunning = errors.New("mqtt: Run called more than once")
)

// FieldError is an Options field that Validate refuses. Field is the Go
// name of the field; it wraps ErrOptions.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return "mqtt: invalid options: " + e.Field + " " + e.Reason }

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
// default; URL and GatewayID are required. The yaml tags are the keys under
// uplink.mqtt in the agent's configuration.
type Options struct {
	// URL is the broker: tcp://host:1883 or mqtt://host (plain), ssl://,
	// tls:// or mqtts://host:8883 (TLS). The port defaults to 1883 / 8883.
	URL string `yaml:"url"`
	// ClientID is the MQTT client identifier. Default GatewayID.
	ClientID string `yaml:"client_id"`
	// GatewayID names the gateway in topics and payloads. Required; one
	// topic level (no '/', '+', '#').
	GatewayID string `yaml:"-"`
	// TopicPrefix is the first part of every topic. Default "floorhub".
	TopicPrefix string `yaml:"topic_prefix"`
	// Username and Password authenticate to the broker. Default none.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// CAFile is a PEM file of the CAs that sign the broker's certificate.
	// Default: the system's roots. TLS URLs only.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the PEM client certificate and key, for
	// brokers that authenticate clients by certificate. TLS URLs only.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// BatchSize is the most records in one telemetry message. Default 500.
	BatchSize int `yaml:"batch_size"`
	// MaxInFlight is the most telemetry messages published and not yet
	// acknowledged; it paces a backlog to the broker's speed. Default 8.
	MaxInFlight int `yaml:"max_inflight"`
	// MaxRate caps the telemetry records sent per second while draining a
	// backlog. Default 0: no cap beyond MaxInFlight.
	MaxRate float64 `yaml:"max_rate"`
	// KeepAlive is the MQTT keepalive: a ping goes out when nothing was
	// sent or received for this long, and a dead link is noticed within
	// this plus about 15 s (the 10 s ping timeout, checks up to a quarter
	// period late). Default 30 s; at least 1 s.
	KeepAlive time.Duration `yaml:"keepalive"`
	// HeartbeatInterval is the period of the heartbeat message. Default 30 s.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// ConnectTimeout bounds one connection attempt (TCP, TLS and CONNACK).
	// Default 10 s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// CommandTimeout bounds one command. Default 10 s.
	CommandTimeout time.Duration `yaml:"command_timeout"`
	// Format is the payload format of the telemetry: "json" (default:
	// batches of records on <prefix>/<gateway_id>/telemetry) or
	// "sparkplug_b" (Sparkplug B 3.0 births, deaths and data in the
	// spBv1.0 namespace; see docs/sparkplug.md). Alerts, device status,
	// the status, heartbeat and commands keep their JSON topics either way.
	Format string `yaml:"format"`
	// GroupID is the Sparkplug group id, the second topic level. Required
	// with format sparkplug_b; one topic level.
	GroupID string `yaml:"group_id"`
	// EdgeNodeID is the Sparkplug edge node id. Default GatewayID.
	EdgeNodeID string `yaml:"edge_node_id"`
	// PrimaryHostID, when set, is the host id of the Primary Host
	// Application (Ignition's, for example): the node watches
	// spBv1.0/STATE/<id> and is born, and sends data, only while that
	// host says it is online. Default none: the node is born at once.
	PrimaryHostID string `yaml:"primary_host_id"`
	// BdSeqFile is where the last bdSeq used is kept, so that it keeps
	// increasing across restarts (the agent uses
	// <data_dir>/sparkplug_bdseq). Default none: it starts at 0 at every
	// start.
	BdSeqFile string `yaml:"-"`
	// CursorInterval is the shortest time between two cursor updates
	// handed to the store, which commits them with its next group commit
	// (no write of their own); records acknowledged since the last commit
	// are sent again after a crash. Default 1 s.
	CursorInterval time.Duration `yaml:"cursor_interval"`
	// Version is the agent's version, sent in the birth message.
	Version string `yaml:"-"`
	// BootID is the kernel's boot id (the same across agent restarts
	// within one boot), sent in status and heartbeat messages and in
	// every record; mono_ns counts from that boot.
	BootID string `yaml:"-"`
	// RunID identifies this start of the agent (a new one at every
	// start), sent in status and heartbeat messages.
	RunID string `yaml:"-"`
	// Clock reports whether the wall clock is known to be right and its
	// offset from the boot's monotonic clock (status and heartbeat carry
	// both). Default: synced, offset unknown.
	Clock uplink.Clock `yaml:"-"`
	// Logger receives the uplink's log lines. Default slog.Default().
	Logger *slog.Logger `yaml:"-"`
	// Backoff tunes the reconnect delays (zero: 1 s initial, 60 s cap,
	// reset after a stable minute); tests inject its clock.
	Backoff backoff.Options `yaml:"-"`
}

// Uplink forwards a Source to an MQTT broker. Make one with New and call Run.
type Uplink struct {
	o      Options
	src    uplink.Source
	cmd    command.Commander
	broker *url.URL
	tls    *tls.Config
	log    *slog.Logger
	topic  topics

	events, telemetry *uplink.Stream
	sp                *spNode // format sparkplug_b only

	running   atomic.Bool
	connected atomic.Bool
	started   time.Time // set by Run

	// droppedCmdLog and refusedCmdLog hold "command queues full" and
	// "command refused" to one line a minute each: the central side can
	// send commands, bad ones too, as fast as it likes.
	droppedCmdLog, refusedCmdLog quietLog
}

type topics struct {
	telemetry, alerts, devices, chat, status, heartbeat, cmd, cmdResult string
	// alertAcks is apart from alerts so that a consumer of alerts never
	// mistakes an acknowledgement (whose alert is "active") for a raise.
	alertAcks string
}

// New validates o and returns an Uplink. It never dials: Run does, in the
// background, for as long as its context lives. cmd may be nil, in which
// case every command is answered as unknown.
func New(src uplink.Source, cmd command.Commander, o Options) (*Uplink, error) {
	if src == nil {
		return nil, fmt.Errorf("%w: nil Source", ErrOptions)
	}
	u := &Uplink{src: src, cmd: cmd}
	if err := u.setOptions(o); err != nil {
		return nil, err
	}
	telemetryKinds := []store.Kind{store.KindTelemetry}
	if u.sp != nil {
		// Device status rides with the telemetry, in seq order, so that
		// DDEATH and DBIRTH fall between the right data.
		telemetryKinds = append(telemetryKinds, store.KindDeviceStatus)
	}
	var err error
	u.events, err = uplink.NewStream(src, uplink.StreamOptions{
		Consumer:       CursorEvents,
		Kinds:          []store.Kind{store.KindAlert, store.KindDeviceStatus, store.KindChat, store.KindAlertAck},
		GatewayID:      u.o.GatewayID,
		BatchSize:      100,
		MaxInFlight:    4,
		CursorInterval: u.o.CursorInterval,
		Logger:         u.log,
	})
	if err != nil {
		return nil, err
	}
	u.telemetry, err = uplink.NewStream(src, uplink.StreamOptions{
		Consumer:       CursorTelemetry,
		Kinds:          telemetryKinds,
		GatewayID:      u.o.GatewayID,
		BatchSize:      u.o.BatchSize,
		MaxInFlight:    u.o.MaxInFlight,
		MaxRate:        u.o.MaxRate,
		CursorInterval: u.o.CursorInterval,
		Logger:         u.log,
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

func (u *Uplink) setOptions(o Options) error {
	bad := func(field, format string, args ...any) error {
		return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if o.URL == "" {
		return bad("URL", "is required")
	}
	b, err := url.Parse(o.URL)
	if err != nil {
		return bad("URL", "%q: %v", o.URL, err)
	}
	secure := false
	switch b.Scheme {
	case "tcp", "mqtt":
	case "ssl", "tls", "mqtts":
		secure = true
	default:
		return bad("URL", "%q: scheme must be tcp, mqtt, ssl, tls or mqtts", o.URL)
	}
	if b.Hostname() == "" {
		return bad("URL", "%q has no host", o.URL)
	}
	if b.Port() == "" {
		port := "1883"
		if secure {
			port = "8883"
		}
		b.Host = net.JoinHostPort(b.Hostname(), port)
	}
	if (b.Path != "" && b.Path != "/") || b.RawQuery != "" {
		return bad("URL", "%q: a broker URL has no path or query", o.URL)
	}
	if b.User != nil {
		return bad("URL", "%q: put credentials in Username and Password, not the URL", o.URL)
	}
	u.broker = b
	if err := topicLevel(o.GatewayID); err != nil {
		return bad("GatewayID", "%v", err)
	}
	if o.TopicPrefix == "" {
		o.TopicPrefix = "floorhub"
	}
	for _, l := range strings.Split(o.TopicPrefix, "/") {
		if err := topicLevel(l); err != nil {
			return bad("TopicPrefix", "%q: %v", o.TopicPrefix, err)
		}
	}
	if o.ClientID == "" {
		o.ClientID = o.GatewayID
	}
	if o.Password != "" && o.Username == "" {
		return bad("Password", "without Username")
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return bad("CertFile", "and KeyFile go together")
	}
	if !secure && (o.CAFile != "" || o.CertFile != "") {
		return bad("CAFile", "(and CertFile, KeyFile) need a TLS URL (ssl://, tls:// or mqtts://), not %q", o.URL)
	}
	if secure {
		if u.tls, err = tlsConfig(b.Hostname(), o.CAFile, o.CertFile, o.KeyFile); err != nil {
			return tlsError(err)
		}
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"KeepAlive", &o.KeepAlive, 30 * time.Second},
		{"HeartbeatInterval", &o.HeartbeatInterval, 30 * time.Second},
		{"ConnectTimeout", &o.ConnectTimeout, 10 * time.Second},
		{"CommandTimeout", &o.CommandTimeout, 10 * time.Second},
		{"CursorInterval", &o.CursorInterval, time.Second},
	} {
		if *d.v < 0 {
			return bad(d.name, "is negative (%v)", *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if o.KeepAlive < time.Second {
		return bad("KeepAlive", "%v is under 1 s (MQTT counts it in seconds)", o.KeepAlive)
	}
	if o.BatchSize < 0 || o.BatchSize > 100000 {
		return bad("BatchSize", "%d is not in [1, 100000]", o.BatchSize)
	}
	if o.BatchSize == 0 {
		o.BatchSize = 500
	}
	if o.MaxInFlight < 0 || o.MaxInFlight > 1000 {
		return bad("MaxInFlight", "%d is not in [1, 1000]", o.MaxInFlight)
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = 8
	}
	if o.MaxRate < 0 || math.IsNaN(o.MaxRate) || math.IsInf(o.MaxRate, 0) {
		return bad("MaxRate", "%v: want 0 (no cap) or a positive number", o.MaxRate)
	}
	switch o.Format {
	case "":
		o.Format = FormatJSON
	case FormatJSON, FormatSparkplugB:
	default:
		return bad("Format", "%q: want %s or %s", o.Format, FormatJSON, FormatSparkplugB)
	}
	if o.Format == FormatSparkplugB {
		if o.GroupID == "" {
			return bad("GroupID", "is required with format %s", FormatSparkplugB)
		}
		if o.EdgeNodeID == "" {
			o.EdgeNodeID = o.GatewayID
		}
		for _, f := range []struct{ name, v string }{{"GroupID", o.GroupID}, {"EdgeNodeID", o.EdgeNodeID}, {"PrimaryHostID", o.PrimaryHostID}} {
			if f.v == "" && f.name == "PrimaryHostID" {
				continue
			}
			if err := sparkplug.CheckID(f.v); err != nil {
				return bad(f.name, "%v", err)
			}
		}
		u.sp = &spNode{group: o.GroupID, node: o.EdgeNodeID, host: o.PrimaryHostID, bdSeqFile: o.BdSeqFile,
			n: sparkplug.NewNode(o.GroupID, o.EdgeNodeID)}
	} else {
		for _, f := range []struct{ name, v string }{{"GroupID", o.GroupID}, {"EdgeNodeID", o.EdgeNodeID}, {"PrimaryHostID", o.PrimaryHostID}} {
			if f.v != "" {
				return bad(f.name, "is only used with format %s (format is %s)", FormatSparkplugB, o.Format)
			}
		}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	u.o = o
	u.log = o.Logger.With("uplink", "mqtt")
	base := o.TopicPrefix + "/" + o.GatewayID + "/"
	u.topic = topics{
		telemetry: base + "telemetry",
		alerts:    base + "alerts",
		alertAcks: base + "alerts/ack",
		devices:   base + "devices",
		chat:      base + "chat",
		status:    base + "status",
		heartbeat: base + "heartbeat",
		cmd:       base + "cmd/",
		cmdResult: base + "cmd_result",
	}
	return nil
}

// tlsError names the option that uplink.TLSConfig's error is about.
func tlsError(err error) *FieldError {
	var te *uplink.TLSError
	if errors.As(err, &te) {
		return &FieldError{Field: te.Field, Reason: te.Reason}
	}
	return &FieldError{Field: "CertFile", Reason: err.Error()}
}

// topicLevel checks that s can be one level of a topic name.
func topicLevel(s string) error {
	switch {
	case s == "":
		return errors.New("is empty")
	case strings.ContainsAny(s, "/+#\x00"):
		return fmt.Errorf("%q contains '/', '+', '#' or NUL", s)
	}
	return nil
}

func tlsConfig(host, caFile, certFile, keyFile string) (*tls.Config, error) {
	c, err := uplink.TLSConfig(caFile, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	c.ServerName = host
	return c, nil
}

// Connected reports whether the uplink is connected to the broker now.
func (u *Uplink) Connected() bool { return u.connected.Load() }

// Run connects to the broker and forwards records until ctx ends; lost
// connections are retried forever with backoff. It returns nil once ctx has
// ended and everything it started has exited; on the way out it waits
// briefly for outstanding acknowledgements and publishes the offline status.
// Run may be called once.
func (u *Uplink) Run(ctx context.Context) error {
	if !u.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	u.started = time.Now()
	b := backoff.New(u.o.Backoff)
	var lastWarn time.Time
	failures := 0
	for {
		connected, err := u.session(ctx, b)
		if ctx.Err() != nil {
			return nil
		}
		if connected {
			failures = 0
		}
		failures++
		// Rate-limited: a gateway without network for a week must not
		// fill its log with one line per attempt.
		if failures == 1 || time.Since(lastWarn) >= 10*time.Minute {
			u.log.Warn("mqtt: disconnected; retrying with backoff", "broker", u.broker.Redacted(), "attempts", failures, "err", err)
			lastWarn = time.Now()
		} else {
			u.log.Debug("mqtt: connection attempt failed", "attempts", failures, "err", err)
		}
		if b.Wait(ctx) != nil {
			return nil
		}
	}
}

// session makes one connection and serves it until it drops or ctx ends.
// connected tells whether the connection was established.
func (u *Uplink) session(ctx context.Context, b *backoff.Backoff) (connected bool, err error) {
	c, err := u.connect(ctx)
	if err != nil {
		return false, err
	}
	if ctx.Err() != nil {
		// Connected just as the shutdown came: leave without the will.
		c.Disconnect(250 * time.Millisecond)
		return true, nil
	}
	b.Connected()
	return true, u.serve(ctx, c)
}

// connect dials the broker and connects over a new mqttwire.Conn (one per
// connection: no state carries over). ConnectTimeout bounds the whole
// (TCP, TLS and CONNACK), and a shutdown stops it.
func (u *Uplink) connect(ctx context.Context) (*mqttwire.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, u.o.ConnectTimeout)
	defer cancel()
	o := mqttwire.Options{
		ClientID:     u.o.ClientID,
		Username:     u.o.Username,
		Password:     u.o.Password,
		KeepAlive:    u.o.KeepAlive,
		PingTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
		// Both streams' windows, and room for heartbeats, command
		// results, births and the status beyond them.
		MaxInFlight: u.o.MaxInFlight + 4 + 64,
		// Commands and STATE are small; a larger PUBLISH is skipped and
		// refused (runCommand, spMessage).
		MaxPacketSize: maxPacket,
	}
	if u.sp != nil {
		// The will is the NDEATH (Sparkplug allows one will); the JSON
		// status then has none, only the goodbye on shutdown.
		death := u.spDeath(u.nextBdSeq())
		o.Will = &mqttwire.Message{Topic: death.Topic, Payload: death.Payload, QoS: 1}
	} else {
		o.Will = &mqttwire.Message{Topic: u.topic.status, Payload: u.statusPayload("offline", "connection lost"), QoS: 1, Retained: true}
	}
	nc, err := u.dial(cctx)
	if err == nil {
		var c *mqttwire.Conn
		if c, err = mqttwire.Connect(cctx, nc, o); err == nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("mqtt: connecting to %s: %w", u.broker.Redacted(), err)
}

// serve runs one connection: birth, command subscription, the two
// streams, heartbeats and commands, until the connection drops or ctx
// ends. On a clean shutdown it publishes the offline status itself.
func (u *Uplink) serve(ctx context.Context, c *mqttwire.Conn) error {
	u.connected.Store(true)
	defer u.connected.Store(false)
	u.log.Info("mqtt: connected", "broker", u.broker.Redacted(), "client_id", u.o.ClientID)

	// Birth first: the central side learns of a restart (and of the
	// skipped seqs) before any record of this connection.
	birth := c.Publish(ctx, u.topic.status, 1, true, u.statusPayload("online", ""))
	if err := waitToken(ctx, birth, u.o.ConnectTimeout); err != nil {
		u.disconnect(ctx, c)
		return fmt.Errorf("mqtt: publishing birth: %w", err)
	}

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmds := make(chan mqttwire.Message, 32)
	busy := make(chan mqttwire.Message, 256)
	subCtx, subCancel := context.WithTimeout(ctx, u.o.ConnectTimeout)
	err := c.Subscribe(subCtx, []mqttwire.Subscription{{Filter: u.topic.cmd + "+", QoS: 1}}, func(m mqttwire.Message) {
		// Called on the connection's reading goroutine: never block it.
		select {
		case cmds <- m:
			return
		default:
		}
		select {
		case busy <- m:
		default:
			if ok, n := u.droppedCmdLog.allow(time.Now()); ok {
				u.log.Warn("mqtt: command queues full; command dropped without a result", "topic", m.Topic, "suppressed", n)
			}
		}
	})
	subCancel()
	if err != nil {
		u.disconnect(ctx, c)
		return fmt.Errorf("mqtt: subscribing to commands: %w", err)
	}

	var spIn *spInbox
	if u.sp != nil {
		spIn = newSpInbox()
		if err := u.spSubscribe(ctx, c, spIn); err != nil {
			u.disconnect(ctx, c)
			return fmt.Errorf("mqtt: sparkplug: subscribing to NCMD, DCMD and STATE: %w", err)
		}
	}

	var wg sync.WaitGroup
	var errMu sync.Mutex
	var sessErr error
	fail := func(err error) {
		errMu.Lock()
		if sessErr == nil {
			sessErr = err
		}
		errMu.Unlock()
		cancel()
	}
	snd := sender{ctx: sctx, c: c, t: &u.topic}
	var telSnd uplink.Sender = snd
	born := make(chan struct{}) // the telemetry waits for the NBIRTH
	if u.sp != nil {
		telSnd = spSender{snd, u}
		wg.Add(1)
		go func() {
			defer wg.Done()
			u.spCommands(sctx, c, spIn, born, fail)
		}()
	} else {
		close(born)
	}
	eventsCaughtUp := make(chan struct{})
	wg.Add(6)
	go func() {
		defer wg.Done()
		if err := u.events.Run(sctx, snd, func() { close(eventsCaughtUp) }); err != nil {
			fail(err)
		}
	}()
	go func() {
		defer wg.Done()
		// Events that piled up while offline go before the telemetry backlog.
		for _, ch := range []chan struct{}{eventsCaughtUp, born} {
			select {
			case <-ch:
			case <-sctx.Done():
				return
			}
		}
		if err := u.telemetry.Run(sctx, telSnd, nil); err != nil {
			fail(err)
		}
	}()
	go func() {
		defer wg.Done()
		u.heartbeats(sctx, c)
	}()
	go func() {
		defer wg.Done()
		u.commands(sctx, c, cmds)
	}()
	go func() {
		defer wg.Done()
		u.refuseBusy(sctx, c, busy)
	}()
	go func() {
		defer wg.Done()
		select {
		case <-c.Done():
			fail(fmt.Errorf("mqtt: %w", c.Err()))
		case <-sctx.Done():
		}
	}()
	wg.Wait()
	u.disconnect(ctx, c)
	return sessErr
}

// disconnect ends the connection. On shutdown (ctx ended) it first
// replaces the retained status with "offline": the broker does not send
// the will after a DISCONNECT.
func (u *Uplink) disconnect(ctx context.Context, c *mqttwire.Conn) {
	if c.Err() != nil {
		c.Close()
		return
	}
	if u.sp != nil {
		// Leaving on purpose: the broker does not send the will after a
		// DISCONNECT, so the node says its NDEATH itself. Disconnect
		// writes the DISCONNECT before it closes the socket (else the
		// broker would send the will: a second NDEATH).
		u.sp.mu.Lock()
		death := u.sp.n.Death(u.sp.bdSeq, time.Now())
		u.sp.mu.Unlock()
		_ = publishWait(c, death.Topic, false, death.Payload, 2*time.Second)
	}
	if ctx.Err() == nil {
		c.Disconnect(250 * time.Millisecond)
		return
	}
	_ = publishWait(c, u.topic.status, true, u.statusPayload("offline", "shutdown"), 2*time.Second)
	c.Disconnect(250 * time.Millisecond)
	u.log.Info("mqtt: disconnected (shutdown)")
}

// dial opens the network connection, so that ctx bounds and stops it and
// the TLS options are ours.
func (u *Uplink) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{KeepAlive: 30 * time.Second}
	if u.tls == nil {
		return d.DialContext(ctx, "tcp", u.broker.Host)
	}
	td := &tls.Dialer{NetDialer: d, Config: u.tls}
	return td.DialContext(ctx, "tcp", u.broker.Host)
}

// publishWait publishes at QoS 1 and waits for the PUBACK, at most d.
func publishWait(c *mqttwire.Conn, topic string, retain bool, payload []byte, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return waitToken(ctx, c.Publish(ctx, topic, 1, retain, payload), d)
}

// waitToken waits for t, at most d, and not beyond ctx.
func waitToken(ctx context.Context, t *mqttwire.Token, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-t.Done():
		return t.Error()
	case <-timer.C:
		return fmt.Errorf("no acknowledgement within %v", d)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sender publishes the Stream's messages at QoS 1; the Token is the Ack.
// ctx is the session's: its end stops a Publish waiting for the window.
type sender struct {
	ctx context.Context
	c   *mqttwire.Conn
	t   *topics
}

func (s sender) Send(k store.Kind, payload []byte) uplink.Ack {
	topic := s.t.telemetry
	switch k {
	case store.KindAlert:
		topic = s.t.alerts
	case store.KindAlertAck:
		topic = s.t.alertAcks
	case store.KindDeviceStatus:
		topic = s.t.devices
	case store.KindChat:
		topic = s.t.chat
	}
	return s.c.Publish(s.ctx, topic, 1, false, payload)
}
