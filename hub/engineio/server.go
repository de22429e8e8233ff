// Package engineio is an Engine.IO v4 server: the transport under Socket.IO.
// A session starts with an HTTP long-polling handshake (GET, then GET to
// receive and POST to send, packets joined by 0x1e) or directly over a
// WebSocket, and a polling session may upgrade to a WebSocket (the
// "2probe"/"3probe" probe, then "5"). The server pings every PingInterval
// and drops a session whose client stays silent for PingTimeout after a
// ping.
//
// A WebSocket runs on the hub's connection core (package wsconn): one
// reader goroutine per connection, a writer goroutine only while something
// is queued, frames batched into one write. The heartbeats of all sessions
// run on one timer, so an idle WebSocket session has one goroutine and no
// timer.
//
// The application above sees a session as a *Socket and handles its
// messages with the Handler it returns from the open function given to
// NewServer. Handler methods of one session are called one at a time, in
// the order the client sent the messages. Sending never blocks: each
// session has a bounded queue, and a session whose queue overflows is
// closed.
package engineio

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/floorhub/floorhub/hub/wsconn"
	"github.com/gorilla/websocket"
)

// Errors.
var (
	// ErrPacket is wrapped by every error about a malformed packet or payload.
	ErrPacket = errors.New("engineio: malformed packet")
	// ErrClosed is returned by Send on a closed session.
	ErrClosed = errors.New("engineio: session closed")
	// ErrQueueFull is returned by Send when the session's queue overflowed;
	// the session is closed.
	ErrQueueFull = errors.New("engineio: send queue full")
	// ErrPingTimeout ends a session whose client did not answer a ping.
	ErrPingTimeout = errors.New("engineio: ping timeout")
	// ErrClientClose ends a session the client closed.
	ErrClientClose = errors.New("engineio: closed by the client")
	// ErrServerClose ends a session closed by the server (Socket.Close, Close).
	ErrServerClose = errors.New("engineio: closed by the server")
	// ErrTransport ends a session whose transport failed (the connection
	// dropped, a write timed out, a second concurrent poll or post).
	ErrTransport = errors.New("engineio: transport error")
	// ErrTooLarge ends a session whose client sent more than MaxPayload.
	ErrTooLarge = errors.New("engineio: payload too large")
	// ErrOptions is wrapped by every error of Options.Validate.
	ErrOptions = errors.New("engineio: invalid options")
)

// Options configures a Server. The zero value of every field means its
// default; for the count limits a negative value means "no limit".
type Options struct {
	// PingInterval is the period of the server's pings. Default 25 s.
	PingInterval time.Duration
	// PingTimeout is how long the client may stay silent after a ping
	// before the session is dropped. Default 20 s.
	PingTimeout time.Duration
	// MaxPayload caps what the client may send at once, in bytes: one
	// long-polling POST body (larger: HTTP 413) or one WebSocket message
	// (larger: close 1009); the session is closed either way. Announced
	// to the client in the handshake. Default 1,000,000.
	MaxPayload int64
	// UpgradeTimeout bounds an upgrade from the probe's connection to its
	// "5" packet; then the WebSocket is dropped and the session stays on
	// long-polling. Default 10 s.
	UpgradeTimeout time.Duration
	// WriteWait bounds one write to the client (a WebSocket frame, a
	// polling response); a client that accepts nothing for this long is
	// dropped. Default 10 s.
	WriteWait time.Duration
	// QueueLen is how many packets may wait for one session. On
	// long-polling one more closes the session (the client is not
	// polling); on a WebSocket the hub's connection core's rule applies
	// (wsconn.Options.QueueLen: one more closes the session if the
	// client's writes are stalled, and 4 × QueueLen close it anyway).
	// Default 1024.
	QueueLen int
	// QueueBytes bounds the bytes waiting for one session, whatever its
	// progress: a message that would take them past it closes the
	// session (one larger than QueueBytes still goes when nothing waits).
	// QueueLen alone let a client that does not read hold gigabytes: a
	// chat's history is megabytes. Default 16 MiB.
	QueueBytes int64
	// MaxSessions caps the open sessions; beyond it a handshake is refused
	// with HTTP 503. Default 1000.
	MaxSessions int
	// MaxSessionsPerAddr caps the open sessions from one client address,
	// on either transport (sessions exist before the application has
	// authenticated anyone, so one address must not take them all);
	// beyond it a handshake is refused with HTTP 429. Default 32.
	MaxSessionsPerAddr int
	// AllowedOrigins lists the browser origins allowed besides the
	// server's own ("https://dash.example.com" or a host
	// "dash.example.com:8000"); "*" allows any. Requests without an Origin
	// header are always allowed. Allowed cross-origin polling requests get
	// CORS headers; Access-Control-Allow-Credentials only for an origin
	// listed by name, never for one "*" lets in (a browser then sends no
	// cookies). Default: same origin only.
	AllowedOrigins []string
	// Headers names the request headers a session keeps, for its
	// Handshake, as long as it lives; the others are dropped once the
	// session is open (a session lives long, and a request's headers
	// would be much of an idle session's memory). Default Authorization
	// and Cookie: what an application authenticates the client with; an
	// empty (not nil) list keeps none.
	Headers []string
	// Compression negotiates permessage-deflate (RFC 7692, without context
	// takeover) with WebSocket clients that offer it, and then compresses
	// every message. It costs CPU and a compressor per write; off by
	// default.
	Compression bool
	// Logger receives session-level log lines. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock of the ping deadlines. Default time.Now.
	Now func() time.Time
}

// Validate reports the first field of o that cannot mean anything. NewServer
// calls it.
func (o *Options) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"PingInterval", o.PingInterval}, {"PingTimeout", o.PingTimeout}, {"UpgradeTimeout", o.UpgradeTimeout}, {"WriteWait", o.WriteWait}} {
		if d.v < 0 {
			return fmt.Errorf("%w: %s is negative (%v)", ErrOptions, d.name, d.v)
		}
	}
	if o.MaxPayload < 0 {
		return fmt.Errorf("%w: MaxPayload is negative (%d)", ErrOptions, o.MaxPayload)
	}
	if o.QueueLen < 0 {
		return fmt.Errorf("%w: QueueLen is negative (%d)", ErrOptions, o.QueueLen)
	}
	if o.QueueBytes < 0 {
		return fmt.Errorf("%w: QueueBytes is negative (%d)", ErrOptions, o.QueueBytes)
	}
	for _, a := range o.AllowedOrigins {
		if strings.TrimSpace(a) == "" {
			return fmt.Errorf("%w: AllowedOrigins has an empty entry", ErrOptions)
		}
	}
	for _, h := range o.Headers {
		if strings.TrimSpace(h) == "" {
			return fmt.Errorf("%w: Headers has an empty entry", ErrOptions)
		}
	}
	return nil
}

func (o *Options) setDefaults() error {
	if err := o.Validate(); err != nil {
		return err
	}
	for _, d := range []struct {
		p *time.Duration
		v time.Duration
	}{{&o.PingInterval, 25 * time.Second}, {&o.PingTimeout, 20 * time.Second}, {&o.UpgradeTimeout, 10 * time.Second}, {&o.WriteWait, 10 * time.Second}} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
	if o.MaxPayload == 0 {
		o.MaxPayload = 1_000_000
	}
	if o.QueueLen == 0 {
		o.QueueLen = 1024
	}
	if o.QueueBytes == 0 {
		o.QueueBytes = 16 << 20
	}
	if o.MaxSessions == 0 {
		o.MaxSessions = 1000
	}
	if o.MaxSessionsPerAddr == 0 {
		o.MaxSessionsPerAddr = 32
	}
	if o.Headers == nil {
		o.Headers = []string{"Authorization", "Cookie"}
	}
	o.Headers = slices.Clone(o.Headers)
	for i, h := range o.Headers {
		o.Headers[i] = http.CanonicalHeaderKey(h)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// Handler is the application's side of one session. Its methods are called
// one at a time, never after Closed.
type Handler interface {
	// Message handles one message the client sent. Data is the handler's
	// to keep.
	Message(m Message)
	// Closed is called once when the session has ended, with the reason
	// (ErrClientClose, ErrPingTimeout, ...).
	Closed(reason error)
}

// Message is one Engine.IO message: text, or binary when Binary is set.
type Message struct {
	Data   []byte
	Binary bool

	wire []byte // the text packet ('4' and Data) when Prepare encoded it
}

// Prepare returns m with its WebSocket frame encoded now, once: a message
// sent to many sessions (a broadcast) is then shared by all of them as it
// is, where each would otherwise copy it into a frame of its own.
func Prepare(m Message) Message {
	if m.Binary || m.wire != nil {
		return m
	}
	m.wire = append(append(make([]byte, 0, 1+len(m.Data)), byte(Msg)), m.Data...)
	m.Data = m.wire[1:]
	return m
}

// frame is m as its WebSocket Conn sends it.
func (m *Message) frame() wsconn.Message {
	switch {
	case m.Binary:
		return wsconn.Message{Data: m.Data, Binary: true}
	case m.wire != nil:
		return wsconn.Message{Data: m.wire}
	}
	return wsconn.Message{Data: append([]byte{byte(Msg)}, m.Data...)}
}

// Handshake is what the request that opened a session carried.
type Handshake struct {
	// Query is the handshake request's URL query.
	Query url.Values
	// Header is the handshake request's headers that Options.Headers
	// names (Authorization and Cookie by default); the session did not
	// keep the others.
	Header http.Header
	// Addr is the client's IP address.
	Addr string
	// TrustedOrigin tells whether the request's cookies may authenticate
	// it: it had no Origin header (not a browser, so no other site's
	// page), or the server's own origin, or one AllowedOrigins lists by
	// name; an origin only "*" lets in is not trusted.
	TrustedOrigin bool
	// Time is when the session opened.
	Time time.Time
}

// Engine.IO's error codes, answered with HTTP 400 as {"code":..,"message":..}.
const (
	codeTransportUnknown = 0
	codeUnknownSID       = 1
	codeBadHandshake     = 2
	codeBadRequest       = 3
	codeForbidden        = 4
	codeUnsupported      = 5
)

var codeMessages = [...]string{"Transport unknown", "Session ID unknown", "Bad handshake method", "Bad request", "Forbidden", "Unsupported protocol version"}

// upgradeSettle is how long a poll that arrives while a WebSocket probes
// the session waits for the upgrade to complete before it is answered with
// a noop: the probe's "5" may be on its way on the other connection.
const upgradeSettle = 50 * time.Millisecond

// Server is an Engine.IO v4 server; mount it (ServeHTTP) at its path, such
// as /socket.io/.
type Server struct {
	o    Options
	open func(*Socket) Handler
	ws   *wsconn.Server // the WebSocket transport: the hub's connection core
	// beats runs every session's heartbeat.
	beats beats
	// origin is when the server started, by Options.Now: sessions keep
	// their times as durations since (see now), smaller than time.Times.
	origin time.Time

	mu       sync.Mutex
	closing  bool
	sessions map[string]*Socket
	perAddr  map[string]int // client address -> open sessions
	wg       sync.WaitGroup // one per session admitted, until its Handler's Closed has returned
}

// NewServer returns a server that calls open for every new session, before
// any of its messages; open returns the session's Handler.
func NewServer(o Options, open func(*Socket) Handler) (*Server, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{o: o, open: open, origin: o.Now(), sessions: make(map[string]*Socket), perAddr: make(map[string]int)}
	s.beats.now = s.now
	ws, err := wsconn.NewServer(wsconn.Options{
		MaxMessageBytes: o.MaxPayload,
		// Engine.IO admits sessions itself (MaxSessions,
		// MaxSessionsPerAddr, the origin, with its own answers), and
		// rate limits are the application's.
		MessagesPerSecond: -1, MaxConns: -1, MaxConnsPerUser: -1, ConnectsPerMinute: -1,
		AllowedOrigins: []string{"*"},
		// A probe that does not finish the upgrade in time is dropped;
		// a session's transport is "authenticated" at once (SetUser).
		AuthTimeout: o.UpgradeTimeout,
		// No WebSocket pings of the core's own: the session's heartbeat
		// (Engine.IO's ping packets) ends a silent client, transport and
		// all.
		PingInterval: -1,
		WriteWait:    o.WriteWait, QueueLen: o.QueueLen, QueueBytes: o.QueueBytes,
		// Every packet is written at once: the core's write delay would
		// hold a chat message to batch it with others, and chat messages
		// are rare (the engine marks nothing Delay either).
		WriteDelay:  -1,
		Compression: o.Compression,
		Logger:      o.Logger, Now: o.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOptions, err)
	}
	s.ws = ws
	return s, nil
}

// now is the time by Options.Now, as a duration since origin.
func (s *Server) now() time.Duration { return s.o.Now().Sub(s.origin) }

// Options returns the server's options with the defaults filled in.
func (s *Server) Options() Options { return s.o }

// Len returns the number of open sessions.
func (s *Server) Len() int {
	s.mu.Lock()
	n := 0
	for _, so := range s.sessions {
		if !so.isClosed() {
			n++
		}
	}
	s.mu.Unlock()
	return n
}

// Close closes every session (the client gets a close packet where it can)
// and refuses new ones, then waits until the goroutines of every session
// have ended or ctx is done.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	all := make([]*Socket, 0, len(s.sessions))
	for _, so := range s.sessions {
		all = append(all, so)
	}
	s.mu.Unlock()
	for _, so := range all {
		so.close(ErrServerClose, true)
	}
	s.beats.close() // no session left to ping
	done := make(chan struct{})
	go func() {
		s.ws.Shutdown(ctx) // the close frames, then the connections' end
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ServeHTTP serves the Engine.IO endpoint: handshakes, polls, posts and
// WebSocket connections.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	trusted := true
	if r.Header.Get("Origin") != "" {
		ok, named := wsconn.CheckOrigin(r, s.o.AllowedOrigins)
		trusted = named
		if !ok {
			httpError(w, http.StatusForbidden, codeForbidden)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
		if named {
			// "*" lets any page in, but not with the user's cookies.
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		h.Add("Vary", "Origin")
	}
	if r.Method == http.MethodOptions {
		h := w.Header()
		h.Set("Access-Control-Allow-Methods", "GET, POST")
		if rh := r.Header.Get("Access-Control-Request-Headers"); rh != "" {
			h.Set("Access-Control-Allow-Headers", rh)
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	q := r.URL.Query()
	transport := q.Get("transport")
	if transport != "polling" && transport != "websocket" {
		httpError(w, http.StatusBadRequest, codeTransportUnknown)
		return
	}
	if q.Get("EIO") != "4" {
		httpError(w, http.StatusBadRequest, codeUnsupported)
		return
	}
	if sid := q.Get("sid"); sid != "" {
		so := s.lookup(sid)
		if so == nil {
			httpError(w, http.StatusBadRequest, codeUnknownSID)
			return
		}
		switch {
		case transport == "polling" && r.Method == http.MethodGet:
			so.poll(w, r)
		case transport == "polling" && r.Method == http.MethodPost:
			so.post(w, r)
		case transport == "websocket" && websocket.IsWebSocketUpgrade(r):
			s.upgrade(so, w, r)
		default:
			httpError(w, http.StatusBadRequest, codeBadRequest)
		}
		return
	}
	if r.Method != http.MethodGet {
		httpError(w, http.StatusBadRequest, codeBadHandshake)
		return
	}
	if transport == "websocket" && !websocket.IsWebSocketUpgrade(r) {
		httpError(w, http.StatusBadRequest, codeBadRequest)
		return
	}
	s.handshake(w, r, transport == "websocket", trusted)
}

// handshake opens a session; trusted is Handshake.TrustedOrigin.
func (s *Server) handshake(w http.ResponseWriter, r *http.Request, ws, trusted bool) {
	addr := clientAddr(r)
	so := &Socket{
		srv:  s,
		beat: -1,
		// Copies: the request's strings share memory with the rest of
		// the request, which the session does not keep.
		opened:  s.now(),
		kept:    keep(addr, r, s.o.Headers),
		trusted: trusted,
		onPoll:  !ws,
	}
	so.nextPing = so.opened + s.o.PingInterval
	so.id = newID()
	s.mu.Lock()
	switch {
	case s.closing:
		s.mu.Unlock()
		httpErrorText(w, http.StatusServiceUnavailable, codeBadRequest, "Server shutting down")
		return
	case s.o.MaxSessions > 0 && len(s.sessions) >= s.o.MaxSessions:
		s.mu.Unlock()
		httpErrorText(w, http.StatusServiceUnavailable, codeBadRequest, "Too many sessions")
		return
	case s.o.MaxSessionsPerAddr > 0 && s.perAddr[addr] >= s.o.MaxSessionsPerAddr:
		s.mu.Unlock()
		httpErrorText(w, http.StatusTooManyRequests, codeBadRequest, "Too many sessions from "+addr)
		return
	}
	s.perAddr[addr]++
	s.sessions[so.id] = so
	// Under mu, where Close sets closing: no Add after Close's Wait.
	s.wg.Add(1) // until the Handler's Closed
	s.mu.Unlock()

	upgrades := []string{"websocket"}
	if ws {
		upgrades = []string{}
	}
	open, _ := json.Marshal(struct {
		SID          string   `json:"sid"`
		Upgrades     []string `json:"upgrades"`
		PingInterval int64    `json:"pingInterval"`
		PingTimeout  int64    `json:"pingTimeout"`
		MaxPayload   int64    `json:"maxPayload"`
	}{so.id, upgrades, s.o.PingInterval.Milliseconds(), s.o.PingTimeout.Milliseconds(), s.o.MaxPayload})
	openPkt := Packet{Type: Open, Data: open}
	if !ws {
		so.inMu.Lock()
		so.h = s.open(so)
		so.inMu.Unlock()
		so.startHeartbeat()
		// The open packet is the handshake's answer; what open may have
		// queued follows with the next poll.
		writePayload(w, s.o.WriteWait, []Packet{openPkt})
		return
	}
	opened := false
	// Serve returns once the connection runs on a goroutine of its own
	// (net/http then lets go of what it holds for the request: most of an
	// idle session's memory otherwise).
	s.ws.Serve(w, r, func(c *wsconn.Conn) wsconn.Session {
		opened = true
		wc := &wsConn{so: so, c: c}
		c.SetUser(so.id) // no upgrade deadline: the heartbeat watches it
		so.inMu.Lock()
		if !so.isClosed() { // Close may have run meanwhile
			so.h = s.open(so)
		}
		so.inMu.Unlock()
		so.mu.Lock()
		if so.closed {
			so.mu.Unlock()
			c.Close(closeCode(so.reason), "")
			wc.refused = true
			return wc
		}
		so.ws = wc
		// The open packet first, then what open queued.
		c.Send(openPkt.frame())
		for _, p := range so.queue {
			c.Send(p.frame())
		}
		so.queue = nil
		so.mu.Unlock()
		so.startHeartbeat()
		return wc
	})
	if !opened {
		// Refused or failed; the core has answered the request. (Close
		// may have closed the session meanwhile: close runs once.)
		so.close(fmt.Errorf("%w: the WebSocket upgrade failed", ErrTransport), false)
	}
}

// upgrade takes a WebSocket that probes a long-polling session.
func (s *Server) upgrade(so *Socket, w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		httpErrorText(w, http.StatusServiceUnavailable, codeBadRequest, "Server shutting down")
		return
	}
	s.ws.Serve(w, r, func(c *wsconn.Conn) wsconn.Session {
		wc := &wsConn{so: so, c: c, probing: true}
		so.mu.Lock()
		defer so.mu.Unlock()
		if !so.onPoll || so.probe != nil || so.closed {
			// Upgraded already, or probed by another connection: this
			// one is refused with a close frame (as the reference server
			// does; a refused handshake would be an HTTP error the
			// client may not expect).
			wc.refused = true
			c.Close(wsconn.ClosePolicy, "session already upgraded")
			return wc
		}
		so.probe = wc
		so.signal()
		return wc
	})
}

// lookup returns the open session sid, or nil. A session past its ping
// deadline is closed here rather than waiting for its timer: the answer
// then does not depend on how busy the machine is. A closed session that
// still holds its last packets for the client's next poll is returned.
func (s *Server) lookup(sid string) *Socket {
	s.mu.Lock()
	so := s.sessions[sid]
	s.mu.Unlock()
	if so == nil {
		return nil
	}
	so.mu.Lock()
	expired := so.expired(s.now())
	if so.closed && so.queue == nil {
		so.mu.Unlock()
		return nil
	}
	so.mu.Unlock()
	if expired {
		so.close(ErrPingTimeout, false)
		return nil
	}
	return so
}

// remove forgets so, and takes it off its address's count.
func (s *Server) remove(so *Socket) {
	s.mu.Lock()
	if s.sessions[so.id] == so {
		delete(s.sessions, so.id)
		if addr := so.addr(); s.perAddr[addr] > 1 {
			s.perAddr[addr]--
		} else {
			delete(s.perAddr, addr)
		}
	}
	s.mu.Unlock()
}

// keep returns what a session keeps of its handshake request r from the
// client address addr: the address, the raw query, then the name and value
// of each of r's headers that names lists (in canonical form), joined by 0
// bytes (which neither may hold). One string, of its own: a session lives
// long.
func keep(addr string, r *http.Request, names []string) string {
	kept := addr + "\x00" + r.URL.RawQuery
	for _, name := range names {
		for _, v := range r.Header[name] {
			kept += "\x00" + name + "\x00" + v
		}
	}
	return kept
}

// newID returns a session id: 15 random bytes, 20 URL-safe characters.
func newID() string {
	var b [15]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// clientAddr is the peer's IP address, the unit of the per-address limit.
// Proxies are not trusted.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func httpError(w http.ResponseWriter, status, code int) {
	httpErrorText(w, status, code, codeMessages[code])
}

func httpErrorText(w http.ResponseWriter, status, code int, msg string) {
	b, _ := json.Marshal(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// writePayload answers a poll with pkts, within wait.
func writePayload(w http.ResponseWriter, wait time.Duration, pkts []Packet) error {
	b := AppendPayload(nil, pkts)
	rc := http.NewResponseController(w)
	// Not every ResponseWriter supports it; net/http clears it once the
	// response is done (TestWriteDeadlineDoesNotLinger).
	rc.SetWriteDeadline(time.Now().Add(wait))
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Header().Set("Cache-Control", "no-store")
	_, err := w.Write(b)
	return err
}

// readBody reads a POST body of at most max bytes; errTooLarge beyond.
func readBody(r *http.Request, max int64) ([]byte, error) {
	if r.ContentLength > max {
		return nil, ErrTooLarge
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the body: %v", ErrTransport, err)
	}
	if int64(len(b)) > max {
		return nil, ErrTooLarge
	}
	return b, nil
}
