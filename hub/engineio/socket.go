package engineio

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/floorhub/floorhub/hub/wsconn"
	"github.com/gorilla/websocket"
)

// Socket is one Engine.IO session. Its methods are safe for concurrent use.
type Socket struct {
	srv *Server
	id  string

	// What the handshake carried (Handshake builds it from these).
	opened time.Duration // when the session opened, by Server.now
	kept   string        // the client's address, the raw query, then the kept headers' names and values, all joined by 0 bytes

	// inMu serializes the Handler's calls; h is set under it.
	inMu sync.Mutex
	h    Handler

	mu      sync.Mutex
	done    chan struct{} // made by Done when first asked for; closed by close
	changed chan struct{} // made by a waiter, closed by signal: waiters re-check
	reason  error
	closed  bool
	trusted bool    // Handshake.TrustedOrigin
	onPoll  bool    // the transport is long-polling (not yet upgraded)
	polling bool    // a poll (GET) waits
	posting bool    // a post is being read
	probe   *wsConn // a WebSocket probing the session (upgrade under way)
	ws      *wsConn // the WebSocket transport, once upgraded or opened so
	// queue waits for a poll (the WebSocket's queue is its Conn's). Once
	// the session has closed it is what the client's next poll gets (a
	// close or noop packet, after what was queued for a graceful close),
	// and the session stays findable until then, at most a ping period.
	queue []Packet
	// beat is the session's index in the server's heartbeat heap (under
	// the heap's mu), -1 while it has none: its heartbeat runs when a ping
	// or a deadline is due.
	beat int
	// The heartbeat's schedule, by Server.now: the next ping is due at
	// nextPing; once sent, the client must answer by pingDeadline (0: no
	// ping is waiting). Both count from the schedule, not from when a busy
	// machine got round to the ping, so a session expires at the same time
	// whatever the load.
	nextPing     time.Duration
	pingDeadline time.Duration
	lastSeen     time.Duration // the client's last packet
}

// ID returns the session id (the "sid").
func (so *Socket) ID() string { return so.id }

// Handshake returns what the request that opened the session carried,
// as far as the session kept it (see Handshake.Header). Each call returns
// maps of its own.
func (so *Socket) Handshake() Handshake {
	f := strings.Split(so.kept, "\x00")
	q, _ := url.ParseQuery(f[1]) // as the request's URL.Query: what parses
	var h http.Header
	if len(f) > 2 {
		h = make(http.Header, (len(f)-2)/2)
		for i := 2; i+1 < len(f); i += 2 {
			h[f[i]] = append(h[f[i]], f[i+1])
		}
	}
	return Handshake{Query: q, Header: h, Addr: f[0], TrustedOrigin: so.trusted, Time: so.srv.origin.Add(so.opened)}
}

// addr is the client's address (Handshake.Addr).
func (so *Socket) addr() string { return so.kept[:strings.IndexByte(so.kept, 0)] }

// Done is closed when the session has ended.
func (so *Socket) Done() <-chan struct{} {
	so.mu.Lock()
	if so.done == nil {
		so.done = make(chan struct{}) // most sessions are never asked
		if so.closed {
			close(so.done)
		}
	}
	d := so.done
	so.mu.Unlock()
	return d
}

// Send queues messages for the client, in order and together (no other
// message comes between them). It never blocks. The messages' Data must not
// change afterwards. When the queue is full the session is closed and Send
// returns ErrQueueFull.
func (so *Socket) Send(msgs ...Message) error {
	so.mu.Lock()
	if so.closed {
		so.mu.Unlock()
		return ErrClosed
	}
	if so.ws != nil {
		// Under mu, so that no other message comes between them.
		for _, m := range msgs {
			if err := so.ws.c.Send(m.frame()); err != nil {
				so.mu.Unlock()
				if errors.Is(err, wsconn.ErrOverflow) {
					so.close(ErrQueueFull, false)
					return ErrQueueFull
				}
				return ErrClosed // the connection ends; Closed follows
			}
		}
		so.mu.Unlock()
		return nil
	}
	if len(so.queue)+len(msgs) > so.srv.o.QueueLen || so.overBytes(msgs) {
		so.mu.Unlock()
		so.close(ErrQueueFull, false)
		return ErrQueueFull
	}
	for _, m := range msgs {
		so.queue = append(so.queue, Packet{Type: Msg, Data: m.Data, Binary: m.Binary})
	}
	so.signal()
	so.mu.Unlock()
	return nil
}

// overBytes tells whether queueing msgs for a poll would take the bytes
// waiting past QueueBytes (not when nothing waits: one large message
// still goes). Called with mu held. Counted rather than kept: a queue
// is short unless its client stopped polling, and a session stays a
// size class smaller.
func (so *Socket) overBytes(msgs []Message) bool {
	if len(so.queue) == 0 {
		return false
	}
	n := int64(0)
	for i := range so.queue {
		n += int64(len(so.queue[i].Data))
	}
	for i := range msgs {
		n += int64(len(msgs[i].Data))
	}
	return n > so.srv.o.QueueBytes
}

// Close ends the session from the server's side: the client gets what was
// queued, then a close packet.
func (so *Socket) Close() { so.close(ErrServerClose, true) }

// expired reports whether the session is past its ping deadline at now,
// whether or not its heartbeat has noticed. Called with mu held.
func (so *Socket) expired(now time.Duration) bool {
	d := so.pingDeadline
	if d == 0 {
		d = so.nextPing + so.srv.o.PingTimeout
	}
	d = max(d, so.lastSeen+so.srv.o.PingTimeout)
	return !so.closed && now > d
}

func (so *Socket) isClosed() bool {
	so.mu.Lock()
	closed := so.closed
	so.mu.Unlock()
	return closed
}

// signal wakes every waiter (a poll, an upgrade's poll). Called with mu
// held.
func (so *Socket) signal() {
	if so.changed != nil {
		close(so.changed)
		so.changed = nil
	}
}

// changes returns a channel that signal closes. Called with mu held. A
// WebSocket session has no waiters, so no channel.
func (so *Socket) changes() <-chan struct{} {
	if so.changed == nil {
		so.changed = make(chan struct{})
	}
	return so.changed
}

// closeCode is the WebSocket close code that ends a session for reason.
func closeCode(reason error) int {
	switch {
	case errors.Is(reason, ErrTooLarge):
		return wsconn.CloseTooBig
	case errors.Is(reason, ErrPacket):
		return 1002 // protocol error
	case errors.Is(reason, ErrServerClose):
		return wsconn.CloseGoingAway
	}
	return 1000 // normal closure
}

// Packets sent as they are to every WebSocket session.
var (
	closeFrame = wsconn.Message{Data: []byte{byte(Close)}}
	pingFrame  = wsconn.Message{Data: []byte{byte(Ping)}}
	probeFrame = wsconn.Message{Data: []byte("3probe")}
)

// close ends the session for reason. Graceful sends what is queued and a
// close packet; otherwise the queue is dropped (on a WebSocket, what its
// Conn has queued still goes before the close frame).
func (so *Socket) close(reason error, graceful bool) {
	so.mu.Lock()
	if so.closed {
		so.mu.Unlock()
		return
	}
	so.closed, so.reason = true, reason
	keep := false
	switch {
	case so.ws != nil:
		if graceful {
			so.ws.c.Send(closeFrame)
		}
		so.ws.c.Close(closeCode(reason), "")
	default:
		// A waiting poll gets the last word; without one, the next poll
		// does if the close was orderly.
		switch {
		case graceful:
			so.queue = append(so.queue, Packet{Type: Close})
		case reason == ErrClientClose:
			so.queue = []Packet{{Type: Noop}}
		case so.polling:
			so.queue = []Packet{{Type: Close}}
		default:
			so.queue = nil
		}
		keep = so.queue != nil
	}
	if so.probe != nil {
		so.probe.c.Close(closeCode(reason), "") // its Closed takes it away
	}
	so.srv.beats.mu.Lock()
	so.srv.beats.remove(so)
	so.srv.beats.mu.Unlock()
	if so.done != nil {
		close(so.done)
	}
	so.signal()
	so.mu.Unlock()
	// Not here: close may run inside a Handler call (inMu held) or under
	// the application's locks (a Send that overflowed).
	go so.ended()
	if !keep {
		so.srv.remove(so)
		return
	}
	// The session waits for the client's next poll, not for ever.
	time.AfterFunc(so.srv.o.PingInterval+so.srv.o.PingTimeout, func() {
		so.mu.Lock()
		so.queue = nil
		so.mu.Unlock()
		so.srv.remove(so)
	})
}

// ended calls the Handler's Closed once the session has ended. The
// session was counted in the server's wait group when it was admitted.
func (so *Socket) ended() {
	defer so.srv.wg.Done()
	so.inMu.Lock()
	defer so.inMu.Unlock()
	if so.h != nil {
		so.h.Closed(so.reason)
	}
}

// startHeartbeat puts the session in the server's heartbeat heap; the
// session has no goroutine or timer of its own.
func (so *Socket) startHeartbeat() {
	so.mu.Lock()
	if !so.closed {
		so.srv.beats.schedule(so, so.nextPing, true)
	}
	so.mu.Unlock()
}

// heartbeat pings the client PingInterval after the handshake or its last
// pong and closes the session when a ping stays unanswered for PingTimeout
// (a client that keeps sending gets more time; the next ping waits for the
// pong). It runs on the server's heartbeat timer (beats), and sets when
// it runs next.
func (so *Socket) heartbeat() {
	o := &so.srv.o
	so.mu.Lock()
	now := so.srv.now()
	switch {
	case so.closed:
	case so.pingDeadline == 0 && so.nextPing > now:
		so.srv.beats.schedule(so, so.nextPing, true)
	case so.pingDeadline == 0:
		if so.ws != nil {
			so.ws.c.Send(pingFrame) // an overflow closes the Conn, and the session with it
		} else {
			so.queue = append(so.queue, Packet{Type: Ping})
			so.signal()
		}
		so.pingDeadline = so.nextPing + o.PingTimeout
		so.srv.beats.schedule(so, so.pingDeadline, true)
	case so.pingDeadline > now:
		so.srv.beats.schedule(so, so.pingDeadline, true)
	default:
		so.mu.Unlock()
		so.close(ErrPingTimeout, false)
		return
	}
	so.mu.Unlock()
}

// receive handles packets from the client, in order.
func (so *Socket) receive(pkts []Packet) {
	so.inMu.Lock()
	defer so.inMu.Unlock()
	for _, p := range pkts {
		so.mu.Lock()
		closed := so.closed
		now := so.srv.now()
		so.lastSeen = now
		if d := now + so.srv.o.PingTimeout; so.pingDeadline != 0 && d > so.pingDeadline {
			so.pingDeadline = d
		}
		so.mu.Unlock()
		if closed {
			return
		}
		switch p.Type {
		case Msg:
			so.h.Message(Message{Data: p.Data, Binary: p.Binary})
		case Pong:
			so.mu.Lock()
			// Only the answer to a ping the client has had counts: a
			// pong sent blind by a client that does not poll kept its
			// session, and queued it one more ping every interval.
			if so.pingDeadline != 0 && !so.pingWaits() {
				so.pingDeadline = 0
				so.nextPing = so.srv.now() + so.srv.o.PingInterval
				if !so.closed {
					// Waiting for the deadline: the next ping is due
					// first. (A running heartbeat sets its own time.)
					so.srv.beats.schedule(so, so.nextPing, false)
				}
			}
			so.mu.Unlock()
		case Close:
			so.close(ErrClientClose, false)
			return
		}
		// Others (open, ping, upgrade, noop) mean nothing here.
	}
}

// pingWaits tells whether a ping waits for the client's poll. Called
// with mu held.
func (so *Socket) pingWaits() bool {
	for i := range so.queue {
		if so.queue[i].Type == Ping {
			return true
		}
	}
	return false
}

// poll answers a GET: what is queued, as soon as there is something.
func (so *Socket) poll(w http.ResponseWriter, r *http.Request) {
	so.mu.Lock()
	if so.closed {
		fin := so.queue
		so.queue = nil
		so.mu.Unlock()
		so.srv.remove(so)
		if fin == nil {
			httpError(w, http.StatusBadRequest, codeUnknownSID)
			return
		}
		writePayload(w, so.srv.o.WriteWait, fin)
		return
	}
	if !so.onPoll {
		so.mu.Unlock()
		httpError(w, http.StatusBadRequest, codeBadRequest)
		return
	}
	if so.polling {
		// Two polls at once: the client is broken. The waiting one gets
		// a close packet, this one an error.
		so.mu.Unlock()
		so.close(fmt.Errorf("%w: overlapping polls", ErrTransport), false)
		httpError(w, http.StatusBadRequest, codeBadRequest)
		return
	}
	so.polling = true
	var settle <-chan time.Time
	if so.probe != nil {
		// A WebSocket probes: its "5" may be on the way.
		t := time.NewTimer(upgradeSettle)
		defer t.Stop()
		settle = t.C
	}
	var pkts []Packet
	var status int
wait:
	for {
		switch {
		case so.closed:
			pkts, so.queue = so.queue, nil
			defer so.srv.remove(so)
			break wait
		case !so.onPoll && settle != nil:
			status = http.StatusBadRequest
			break wait
		case !so.onPoll, so.probe != nil && so.probe.probed && settle == nil:
			// Release the poll so the client can finish the upgrade.
			pkts = []Packet{{Type: Noop}}
			break wait
		case len(so.queue) > 0 && so.probe == nil:
			pkts, so.queue = so.queue, nil
			break wait
		}
		ch := so.changes()
		so.mu.Unlock()
		select {
		case <-ch:
		case <-settle:
			settle = nil
			so.mu.Lock()
			if !so.closed && so.onPoll {
				pkts = []Packet{{Type: Noop}}
				break wait
			}
			continue
		case <-r.Context().Done():
			so.mu.Lock()
			so.polling = false
			so.mu.Unlock()
			return
		}
		so.mu.Lock()
	}
	so.polling = false
	so.mu.Unlock()
	switch {
	case status != 0:
		httpError(w, status, codeBadRequest)
	case pkts == nil:
		httpError(w, http.StatusBadRequest, codeUnknownSID)
	default:
		if err := writePayload(w, so.srv.o.WriteWait, pkts); err != nil {
			so.close(fmt.Errorf("%w: writing a poll: %v", ErrTransport, err), false)
		}
	}
}

// post reads a POST's payload and hands its packets on.
func (so *Socket) post(w http.ResponseWriter, r *http.Request) {
	so.mu.Lock()
	switch {
	case so.closed:
		so.mu.Unlock()
		httpError(w, http.StatusBadRequest, codeUnknownSID)
		return
	case !so.onPoll:
		so.mu.Unlock()
		httpError(w, http.StatusBadRequest, codeBadRequest)
		return
	case so.posting:
		so.mu.Unlock()
		so.close(fmt.Errorf("%w: overlapping posts", ErrTransport), false)
		httpError(w, http.StatusBadRequest, codeBadRequest)
		return
	}
	so.posting = true
	so.mu.Unlock()
	defer func() {
		so.mu.Lock()
		so.posting = false
		so.mu.Unlock()
	}()
	body, err := readBody(r, so.srv.o.MaxPayload)
	if err != nil {
		so.close(err, false)
		if errors.Is(err, ErrTooLarge) {
			httpErrorText(w, http.StatusRequestEntityTooLarge, codeBadRequest, "Payload too large")
			return
		}
		httpError(w, http.StatusBadRequest, codeBadRequest)
		return
	}
	pkts, err := DecodePayload(body, 0)
	if err != nil {
		so.close(err, false)
		httpError(w, http.StatusBadRequest, codeBadRequest)
		return
	}
	so.receive(pkts)
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Content-Length", "2")
	w.Write([]byte("ok"))
}

// wsConn is one WebSocket of a session, on the hub's connection core: the
// transport, or a probe that may become it. It is the Conn's Session:
// the core calls it from the connection's reader, one message at a time.
type wsConn struct {
	so      *Socket
	c       *wsconn.Conn
	probing bool // only the reader touches it
	refused bool // the session had a transport or probe already

	// Under so.mu.
	probed bool // "2probe" was answered
	gone   bool // the reader has ended
}

// Message implements wsconn.Session: one text frame, one packet.
func (wc *wsConn) Message(data []byte) {
	so := wc.so
	if wc.refused {
		return
	}
	p, err := DecodePacket(data)
	if err != nil {
		wc.fail(err)
		return
	}
	if !wc.probing {
		// The core calls this off its reader's stack already: the
		// handling's deep stack ends with the call.
		so.receive([]Packet{p})
		return
	}
	switch {
	case p.Type == Ping && string(p.Data) == "probe":
		// On its way before anything that follows is handled (the
		// "5", a poll it releases), as a server that writes it at once
		// would have it.
		if wc.c.SendFlushed(context.Background(), probeFrame) != nil {
			return // closing
		}
		so.mu.Lock()
		wc.probed = true
		so.signal()
		so.mu.Unlock()
	case p.Type == Upgrade && wc.isProbed():
		so.mu.Lock()
		if so.closed {
			so.mu.Unlock()
			wc.c.Close(1000, "")
			return
		}
		so.onPoll, so.probe, so.ws = false, nil, wc
		// What waited for a poll goes first, in order.
		for _, p := range so.queue {
			wc.c.Send(p.frame())
		}
		so.queue = nil
		so.signal()
		so.mu.Unlock()
		// The session's own heartbeat watches it from now on: no
		// upgrade deadline.
		wc.c.SetUser(so.id)
		wc.probing = false
	default:
		wc.fail(fmt.Errorf("%w: %q during the upgrade", ErrPacket, data))
	}
}

// Binary implements wsconn.BinarySession: a binary message.
func (wc *wsConn) Binary(data []byte) {
	switch {
	case wc.refused:
	case wc.probing:
		wc.fail(fmt.Errorf("%w: binary message during the upgrade", ErrPacket))
	default:
		wc.so.receive([]Packet{{Type: Msg, Data: data, Binary: true}})
	}
}

// Limited implements wsconn.Session; the Conn has no rate limit.
func (wc *wsConn) Limited() {}

// Closed implements wsconn.Session: the connection has ended.
func (wc *wsConn) Closed() {
	so := wc.so
	so.mu.Lock()
	wc.gone = true
	active := so.ws == wc
	if so.probe == wc {
		so.probe = nil
	}
	so.signal()
	so.mu.Unlock()
	if active {
		if errors.Is(wc.c.ReadErr(), websocket.ErrReadLimit) {
			so.close(fmt.Errorf("%w: a WebSocket message over MaxPayload", ErrTooLarge), false)
			return
		}
		so.close(fmt.Errorf("%w: the WebSocket ended", ErrTransport), false)
	}
}

// fail ends the connection after a malformed packet, and the session with
// it if this is its transport.
func (wc *wsConn) fail(err error) {
	so := wc.so
	so.mu.Lock()
	active := so.ws == wc
	so.mu.Unlock()
	if active {
		so.close(err, false)
		return
	}
	wc.c.Close(closeCode(err), "")
}

func (wc *wsConn) isProbed() bool {
	wc.so.mu.Lock()
	probed := wc.probed
	wc.so.mu.Unlock()
	return probed
}
