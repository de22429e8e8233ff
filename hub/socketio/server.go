// Package socketio is a Socket.IO v5 server on the Engine.IO v4 server of
// package engineio: namespaces, CONNECT with an auth payload and
// CONNECT_ERROR, events with and without acks in both directions, binary
// attachments, and DISCONNECT.
//
// Register namespaces with Namespace before serving. A client's CONNECT to
// a namespace runs its ConnectFunc, which may refuse the client or set up
// the Socket's event handlers (On, OnAny) and emit; handlers of one client
// run one at a time, in the order the client sent the packets. A client
// that sends a malformed packet is disconnected.
package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/floorhub/floorhub/hub/engineio"
)

// Errors.
var (
	// ErrPacket is wrapped by every error about a malformed packet.
	ErrPacket = errors.New("socketio: malformed packet")
	// ErrDisconnected is returned by Emit on a socket that has left, and
	// given to the ack functions still waiting when it leaves.
	ErrDisconnected = errors.New("socketio: socket disconnected")
	// ErrTooManyAcks is returned by EmitWithAck when MaxPendingAcks acks
	// are already waiting on the socket.
	ErrTooManyAcks = errors.New("socketio: too many acks waiting")
	// ErrOptions is wrapped by every error of Options.Validate.
	ErrOptions = errors.New("socketio: invalid options")
	// ErrNamespace is returned by EmitFrame for a frame encoded for
	// another namespace.
	ErrNamespace = errors.New("socketio: frame of another namespace")
)

// Options configures a Server. The zero value of every field means its
// default.
type Options struct {
	// Engine configures the Engine.IO transport (ping, payload size,
	// sessions, origins).
	Engine engineio.Options
	// ConnectTimeout is how long a new Engine.IO session may stay without
	// a namespace connected before it is closed. Default 45 s.
	ConnectTimeout time.Duration
	// MaxAttachments caps the binary attachments of one packet; a packet
	// announcing more closes the session. Default 10.
	MaxAttachments int
	// MaxPendingAcks caps the acks one socket may wait for
	// (EmitWithAck). Default 256.
	MaxPendingAcks int
}

// Validate reports the first field of o that cannot mean anything.
func (o *Options) Validate() error {
	if err := o.Engine.Validate(); err != nil {
		return err
	}
	if o.ConnectTimeout < 0 {
		return fmt.Errorf("%w: ConnectTimeout is negative (%v)", ErrOptions, o.ConnectTimeout)
	}
	if o.MaxAttachments < 0 {
		return fmt.Errorf("%w: MaxAttachments is negative (%d)", ErrOptions, o.MaxAttachments)
	}
	if o.MaxPendingAcks < 0 {
		return fmt.Errorf("%w: MaxPendingAcks is negative (%d)", ErrOptions, o.MaxPendingAcks)
	}
	return nil
}

func (o *Options) setDefaults() error {
	if err := o.Validate(); err != nil {
		return err
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 45 * time.Second
	}
	if o.MaxAttachments == 0 {
		o.MaxAttachments = 10
	}
	if o.MaxPendingAcks == 0 {
		o.MaxPendingAcks = 256
	}
	return nil
}

// ConnectFunc admits a client to a namespace. auth is the CONNECT packet's
// payload ({} when it had none). Returning an error refuses the client
// with a CONNECT_ERROR carrying the error's text (a *ConnectError also
// carries data). Events emitted here reach the client after its CONNECT
// answer.
type ConnectFunc func(s *Socket, auth json.RawMessage) error

// Refusal refuses a connection with a message and optional data.
type Refusal struct {
	Message string
	Data    any
}

func (e *Refusal) Error() string { return e.Message }

// Server is a Socket.IO server; mount it (ServeHTTP) at /socket.io/.
type Server struct {
	o   Options
	eio *engineio.Server

	waiting waiting // the sessions that have not connected a namespace yet

	mu   sync.RWMutex
	nsps map[string]ConnectFunc
}

// NewServer returns a server with no namespaces.
func NewServer(o Options) (*Server, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{o: o, waiting: waiting{timeout: o.ConnectTimeout}, nsps: make(map[string]ConnectFunc)}
	eio, err := engineio.NewServer(o.Engine, s.open)
	if err != nil {
		return nil, err
	}
	s.eio = eio
	return s, nil
}

// Namespace registers (or replaces) the namespace name ("/" or "/chat").
func (s *Server) Namespace(name string, connect ConnectFunc) {
	s.mu.Lock()
	s.nsps[name] = connect
	s.mu.Unlock()
}

// ServeHTTP serves the Engine.IO endpoint under the Socket.IO protocol.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.eio.ServeHTTP(w, r) }

// Engine returns the Engine.IO server underneath.
func (s *Server) Engine() *engineio.Server { return s.eio }

// Close closes every session and waits for their goroutines (or ctx).
func (s *Server) Close(ctx context.Context) error {
	s.waiting.close()
	return s.eio.Close(ctx)
}

func (s *Server) namespace(name string) ConnectFunc {
	s.mu.RLock()
	f := s.nsps[name]
	s.mu.RUnlock()
	return f
}

// open builds the state of a new Engine.IO session.
func (s *Server) open(eio *engineio.Socket) engineio.Handler {
	c := &client{srv: s, eio: eio}
	s.waiting.add(c)
	return c
}

// connectTimeout closes the session if it has not connected a namespace
// in time (its deadline has passed).
func (c *client) connectTimeout() {
	c.mu.Lock()
	none := len(c.sockets) == 0 // a CONNECT that came meanwhile took it off the queue
	c.mu.Unlock()
	if none {
		c.eio.Close()
	}
}

// client is one Engine.IO session's Socket.IO state. Its Message and
// Closed are called one at a time by the engine.
type client struct {
	srv *Server
	eio *engineio.Socket

	// Touched only by Message: a binary packet waiting for attachments.
	partial *partialPacket

	// place is the client's number in the server's waiting queue until a
	// namespace is connected; 0 then (under the queue's mu).
	place uint64

	mu      sync.Mutex
	sockets []*Socket // one per namespace connected; a client has few
}

// partialPacket is a binary packet and the attachments that came so far.
type partialPacket struct {
	p    Packet
	atts [][]byte
}

// fail closes the session after a protocol error.
func (c *client) fail(err error) {
	c.srv.eio.Options().Logger.Debug("socketio: closing a session", "sid", c.eio.ID(), "err", err)
	c.eio.Close()
}

// Message implements engineio.Handler.
func (c *client) Message(m engineio.Message) {
	if pp := c.partial; pp != nil {
		if !m.Binary {
			c.fail(fmt.Errorf("%w: text while %d attachments were due", ErrPacket, pp.p.Attachments-len(pp.atts)))
			return
		}
		pp.atts = append(pp.atts, m.Data)
		if len(pp.atts) < pp.p.Attachments {
			return
		}
		c.partial = nil
		c.dispatch(pp.p, pp.atts)
		return
	}
	if m.Binary {
		c.fail(fmt.Errorf("%w: binary message without a binary packet", ErrPacket))
		return
	}
	p, err := DecodePacket(m.Data, c.srv.o.MaxAttachments)
	if err != nil {
		c.fail(err)
		return
	}
	if p.Type.Binary() && p.Attachments > 0 {
		c.partial = &partialPacket{p: p, atts: make([][]byte, 0, p.Attachments)}
		return
	}
	c.dispatch(p, nil)
}

// Closed implements engineio.Handler.
func (c *client) Closed(reason error) {
	c.srv.waiting.remove(c)
	c.mu.Lock()
	socks := c.sockets
	c.sockets = nil
	c.mu.Unlock()
	for _, so := range socks {
		so.leave(reason, false)
	}
}

// socket returns the client's socket in namespace nsp, or nil.
func (c *client) socket(nsp string) *Socket {
	var so *Socket
	c.mu.Lock()
	if i := c.find(nsp); i >= 0 {
		so = c.sockets[i]
	}
	c.mu.Unlock()
	return so
}

// find returns the index of namespace nsp's socket in sockets, or -1.
// Called with mu held.
func (c *client) find(nsp string) int {
	return slices.IndexFunc(c.sockets, func(so *Socket) bool { return so.nsp == nsp })
}

// remove forgets so if it is its namespace's socket. A session left
// without a namespace waits for the next CONNECT as a new one does, for
// ConnectTimeout: otherwise it would stay as long as its client answers
// pings, and a client could hold many (connect, leave, connect on the
// next session) with one user's connections.
func (c *client) remove(so *Socket) {
	c.mu.Lock()
	left := false
	if i := c.find(so.nsp); i >= 0 && c.sockets[i] == so {
		c.sockets = slices.Delete(c.sockets, i, i+1)
		left = len(c.sockets) == 0
	}
	c.mu.Unlock()
	if left {
		c.srv.waiting.add(c)
	}
}

// dispatch handles one complete packet.
func (c *client) dispatch(p Packet, atts [][]byte) {
	so := c.socket(p.Namespace)
	switch {
	case p.Type == Connect && so == nil:
		c.connect(p)
	case so == nil, p.Type == Connect, p.Type == ConnectError:
		c.fail(fmt.Errorf("%w: %v for namespace %q in this state", ErrPacket, p.Type, p.Namespace))
	case p.Type == Disconnect:
		c.remove(so)
		so.leave(errClientDisconnect, false)
	case p.Type == Event || p.Type == BinaryEvent:
		args, err := DecodeArgs(p.Data, atts)
		if err != nil {
			c.fail(err)
			return
		}
		so.event(p, args)
	case p.Type == Ack || p.Type == BinaryAck:
		args, err := DecodeArgs(p.Data, atts)
		if err != nil {
			c.fail(err)
			return
		}
		so.acked(p.ID, args)
	}
}

// errClientDisconnect is the reason given to OnDisconnect when the client
// left the namespace.
var errClientDisconnect = errors.New("socketio: client namespace disconnect")

// errServerDisconnect is the reason given when the server's Disconnect ended
// the socket.
var errServerDisconnect = errors.New("socketio: server namespace disconnect")

// connect answers a CONNECT.
func (c *client) connect(p Packet) {
	send := func(q Packet) { c.eio.Send(engineio.Message{Data: AppendPacket(nil, q)}) }
	refuse := func(msg string, data any) {
		body := map[string]any{"message": msg}
		if data != nil {
			body["data"] = data
		}
		b, _, _ := EncodeArgs([]any{body})
		send(Packet{Type: ConnectError, Namespace: p.Namespace, Data: b[1 : len(b)-1]})
	}
	connect := c.srv.namespace(p.Namespace)
	if connect == nil {
		refuse("Invalid namespace", nil)
		return
	}
	auth := p.Data
	if len(auth) == 0 {
		auth = json.RawMessage("{}")
	}
	so := &Socket{c: c, nsp: p.Namespace, id: newID()}
	if err := connect(so, auth); err != nil {
		var ce *Refusal
		if errors.As(err, &ce) {
			refuse(ce.Message, ce.Data)
		} else {
			refuse(err.Error(), nil)
		}
		return
	}
	c.mu.Lock()
	c.sockets = append(c.sockets, so) // dispatch found none for the namespace
	c.mu.Unlock()
	c.srv.waiting.remove(c)
	hs, _ := json.Marshal(map[string]string{"sid": so.id})
	// Under so.mu, so that nothing emitted meanwhile overtakes the answer.
	so.mu.Lock()
	send(Packet{Type: Connect, Namespace: p.Namespace, Data: hs})
	if so.gone {
		// Disconnect ran since connect gave the socket out (the
		// ConnectFunc, or a sweep that found it registered): it took
		// nothing off c.sockets then and told the client nothing, as the
		// answer was not out. The client learns it as it would a moment
		// later, and the namespace is free for its next CONNECT.
		so.early = nil
		so.mu.Unlock()
		send(Packet{Type: Disconnect, Namespace: p.Namespace})
		c.remove(so)
		return
	}
	if so.early != nil {
		for _, msgs := range *so.early {
			c.eio.Send(msgs...)
		}
	}
	so.early, so.connected = nil, true
	so.mu.Unlock()
}
