package socketio

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/floorhub/floorhub/hub/engineio"
)

// maxEarly bounds the packets a ConnectFunc may emit before the CONNECT
// answer is sent.
const maxEarly = 64

// EventFunc handles one event. args are the event's arguments after its
// name (numbers as json.Number, objects as map[string]any, attachments as
// []byte). ack is nil unless the client asked for an acknowledgement; it
// sends the acknowledgement; only the first call counts (later ones return
// ErrDisconnected).
type EventFunc func(args []any, ack func(args ...any) error)

// AnyFunc handles the events that have no EventFunc of their own (see
// OnAny): as an EventFunc, with the event's name.
type AnyFunc func(event string, args []any, ack func(args ...any) error)

// Socket is one client's connection to one namespace. Its methods are safe
// for concurrent use.
type Socket struct {
	c   *client
	nsp string
	id  string

	mu           sync.Mutex
	handlers     map[string]EventFunc // made by the first On
	onAny        AnyFunc
	onDisconnect func(reason error)
	connected    bool                         // the CONNECT answer was sent
	gone         bool                         // left the namespace
	nextAck      uint32                       // wraps; at most MaxPendingAcks wait
	early        *[][]engineio.Message        // emitted before the CONNECT answer; nil after
	acks         map[int64]func([]any, error) // made by the first EmitWithAck
}

// ID returns the socket's id (the CONNECT answer's "sid").
func (so *Socket) ID() string { return so.id }

// Namespace returns the socket's namespace.
func (so *Socket) Namespace() string { return so.nsp }

// Handshake returns what the Engine.IO session's first request carried
// (query, headers, address).
func (so *Socket) Handshake() engineio.Handshake { return so.c.eio.Handshake() }

// On sets the handler of an event, replacing any earlier one.
func (so *Socket) On(event string, f EventFunc) {
	so.mu.Lock()
	defer so.mu.Unlock()
	if so.handlers == nil {
		so.handlers = make(map[string]EventFunc)
	}
	so.handlers[event] = f
}

// OnAny sets the handler of every event that has no handler of its own
// (On), replacing any earlier one. One function that tells the events
// apart by name costs a socket less memory than a handler for each, when
// a server keeps many sockets with the same handlers. Unlike socket.io's
// onAny, it does not see the events On handles.
func (so *Socket) OnAny(f AnyFunc) {
	so.mu.Lock()
	so.onAny = f
	so.mu.Unlock()
}

// OnDisconnect sets the function called once when the socket leaves (the
// client disconnected from the namespace, the session ended, or
// Disconnect), with the reason.
func (so *Socket) OnDisconnect(f func(reason error)) {
	so.mu.Lock()
	so.onDisconnect = f
	so.mu.Unlock()
}

// Emit sends an event with args ([]byte values, also inside []any and
// map[string]any, travel as binary attachments).
func (so *Socket) Emit(event string, args ...any) error {
	return so.emit(Event, false, 0, append([]any{event}, args...))
}

// EmitWithAck sends an event and calls ack with the client's answer, or
// with ErrDisconnected if the socket leaves first.
func (so *Socket) EmitWithAck(event string, ack func(args []any, err error), args ...any) error {
	so.mu.Lock()
	if so.gone {
		so.mu.Unlock()
		return ErrDisconnected
	}
	if len(so.acks) >= so.c.srv.o.MaxPendingAcks {
		so.mu.Unlock()
		return ErrTooManyAcks
	}
	if so.acks == nil {
		so.acks = make(map[int64]func([]any, error))
	}
	id := int64(so.nextAck)
	for so.acks[id] != nil { // wrapped onto one still waiting
		so.nextAck++
		id = int64(so.nextAck)
	}
	so.nextAck++
	so.acks[id] = ack
	so.mu.Unlock()
	if err := so.emit(Event, true, id, append([]any{event}, args...)); err != nil {
		so.mu.Lock()
		delete(so.acks, id)
		so.mu.Unlock()
		return err
	}
	return nil
}

// Disconnect makes the socket leave its namespace; the client is told.
func (so *Socket) Disconnect() {
	so.c.remove(so)
	so.leave(errServerDisconnect, true)
	// Again: a CONNECT still being answered may have added the socket
	// since (it takes it off itself only if it sees it gone).
	so.c.remove(so)
}

// Frame is an event encoded once, to be sent as it is to many sockets of
// one namespace (a broadcast): encoding is most of the cost of an Emit
// that is not the write itself.
type Frame struct {
	nsp  string
	msgs []engineio.Message
}

// NewFrame encodes an event for the sockets of namespace nsp (as Emit
// would).
func NewFrame(nsp, event string, args ...any) (*Frame, error) {
	msgs, err := encode(nsp, Event, false, 0, append([]any{event}, args...))
	if err != nil {
		return nil, err
	}
	return &Frame{nsp: nsp, msgs: msgs}, nil
}

// EmitFrame sends f, which must have been encoded for so's namespace
// (else ErrNamespace). The socket shares f's bytes with the others.
func (so *Socket) EmitFrame(f *Frame) error {
	if f.nsp != so.nsp {
		return fmt.Errorf("%w: a frame of %q sent to %q", ErrNamespace, f.nsp, so.nsp)
	}
	return so.send(f.msgs)
}

// encode encodes one EVENT or ACK of namespace nsp (binary when args hold
// bytes) as the Engine.IO messages that carry it.
func encode(nsp string, t PacketType, hasID bool, id int64, args []any) ([]engineio.Message, error) {
	data, atts, err := EncodeArgs(args)
	if err != nil {
		return nil, err
	}
	p := Packet{Type: t, Namespace: nsp, ID: id, HasID: hasID, Data: data}
	if len(atts) > 0 {
		p.Type += BinaryEvent - Event // EVENT -> BINARY_EVENT, ACK -> BINARY_ACK
		p.Attachments = len(atts)
	}
	msgs := make([]engineio.Message, 0, 1+len(atts))
	// Prepared: a broadcast's sockets all share one encoded frame.
	msgs = append(msgs, engineio.Prepare(engineio.Message{Data: AppendPacket(nil, p)}))
	for _, a := range atts {
		msgs = append(msgs, engineio.Message{Data: a, Binary: true})
	}
	return msgs, nil
}

// emit encodes and sends one EVENT or ACK.
func (so *Socket) emit(t PacketType, hasID bool, id int64, args []any) error {
	msgs, err := encode(so.nsp, t, hasID, id, args)
	if err != nil {
		return err
	}
	return so.send(msgs)
}

// send sends the messages of one packet, or keeps them until the CONNECT
// answer is out.
func (so *Socket) send(msgs []engineio.Message) error {
	so.mu.Lock()
	defer so.mu.Unlock()
	switch {
	case so.gone:
		return ErrDisconnected
	case !so.connected:
		if so.early == nil {
			so.early = new([][]engineio.Message) // for the connect's moment only
		}
		if len(*so.early) >= maxEarly {
			return ErrTooManyAcks
		}
		*so.early = append(*so.early, msgs)
		return nil
	}
	return so.c.eio.Send(msgs...)
}

// event runs the handler of an incoming event.
func (so *Socket) event(p Packet, args []any) {
	if len(args) == 0 {
		return // DecodePacket let no such packet through
	}
	var name string
	switch n := args[0].(type) {
	case string:
		name = n
	case json.Number:
		name = n.String()
	}
	so.mu.Lock()
	f, other, gone := so.handlers[name], so.onAny, so.gone
	so.mu.Unlock()
	if gone || f == nil && other == nil {
		return // a socket that left runs no handler
	}
	var ack func(args ...any) error
	if p.HasID {
		var once sync.Once
		ack = func(args ...any) error {
			err := ErrDisconnected
			once.Do(func() { err = so.emit(Ack, true, p.ID, args) })
			return err
		}
	}
	if f == nil {
		other(name, args[1:], ack)
		return
	}
	f(args[1:], ack)
}

// acked delivers the client's answer to an EmitWithAck.
func (so *Socket) acked(id int64, args []any) {
	so.mu.Lock()
	f := so.acks[id]
	delete(so.acks, id)
	so.mu.Unlock()
	if f != nil {
		f(args, nil)
	}
}

// leave ends the socket once: waiting acks fail, OnDisconnect runs. tell
// sends the client a DISCONNECT if it had the CONNECT answer: decided with
// gone in one step, so that a CONNECT being answered either sees the
// socket gone or has its answer out before the DISCONNECT.
func (so *Socket) leave(reason error, tell bool) {
	so.mu.Lock()
	if so.gone {
		so.mu.Unlock()
		return
	}
	if tell && so.connected {
		so.c.eio.Send(engineio.Message{Data: AppendPacket(nil, Packet{Type: Disconnect, Namespace: so.nsp})})
	}
	so.gone = true
	acks, f := so.acks, so.onDisconnect
	so.acks = nil
	so.mu.Unlock()
	for _, a := range acks {
		a(nil, ErrDisconnected)
	}
	if f != nil {
		f(reason)
	}
}

// newID returns a socket id: 15 random bytes, 20 URL-safe characters.
func newID() string {
	var b [15]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
