package mqttwire

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Sentinel errors.
var (
	// ErrClosed completes what was pending when Close or Disconnect ended
	// the connection, and is Err's value after that.
	ErrClosed = errors.New("mqttwire: connection closed")
	// ErrLost is wrapped by the one error that ends a connection that was
	// not closed by Close or Disconnect: "connection lost: <cause>".
	ErrLost = errors.New("mqttwire: connection lost")
)

// ConnackError is a CONNACK that refused the connection (§3.2.2.3).
type ConnackError struct {
	Code byte // the CONNACK return code, 1 to 5 (others are reserved)
}

func (e *ConnackError) Error() string {
	reason := "reserved return code"
	switch e.Code {
	case 1:
		reason = "unacceptable protocol version"
	case 2:
		reason = "identifier rejected"
	case 3:
		reason = "server unavailable"
	case 4:
		reason = "bad user name or password"
	case 5:
		reason = "not authorized"
	}
	return fmt.Sprintf("mqttwire: broker refused the connection: CONNACK return code %d (%s)", e.Code, reason)
}

// Message is an application message: one a broker delivered to a handler,
// or the will of a CONNECT.
type Message struct {
	Topic    string
	Payload  []byte
	QoS      byte // 0 or 1
	Retained bool // delivered from the broker's retained store (a will: to be retained)
	Dup      bool // a possible redelivery (§3.3.1.1); incoming only
	// Skipped, on a message received, is the size in bytes of a payload
	// that made its PUBLISH larger than MaxPacketSize: it was read past,
	// Payload is empty, and the message is acknowledged as any other.
	Skipped int
}

// Options configures a connection. The zero value of each field means its
// default.
type Options struct {
	// ClientID is the client identifier (§3.1.3.1). Empty asks the broker
	// to assign one, which 3.1.1 allows with a clean session.
	ClientID string
	// Username and Password authenticate to the broker; empty means none.
	// A Password needs a Username (§3.1.2.9).
	Username, Password string
	// Will is published by the broker if the connection ends without a
	// DISCONNECT. Default none.
	Will *Message
	// KeepAlive is the longest time without a packet from the client
	// (§3.1.2.10): a PINGREQ goes out when nothing was sent, or nothing
	// received, for this long. Whole seconds, up to 65535 s. Default 30 s;
	// a negative value turns keepalive off.
	KeepAlive time.Duration
	// PingTimeout is the longest wait for the PINGRESP of a PINGREQ; none
	// in time means the connection is lost. Default 10 s.
	PingTimeout time.Duration
	// WriteTimeout bounds each write to the socket; a write that takes
	// longer means the connection is lost. Default 10 s.
	WriteTimeout time.Duration
	// MaxInFlight is the most QoS 1 messages published and not yet
	// acknowledged; Publish waits for a slot beyond it. Default 256; at
	// most 65535 (the packet ids).
	MaxInFlight int
	// MaxPacketSize is the largest packet accepted from the broker, in
	// bytes. A larger PUBLISH reaches its handler without its payload
	// (Message.Skipped); any other larger packet ends the connection
	// before it is read. Default 1 MiB.
	MaxPacketSize int
}

// Conn is one MQTT connection, from CONNACK to its end; a new connection
// is a new Conn (no session state carries over). Its methods may be called
// from any goroutine.
type Conn struct {
	nc  net.Conn
	o   Options
	out chan outgoing // to the writer
	// pong carries PINGRESPs from the reader to the writer.
	pong  chan struct{}
	slots chan struct{}  // the in-flight window
	done  chan struct{}  // closed once err is set
	eof   chan struct{}  // closed by the reader when it returns
	wg    sync.WaitGroup // the reader and the writer

	mu       sync.Mutex
	err      error
	inflight map[uint16]*Token // PUBLISH QoS 1 and SUBSCRIBE awaiting their ack
	unsent   map[*Token]bool   // QoS 0 PUBLISHes not yet written
	nextID   uint16
	subs     []route // the first whose filter matches gets a message

	closing  atomic.Bool  // Disconnect or Close was called
	lastRecv atomic.Int64 // unix ns of the last packet read
}

type route struct {
	filter  string
	handler func(Message)
}

// outgoing is one packet for the writer: head, then payload (a PUBLISH's,
// not copied). tok is completed once it is written (QoS 0 only).
type outgoing struct {
	head, payload []byte
	tok           *Token
	disconnect    bool
}

// Token reports the fate of one PUBLISH or SUBSCRIBE.
type Token struct {
	done    chan struct{}
	err     error
	sub     bool   // a SUBSCRIBE: completed by SUBACK, not PUBACK
	granted []byte // SUBACK return codes
	once    sync.Once
}

func newToken() *Token { return &Token{done: make(chan struct{})} }

// Done is closed once the message is acknowledged (QoS 1), written
// (QoS 0), or failed.
func (t *Token) Done() <-chan struct{} { return t.done }

// Error is nil if the message went through; valid once Done is closed.
func (t *Token) Error() error {
	select {
	case <-t.done:
		return t.err
	default:
		return nil
	}
}

func (t *Token) complete(err error) {
	t.once.Do(func() {
		t.err = err
		close(t.done)
	})
}

// Connect sends CONNECT on nc, a connection the caller dialled (TCP or
// TLS), and waits for the CONNACK, until ctx ends. A refusal is a
// *ConnackError. On any error nc is closed. The session is always clean:
// nothing is kept on the broker between connections.
func Connect(ctx context.Context, nc net.Conn, o Options) (*Conn, error) {
	c, err := connect(ctx, nc, o)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

func connect(ctx context.Context, nc net.Conn, o Options) (*Conn, error) {
	if o.KeepAlive == 0 {
		o.KeepAlive = 30 * time.Second
	}
	if o.KeepAlive > 0xffff*time.Second {
		return nil, fmt.Errorf("mqttwire: KeepAlive %v is over 65535 s", o.KeepAlive)
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 256
	}
	if o.MaxInFlight > 0xffff {
		return nil, fmt.Errorf("mqttwire: MaxInFlight %d is over 65535", o.MaxInFlight)
	}
	if o.MaxPacketSize <= 0 {
		o.MaxPacketSize = 1 << 20
	}
	p := connectPacket{clientID: o.ClientID, username: o.Username, password: o.Password,
		hasUser: o.Username != "", hasPass: o.Password != "", will: o.Will}
	if o.KeepAlive > 0 {
		p.keepAlive = uint16((o.KeepAlive + time.Second - 1) / time.Second)
	}
	if p.hasPass && !p.hasUser {
		return nil, errors.New("mqttwire: a Password needs a Username (§3.1.2.9)")
	}
	for _, s := range []struct{ what, v string }{{"client id", o.ClientID}, {"username", o.Username}, {"password", o.Password}} {
		if err := checkString(s.what, s.v); err != nil {
			return nil, err
		}
	}
	if w := o.Will; w != nil {
		if err := checkTopic(w.Topic); err != nil {
			return nil, fmt.Errorf("mqttwire: will: %w", err)
		}
		if w.QoS > 1 || len(w.Payload) > 0xffff {
			return nil, fmt.Errorf("mqttwire: will: QoS %d (0 or 1) or payload of %d bytes (at most 65535)", w.QoS, len(w.Payload))
		}
	}

	// The handshake runs under ctx: its end (deadline included)
	// interrupts a read or write in progress.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	ctxErr := func(err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("mqttwire: connecting: %w", context.Cause(ctx))
		}
		return err
	}
	if _, err := nc.Write(appendConnect(nil, &p)); err != nil {
		stop()
		return nil, ctxErr(fmt.Errorf("mqttwire: sending CONNECT: %w", err))
	}
	br := bufio.NewReaderSize(nc, 8<<10)
	r := &reader{r: br, max: o.MaxPacketSize}
	pk, err := r.next()
	if err != nil {
		stop()
		return nil, ctxErr(fmt.Errorf("mqttwire: waiting for CONNACK: %w", err))
	}
	if !stop() {
		return nil, ctxErr(ctx.Err())
	}
	present, code, err := parseConnack(pk)
	switch {
	case err != nil:
		return nil, err
	case code != 0:
		return nil, &ConnackError{Code: code}
	case present:
		return nil, malformed("CONNACK with session present after a clean session CONNECT (§3.2.2.2)")
	}
	nc.SetDeadline(time.Time{})

	c := &Conn{
		nc:       nc,
		o:        o,
		out:      make(chan outgoing, 64),
		pong:     make(chan struct{}, 1),
		slots:    make(chan struct{}, o.MaxInFlight),
		done:     make(chan struct{}),
		eof:      make(chan struct{}),
		inflight: make(map[uint16]*Token),
		unsent:   make(map[*Token]bool),
	}
	c.lastRecv.Store(time.Now().UnixNano())
	c.wg.Add(2)
	go c.readLoop(r)
	go c.writeLoop()
	return c, nil
}

// Done is closed when the connection has ended; Err then says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is nil while the connection is up; then ErrClosed, or the one error
// that ended it, which wraps ErrLost: "connection lost: <cause>".
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// fail ends the connection with err (the first call only): it closes the
// socket, which stops the reader and the writer, and fails everything
// pending with the same error.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	if !errors.Is(err, ErrClosed) {
		err = fmt.Errorf("%w: %w", ErrLost, err)
	}
	c.err = err
	pending := c.inflight
	unsent := c.unsent
	c.inflight, c.unsent = nil, nil
	c.mu.Unlock()
	close(c.done)
	c.nc.Close()
	for _, t := range pending {
		t.complete(err)
	}
	for t := range unsent {
		t.complete(err)
	}
}

// Close ends the connection at once (the broker then publishes the will)
// and returns once the reader and the writer have exited. It must not be
// called from a handler.
func (c *Conn) Close() error {
	c.closing.Store(true)
	c.fail(ErrClosed)
	c.wg.Wait()
	return nil
}

// Disconnect sends DISCONNECT, so that the broker drops the will, waits at
// most grace for it to be written and for the broker to close its side,
// and then closes the connection as Close does. Messages not acknowledged
// by then fail with ErrClosed.
func (c *Conn) Disconnect(grace time.Duration) {
	c.closing.Store(true)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case c.out <- outgoing{head: disconnectPacket, disconnect: true}:
		// The broker closes the connection once it has read the
		// DISCONNECT; the socket is closed after that, so that the
		// DISCONNECT is never lost to a reset.
		select {
		case <-c.eof:
		case <-t.C:
		}
	case <-c.done:
	case <-t.C:
	}
	c.Close()
}

// Publish sends a message at QoS 0 or 1. At QoS 1 it first waits for a
// slot in the in-flight window (not beyond ctx or the connection's end).
// The token is done once the PUBACK arrives (QoS 1) or the message is
// written (QoS 0), or with the error that prevented it. payload is not
// copied: it must not change until the token is done.
func (c *Conn) Publish(ctx context.Context, topic string, qos byte, retain bool, payload []byte) *Token {
	t := newToken()
	if qos > 1 {
		t.complete(fmt.Errorf("mqttwire: QoS %d: this client publishes at QoS 0 or 1", qos))
		return t
	}
	if err := checkTopic(topic); err != nil {
		t.complete(err)
		return t
	}
	if n := 2 + len(topic) + 2 + len(payload); n > maxRemaining {
		t.complete(fmt.Errorf("mqttwire: a message of %d bytes is over MQTT's %d", n, maxRemaining))
		return t
	}
	if qos == 1 {
		select {
		case c.slots <- struct{}{}:
		case <-ctx.Done():
			t.complete(ctx.Err())
			return t
		case <-c.done:
			t.complete(c.Err())
			return t
		}
	}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		t.complete(c.err)
		return t
	}
	var id uint16
	if qos == 1 {
		id = c.newID()
		c.inflight[id] = t
	} else {
		c.unsent[t] = true
	}
	c.mu.Unlock()
	head := appendPublishHeader(make([]byte, 0, 9+len(topic)), topic, qos, retain, id, len(payload))
	o := outgoing{head: head, payload: payload}
	if qos == 0 {
		o.tok = t
	}
	c.send(ctx, o, t)
	return t
}

// newID returns a packet id not in flight (§2.3.1: non-zero); c.mu is
// held. The window keeps fewer than 65535 in flight, so one is free.
func (c *Conn) newID() uint16 {
	for {
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		if c.inflight[c.nextID] == nil {
			return c.nextID
		}
	}
}

// send hands o to the writer; if ctx ends first, t fails with its error
// (the connection stays up: nothing was written).
func (c *Conn) send(ctx context.Context, o outgoing, t *Token) {
	select {
	case c.out <- o:
	case <-c.done:
	case <-ctx.Done():
		c.forget(t)
		t.complete(ctx.Err())
	}
}

// forget removes t, which was never handed to the writer.
func (c *Conn) forget(t *Token) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, v := range c.inflight {
		if v == t {
			delete(c.inflight, id)
			if !t.sub {
				<-c.slots
			}
		}
	}
	delete(c.unsent, t)
}

// Subscribe subscribes to filters and waits for the SUBACK, until ctx
// ends. handler gets the messages whose topic matches one of the filters
// (the handler of the first Subscribe that matches, if several do). It is
// called on the connection's reading goroutine, one message at a time,
// and must not block: hand the message on (for example to a buffered
// channel, dropping it if full) and return. A QoS 1 message is
// acknowledged once handler returns.
func (c *Conn) Subscribe(ctx context.Context, filters []Subscription, handler func(Message)) error {
	if len(filters) == 0 {
		return errors.New("mqttwire: Subscribe without a filter")
	}
	for _, f := range filters {
		if err := checkFilter(f.Filter); err != nil {
			return err
		}
		if f.QoS > 1 {
			return fmt.Errorf("mqttwire: topic filter %q: QoS %d; this client takes QoS 0 or 1", f.Filter, f.QoS)
		}
	}
	t := newToken()
	t.sub = true
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return c.err
	}
	// Routed before the SUBSCRIBE goes out: retained messages follow the
	// SUBACK at once.
	for _, f := range filters {
		c.subs = append(c.subs, route{f.Filter, handler})
	}
	id := c.newID()
	c.inflight[id] = t
	c.mu.Unlock()
	c.send(ctx, outgoing{head: appendSubscribe(nil, id, filters)}, t)
	select {
	case <-t.Done():
	case <-ctx.Done():
		return ctx.Err()
	}
	if t.err != nil {
		return t.err
	}
	for i, code := range t.granted {
		if code == 0x80 && i < len(filters) {
			return fmt.Errorf("mqttwire: the broker refused the subscription to %q (SUBACK 0x80)", filters[i].Filter)
		}
	}
	if len(t.granted) != len(filters) {
		return fmt.Errorf("mqttwire: SUBACK with %d return codes for %d filters", len(t.granted), len(filters))
	}
	return nil
}

// readLoop reads the broker's packets until the connection ends.
func (c *Conn) readLoop(r *reader) {
	defer c.wg.Done()
	defer close(c.eof)
	for {
		p, err := r.next()
		if err != nil {
			if c.closing.Load() {
				err = ErrClosed
			}
			c.fail(err)
			return
		}
		c.lastRecv.Store(time.Now().UnixNano())
		if err := c.handle(p); err != nil {
			c.fail(err)
			return
		}
	}
}

// handle acts on one packet from the broker.
func (c *Conn) handle(p packet) error {
	switch p.typ {
	case typePublish:
		m, id, err := parsePublish(p)
		if err != nil {
			return err
		}
		c.mu.Lock()
		var h func(Message)
		for _, r := range c.subs {
			if Match(r.filter, m.Topic) {
				h = r.handler
				break
			}
		}
		c.mu.Unlock()
		if h != nil {
			h(m)
		}
		if m.QoS == 1 {
			select {
			case c.out <- outgoing{head: appendPuback(make([]byte, 0, 4), id)}:
			case <-c.done:
			}
		}
	case typePuback, typeSuback:
		var id uint16
		var codes []byte
		var err error
		if p.typ == typePuback {
			id, err = parseID(p)
		} else {
			id, codes, err = parseSuback(p)
		}
		if err != nil {
			return err
		}
		c.mu.Lock()
		t := c.inflight[id]
		if t == nil || t.sub != (p.typ == typeSuback) {
			c.mu.Unlock()
			return malformed("packet type %d for packet id %d, which awaits none", p.typ, id)
		}
		delete(c.inflight, id)
		c.mu.Unlock()
		if t.sub {
			t.granted = codes
		} else {
			<-c.slots
		}
		t.complete(nil)
	case typePingresp:
		if err := checkFlags(p); err != nil {
			return err
		}
		select {
		case c.pong <- struct{}{}:
		default:
		}
	default:
		return malformed("packet type %d, which a client does not receive or this one never asks for", p.typ)
	}
	return nil
}

// writeLoop writes packets, gathering what is queued into one write
// (writev on TCP: payloads are not copied), and keeps the connection
// alive, until the connection ends.
func (c *Conn) writeLoop() {
	defer c.wg.Done()
	ka := c.o.KeepAlive
	var tick <-chan time.Time
	if ka > 0 {
		// Checked four times per period: a PINGREQ is at most a
		// quarter period late, well within the broker's 1.5 periods
		// (§3.1.2.10).
		t := time.NewTicker(min(ka, c.o.PingTimeout) / 4)
		defer t.Stop()
		tick = t.C
	}
	lastSent := time.Now()
	var pingDeadline time.Time // zero: no PINGREQ outstanding
	var written []*Token
	var vec, bufs net.Buffers
	add := func(o outgoing) {
		bufs = append(bufs, o.head)
		if len(o.payload) > 0 {
			bufs = append(bufs, o.payload)
		}
		if o.tok != nil {
			written = append(written, o.tok)
		}
	}
	// flush writes bufs and completes the QoS 0 tokens in it.
	flush := func() error {
		c.nc.SetWriteDeadline(time.Now().Add(c.o.WriteTimeout))
		vec = bufs
		_, err := bufs.WriteTo(c.nc) // consumes bufs
		clear(vec)
		bufs = vec[:0]
		lastSent = time.Now()
		if err != nil {
			return err
		}
		if len(written) > 0 {
			c.mu.Lock()
			for _, t := range written {
				delete(c.unsent, t)
			}
			c.mu.Unlock()
			for _, t := range written {
				t.complete(nil)
			}
			clear(written)
			written = written[:0]
		}
		return nil
	}
	for {
		select {
		case o := <-c.out:
			add(o)
			// Whatever else is queued goes in the same write.
		gather:
			for !o.disconnect && len(bufs) < 256 {
				select {
				case o = <-c.out:
					add(o)
				default:
					break gather
				}
			}
			if err := flush(); err != nil {
				if c.closing.Load() {
					err = ErrClosed
				}
				c.fail(fmt.Errorf("writing: %w", err))
				return
			}
			if o.disconnect {
				// Nothing may follow a DISCONNECT (§3.14.4).
				<-c.done
				return
			}
		case <-c.pong:
			pingDeadline = time.Time{}
		case now := <-tick:
			switch {
			case !pingDeadline.IsZero():
				if now.After(pingDeadline) {
					c.fail(fmt.Errorf("no PINGRESP within %v", c.o.PingTimeout))
					return
				}
			case now.Sub(lastSent) >= ka || now.Sub(time.Unix(0, c.lastRecv.Load())) >= ka:
				bufs = append(bufs, pingreqPacket)
				if err := flush(); err != nil {
					c.fail(fmt.Errorf("writing PINGREQ: %w", err))
					return
				}
				pingDeadline = now.Add(c.o.PingTimeout)
			}
		case <-c.done:
			return
		}
	}
}
