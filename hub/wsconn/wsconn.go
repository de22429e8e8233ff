// Package wsconn is the connection core that every WebSocket front end of the
// hub sits on: admission (origin, global, per-address and per-user limits),
// one bounded send queue and at most one writer goroutine per connection,
// a write delay that lets fan-out messages go out together in one write,
// coalescing of replaceable messages, size and rate limits on what clients
// send, ping/pong deadlines, an authentication deadline, and a graceful
// shutdown that sends close frames to every client.
//
// gorilla/websocket answers the upgrade; the core reads and writes the
// frames itself (RFC 6455, permessage-deflate without context takeover),
// so that an idle connection costs one small goroutine stack and its
// state: the reader waits for bytes with a shallow stack and no buffer,
// and handles them on a short goroutine of its own.
//
// A front end checks what it must before the upgrade, then calls
// Server.Serve with a function that builds its per-connection Session. The
// core calls the Session for every inbound text message, in order, from one
// goroutine; the Session answers with Conn.Send (never blocks) or
// Conn.SendWait (waits for room), and ends the connection with Conn.Close.
package wsconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Close codes the core sends. Front ends use the same ones.
const (
	// CloseGoingAway (1001) is sent to every client when the server shuts down.
	CloseGoingAway = websocket.CloseGoingAway
	// ClosePolicy (1008) ends a connection that failed authentication,
	// did not authenticate in time, or kept exceeding the message rate.
	ClosePolicy = websocket.ClosePolicyViolation
	// CloseTooBig (1009) ends a connection that sent a message larger than
	// Options.MaxMessageBytes.
	CloseTooBig = websocket.CloseMessageTooBig
	// CloseSlowConsumer (1013, "try again later") ends a connection whose
	// send queue overflowed with messages that may not be dropped. The
	// reason names the last seq written, so the client can resume.
	CloseSlowConsumer = websocket.CloseTryAgainLater

	closeNormal      = websocket.CloseNormalClosure           // 1000: the answer to a close frame without a code
	closeProtocol    = websocket.CloseProtocolError           // 1002: a frame that breaks RFC 6455
	closeUnsupported = websocket.CloseUnsupportedData         // 1003: a binary message to a text-only front end
	closeInvalidData = websocket.CloseInvalidFramePayloadData // 1007: a close reason that is not UTF-8
)

// Errors.
var (
	ErrClosed         = errors.New("wsconn: connection closed")
	ErrOverflow       = errors.New("wsconn: send queue overflow")
	ErrTooManyForUser = errors.New("wsconn: too many connections for this user")
	ErrUserSet        = errors.New("wsconn: connection already belongs to another user")
	// ErrOptions is wrapped by every *FieldError of Options.Validate.
	ErrOptions = errors.New("wsconn: invalid options")
)

// FieldError is an Options field that Validate refuses. Field is the Go
// name of the field; it wraps ErrOptions.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return "wsconn: invalid options: " + e.Field + " " + e.Reason }

// Unwrap makes errors.Is(err, ErrOptions) true.
func (e *FieldError) Unwrap() error { return ErrOptions }

// Options configures a Server. The zero value of every field means its
// default; for the count limits a negative value means "no limit".
type Options struct {
	// MaxMessageBytes caps one inbound message, in bytes. A larger one
	// closes the connection with 1009. Default 1024.
	MaxMessageBytes int64
	// MessagesPerSecond is the sustained inbound rate allowed per
	// connection, in messages per second, with a burst of the same size.
	// Default 100; negative for no limit.
	MessagesPerSecond int
	// RateGrace is how many messages in a row may be refused for the rate
	// before the connection is closed with 1008. Default MessagesPerSecond.
	RateGrace int
	// MaxConns caps the open connections of the server; beyond it the
	// upgrade is refused with HTTP 503. Default 1000.
	MaxConns int
	// MaxConnsPerUser caps the connections of one authenticated user.
	// Default 100.
	MaxConnsPerUser int
	// ConnectsPerMinute caps new connections per client address, per
	// minute; beyond it the upgrade is refused with HTTP 429. Default 10.
	ConnectsPerMinute int
	// AllowedOrigins lists the browser origins allowed besides the
	// server's own ("https://dash.example.com" or just a host
	// "dash.example.com:8000"); "*" allows any. Requests without an Origin
	// header (non-browser clients) are always allowed. Default: same
	// origin only.
	AllowedOrigins []string
	// AuthTimeout is how long a new connection may stay unauthenticated
	// before it is closed with 1008. Default 10 s.
	AuthTimeout time.Duration
	// PingInterval is the period of the server's pings. Default 25 s.
	// Negative: no pings and, once the connection is authenticated, no
	// read deadline, for a front end whose protocol has a heartbeat of
	// its own (Engine.IO). SetOptions may change the period but not turn
	// pings on or off.
	PingInterval time.Duration
	// PongWait is how long after a ping the peer may stay silent before it
	// is dropped. Default 10 s.
	PongWait time.Duration
	// WriteWait bounds one write to the peer; a peer that accepts nothing
	// for this long is dropped. Default 10 s.
	WriteWait time.Duration
	// QueueLen is how many messages may wait to be written to one
	// connection before it counts as behind. A message that may not be
	// replaced (Message.Key zero) arriving when QueueLen wait closes the
	// connection with 1013 if its writes are stalled: none completed for
	// StallTimeout since the queue was first found full. A writer that is
	// merely waiting for the CPU is not stalled: the queue then grows past
	// QueueLen, up to QueueMax. Default 256.
	QueueLen int
	// QueueMax bounds the messages waiting for one connection whatever
	// its progress: beyond it the connection is closed with 1013 (a
	// client that writes progress slower than messages arrive falls
	// behind without end). Default 4 × QueueLen; at least QueueLen.
	QueueMax int
	// QueueBytes bounds the bytes of the messages waiting for one
	// connection whatever its progress: a message that would take them
	// past it closes the connection with 1013, as QueueMax does (one
	// larger than QueueBytes still goes when nothing waits). A few large
	// messages to a client that stopped reading would otherwise hold far
	// more memory than QueueMax small ones. Default 0: no bound but
	// QueueMax.
	QueueBytes int64
	// StallTimeout is how long a connection with QueueLen messages
	// waiting may complete no write before it is slow (closed with 1013,
	// measured with Now). A peer whose write blocks for WriteWait is
	// dropped anyway. Default 5 s.
	StallTimeout time.Duration
	// CoalesceAfter is how many messages must be waiting before a
	// replaceable message (Message.Key) replaces its waiting predecessor:
	// a client that keeps up sees every message, one that falls behind
	// gets the latest. Default 64 (a client that is merely descheduled
	// for a moment still gets every message), at most QueueLen/2.
	CoalesceAfter int
	// CloseGrace is how long to wait for the peer's close frame after
	// sending ours before dropping the TCP connection. Default 1 s.
	CloseGrace time.Duration
	// ShutdownWait bounds Shutdown's wait for clients to acknowledge the
	// close frames; then the remaining connections are dropped. Default 5 s.
	ShutdownWait time.Duration
	// ReadBufferSize is the size of the buffers reads use, in bytes. A
	// connection takes one from a pool once bytes have arrived, for the
	// time it handles them: an idle connection holds none (on a plain TCP
	// socket; through TLS or another net.Conn, one is held while the read
	// waits). Default 512:
	// what clients send is small (auth, subscribe, ping); a larger
	// message is still read correctly, in more than one read.
	ReadBufferSize int
	// SendBufferBytes sets each connection's kernel send buffer
	// (SO_SNDBUF), in bytes. It bounds what a client that stopped reading
	// holds in the kernel, so that its messages wait (and coalesce, or
	// overflow) in the queue instead; left to autotuning, the kernel keeps
	// taking them, up to megabytes per client, and appending to such long
	// unsent queues measurably slowed every client's writes (BENCHMARKS.md).
	// Default 64 KiB (Linux doubles it for its bookkeeping); negative
	// leaves the kernel's autotuning.
	SendBufferBytes int
	// WriteDelay is how long a message marked Message.Delay (fan-out)
	// may wait before its connection's writer starts, so that the
	// messages queued meanwhile go out in one write (one system call)
	// instead of one write each: on loopback and on a Pi the write is
	// most of a delivery's cost. The first delayed message produced
	// (Message.At) after the last window's end opens a window of
	// WriteDelay, the same for every connection; the delayed messages
	// produced in it are written at its end, so a message fanned out to
	// many clients reaches them together. It adds up to WriteDelay to a
	// fan-out message's latency; a message without
	// Delay (a reply, a ping, the close frame) is written at once, with
	// whatever waits before it.
	// The writer also starts at once when a delayed queue reaches half
	// of CoalesceAfter, so a client is never taken for slow, nor its
	// messages coalesced, because of the delay. Default 5 ms; negative
	// writes every message at once.
	WriteDelay time.Duration
	// Compression negotiates permessage-deflate (RFC 7692, without
	// context takeover) with clients that offer it, and then compresses
	// every message written to them. It costs CPU and memory per write;
	// off by default.
	Compression bool
	// Logger receives connection-level log lines. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock of the rate limits and of StallTimeout. Default
	// time.Now.
	Now func() time.Time

	// beforeWrite, when set, runs in the writer before each write: tests
	// hold a writer there as if it were waiting for the CPU.
	beforeWrite func()
	// directWrote, when set, is told what each direct write (tryDirect)
	// wrote of a frame of size bytes.
	directWrote func(n, size int)
	// afterFunc arms the write delay's timer. Default: time.AfterFunc;
	// tests fire it by hand.
	afterFunc func(time.Duration, func()) timer
}

// DefaultWriteDelay is Options.WriteDelay's default: long enough to gather
// the messages that are produced together (the agent reads every device of
// one interval at the same moment, so their readings arrive within a
// millisecond or two), short enough to add little latency (BENCHMARKS.md,
// issue 14).
const DefaultWriteDelay = 5 * time.Millisecond

// timer is what a Conn needs of a *time.Timer.
type timer interface {
	Stop() bool
	Reset(time.Duration) bool
}

// delayFlush is the queue length at which a delayed message starts the
// writer at once (see WriteDelay).
func (o *Options) delayFlush() int { return max(o.CoalesceAfter/2, 1) }

// Validate reports the first field of o that cannot mean anything, as a
// *FieldError. NewServer calls it, and so does the agent's config check.
func (o *Options) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxMessageBytes", o.MaxMessageBytes}, {"QueueLen", int64(o.QueueLen)}, {"QueueMax", int64(o.QueueMax)}, {"QueueBytes", o.QueueBytes},
		{"ReadBufferSize", int64(o.ReadBufferSize)},
	} {
		if f.v < 0 {
			return bad(f.name, "is negative (%d)", f.v)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"AuthTimeout", o.AuthTimeout}, {"PongWait", o.PongWait},
		{"WriteWait", o.WriteWait}, {"StallTimeout", o.StallTimeout}, {"CloseGrace", o.CloseGrace},
		{"ShutdownWait", o.ShutdownWait},
	} {
		if d.v < 0 {
			return bad(d.name, "is negative (%v)", d.v)
		}
	}
	for _, a := range o.AllowedOrigins {
		if strings.TrimSpace(a) == "" {
			return bad("AllowedOrigins", "has an empty entry")
		}
	}
	return nil
}

func (o *Options) setDefaults() error {
	if err := o.Validate(); err != nil {
		return err
	}
	def := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = 1024
	}
	def(&o.MessagesPerSecond, 100)
	def(&o.RateGrace, o.MessagesPerSecond)
	def(&o.MaxConns, 1000)
	def(&o.MaxConnsPerUser, 100)
	def(&o.ConnectsPerMinute, 10)
	def(&o.QueueLen, 256)
	def(&o.QueueMax, 4*o.QueueLen)
	o.QueueMax = max(o.QueueMax, o.QueueLen)
	def(&o.CoalesceAfter, 64)
	if o.CoalesceAfter > o.QueueLen/2 {
		o.CoalesceAfter = max(o.QueueLen/2, 1)
	}
	def(&o.ReadBufferSize, 512)
	def(&o.SendBufferBytes, 64<<10)
	for _, d := range []struct {
		p *time.Duration
		v time.Duration
	}{
		{&o.AuthTimeout, 10 * time.Second}, {&o.PingInterval, 25 * time.Second}, {&o.PongWait, 10 * time.Second},
		{&o.WriteWait, 10 * time.Second}, {&o.StallTimeout, 5 * time.Second}, {&o.CloseGrace, time.Second},
		{&o.ShutdownWait, 5 * time.Second}, {&o.WriteDelay, DefaultWriteDelay},
	} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.afterFunc == nil {
		o.afterFunc = func(d time.Duration, f func()) timer { return time.AfterFunc(d, f) }
	}
	return nil
}

// Server admits, tracks and shuts down connections.
type Server struct {
	o  atomic.Pointer[Options] // replaced whole by SetOptions
	up websocket.Upgrader

	readPool sync.Pool // of *[]byte of ReadBufferSize: the connections' read buffers

	// Counters for Stats.
	accepted, refused, sent, coalesced, overflows atomic.Uint64

	epoch    time.Time    // the write delay's times count from here
	winStart atomic.Int64 // the start of the write delay's current window, since epoch

	mu       sync.Mutex
	closing  bool
	n        int // connections open or being upgraded
	conns    map[*Conn]struct{}
	users    map[string]int
	addrs    map[string]*bucket
	sessions sync.WaitGroup // one per Serve call past admission
}

// NewServer returns a Server with the given options.
func NewServer(o Options) (*Server, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{
		epoch: time.Now(),
		conns: make(map[*Conn]struct{}),
		users: make(map[string]int),
		addrs: make(map[string]*bucket),
	}
	size := o.ReadBufferSize
	s.readPool.New = func() any { b := make([]byte, size); return &b }
	s.up = websocket.Upgrader{
		// The core reads and writes frames itself; gorilla only answers
		// the upgrade. Neither its reader (0: the request's own) nor its
		// writer (a pool: none is taken; the answer goes out through the
		// request's own buffer) is ever used.
		ReadBufferSize:  0,
		WriteBufferPool: &sync.Pool{},
		// The origin was checked by Serve already, with a clearer answer.
		CheckOrigin:       func(*http.Request) bool { return true },
		HandshakeTimeout:  o.WriteWait,
		EnableCompression: o.Compression,
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			http.Error(w, "wsconn: "+reason.Error(), status)
		},
	}
	s.o.Store(&o)
	return s, nil
}

// Options returns the server's options with defaults filled in.
func (s *Server) Options() Options { return *s.o.Load() }

func (s *Server) opts() *Options { return s.o.Load() }

// SetOptions replaces the limits and timeouts while the server runs (a
// reloaded config), with the same defaults and checks as NewServer. The
// admission limits, the rate limits, the queue length, the write delay,
// the ping, pong and write timeouts apply at once, to open connections
// too; MaxMessageBytes, AuthTimeout and SendBufferBytes to new
// connections. The buffer sizes, Compression, Logger and Now cannot
// change: the values given are ignored.
func (s *Server) SetOptions(o Options) error {
	if err := o.setDefaults(); err != nil {
		return err
	}
	cur := s.opts()
	if (o.PingInterval < 0) != (cur.PingInterval < 0) {
		// Open connections have a ping timer or not.
		return &FieldError{Field: "PingInterval", Reason: "cannot turn pings on or off while the server runs"}
	}
	o.ReadBufferSize, o.Logger, o.Now = cur.ReadBufferSize, cur.Logger, cur.Now
	o.Compression = cur.Compression
	o.beforeWrite, o.afterFunc, o.directWrote = cur.beforeWrite, cur.afterFunc, cur.directWrote
	s.o.Store(&o)
	return nil
}

// Stats are a Server's counters since it started.
type Stats struct {
	Open      int    // connections open now
	Accepted  uint64 // connections upgraded
	Refused   uint64 // upgrades refused by a limit (origin, connections, rate of new ones)
	Sent      uint64 // messages written to clients
	Coalesced uint64 // messages replaced by a newer one before they were written (a slow client)
	Overflows uint64 // connections closed because their queue overflowed (CloseSlowConsumer)
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{Open: s.Len(), Accepted: s.accepted.Load(), Refused: s.refused.Load(), Sent: s.sent.Load(),
		Coalesced: s.coalesced.Load(), Overflows: s.overflows.Load()}
}

// Len returns the number of open connections.
func (s *Server) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// A Session is a front end's state for one connection. The core calls its
// methods one at a time, in the order of the client's messages, each on a
// short goroutine the connection's reader starts and waits for.
type Session interface {
	// Message handles one inbound text message (at most MaxMessageBytes).
	// A binary message closes the connection (1003) unless the Session
	// is a BinarySession.
	Message(data []byte)
	// Limited is called instead of Message for a message refused by the
	// rate limit; the front end tells the client in its own protocol.
	Limited()
	// Closed is called once, when the connection has ended and no more
	// calls will come. Serve (and Shutdown) wait for it to return.
	Closed()
}

// A BinarySession is a Session that also takes binary messages. The core
// hands a connection whose Session is not one a close (1003) for a binary
// message instead.
type BinarySession interface {
	Session
	// Binary handles one inbound binary message (at most
	// MaxMessageBytes), in order with the text ones and under the same
	// rate limit.
	Binary(data []byte)
}

// Serve admits the request (origin, shutdown, global and per-address
// limits, answering with 403, 503 or 429 when it refuses), upgrades it and
// builds the session with open, which runs before any message is read (it
// may send, set the user and close). Serve then returns; the connection
// runs in a goroutine of its own, which Shutdown waits for. (Returning
// frees what net/http holds for the request: its buffers and its
// goroutine's grown stack, most of an idle connection's memory.)
func (s *Server) Serve(w http.ResponseWriter, r *http.Request, open func(*Conn) Session) {
	if ok, _ := CheckOrigin(r, s.opts().AllowedOrigins); !ok {
		s.refused.Add(1)
		http.Error(w, "wsconn: origin not allowed", http.StatusForbidden)
		return
	}
	addr := clientAddr(r)
	s.mu.Lock()
	switch {
	case s.closing:
		s.mu.Unlock()
		http.Error(w, "wsconn: server shutting down", http.StatusServiceUnavailable)
		return
	case s.opts().MaxConns > 0 && s.n >= s.opts().MaxConns:
		s.mu.Unlock()
		s.refused.Add(1)
		http.Error(w, "wsconn: too many connections", http.StatusServiceUnavailable)
		return
	case !s.allowAddr(addr):
		s.mu.Unlock()
		s.refused.Add(1)
		w.Header().Set("Retry-After", "60")
		http.Error(w, "wsconn: too many new connections from "+addr, http.StatusTooManyRequests)
		return
	}
	s.n++
	s.sessions.Add(1)
	s.mu.Unlock()

	ws, err := s.up.Upgrade(w, r, nil)
	if err != nil {
		// The upgrader has answered the request.
		s.mu.Lock()
		s.n--
		s.mu.Unlock()
		s.sessions.Done()
		return
	}
	nc := ws.NetConn() // the upgrade is gorilla's last work: frames are read and written here
	if tc, ok := nc.(*net.TCPConn); ok && s.opts().SendBufferBytes > 0 {
		if err := tc.SetWriteBuffer(s.opts().SendBufferBytes); err != nil {
			s.opts().Logger.Warn("wsconn: setting the send buffer failed", "addr", addr, "err", err)
		}
	}
	s.accepted.Add(1)
	c := newConn(s, nc, addr)
	c.deflate = s.up.EnableCompression && offersDeflate(r.Header)
	s.mu.Lock()
	s.conns[c] = struct{}{}
	closing := s.closing
	s.mu.Unlock()
	if closing {
		c.Close(CloseGoingAway, "server shutting down")
	}
	sess := open(c)
	go func() {
		defer s.sessions.Done()
		c.readLoop(sess)
		c.readerExited() // ends Context, so the session's goroutines stop
		sess.Closed()
		<-c.done
	}()
}

// Shutdown stops admitting connections, sends a close frame (1001) to every
// client after what is already queued for it, and waits for the connections
// to end, at most ShutdownWait (or until ctx ends); then it drops the rest
// and waits for their goroutines, which exit promptly.
func (s *Server) Shutdown(ctx context.Context) {
	s.mu.Lock()
	s.closing = true
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close(CloseGoingAway, "server shutting down")
	}
	t := time.NewTimer(s.opts().ShutdownWait)
	defer t.Stop()
	for _, c := range conns {
		select {
		case <-c.done:
			continue
		case <-t.C:
		case <-ctx.Done():
		}
		break
	}
	for _, c := range conns {
		c.nc.Close()
	}
	s.sessions.Wait()
}

func (s *Server) remove(c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; !ok {
		return
	}
	delete(s.conns, c)
	s.n--
	if c.user != "" {
		if s.users[c.user]--; s.users[c.user] <= 0 {
			delete(s.users, c.user)
		}
	}
}

// CheckOrigin applies the same-origin default and an allow-list to r's
// Origin header. ok: the request may use the server (no Origin, so not a
// browser on another site; the server's own host; an origin or host
// listed; or "*"). named: it was let in by more than "*", so a browser's
// cookie may be trusted from it. Every front end decides with it.
func CheckOrigin(r *http.Request, allowed []string) (ok, named bool) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true, true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false, false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true, true
	}
	for _, a := range allowed {
		switch {
		case a == "*":
			ok = true
		case strings.EqualFold(a, origin) || strings.EqualFold(a, u.Host):
			return true, true
		}
	}
	return ok, false
}

// bucket is a token bucket of new connections for one address.
type bucket struct {
	tokens float64
	last   time.Time
}

// allowAddr takes one token from addr's bucket. Called with s.mu held.
func (s *Server) allowAddr(addr string) bool {
	if s.opts().ConnectsPerMinute < 0 {
		return true
	}
	now := s.opts().Now()
	capacity := float64(s.opts().ConnectsPerMinute)
	refill := func(b *bucket) {
		b.tokens += now.Sub(b.last).Minutes() * capacity
		if b.tokens > capacity {
			b.tokens = capacity
		}
		b.last = now
	}
	if len(s.addrs) > 4096 {
		// Forget addresses whose bucket is full again: they are
		// indistinguishable from new ones.
		for a, b := range s.addrs {
			if refill(b); b.tokens >= capacity {
				delete(s.addrs, a)
			}
		}
	}
	b := s.addrs[addr]
	if b == nil {
		b = &bucket{tokens: capacity, last: now}
		s.addrs[addr] = b
	}
	refill(b)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// clientAddr is the peer's IP address (without port): the unit of the
// per-address limit. Proxies are not trusted.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// RequestToken returns the token a request carries in an
// "Authorization: Bearer" header or, failing that, in the "token" query
// parameter; "" when it has none.
func RequestToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			return strings.TrimSpace(h[7:])
		}
	}
	return r.URL.Query().Get("token")
}

// overflowReason builds the reason of a slow-consumer close.
func overflowReason(lastSeq uint64) string {
	if lastSeq == 0 {
		return "send queue overflow: resume with since=<your last seq>"
	}
	return "send queue overflow: resume with since=" + strconv.FormatUint(lastSeq, 10)
}
