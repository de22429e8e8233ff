package engineio

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Socket is one Engine.IO session. Its methods are safe for concurrent use.
type Socket struct {
	srv *Server
	id  string
	hs  Handshake

	// inMu serializes the Handler's calls; h is set under it.
	inMu sync.Mutex
	h    Handler

	pong chan struct{} // a pong arrived (cap 1): the heartbeat re-arms
	done chan struct{} // closed by close

	mu      sync.Mutex
	changed chan struct{} // closed and replaced by signal: waiters re-check
	closed  bool
	reason  error
	onPoll  bool     // the transport is long-polling (not yet upgraded)
	polling bool     // a poll (GET) waits
	posting bool     // a post is being read
	probe   *wsConn  // a WebSocket probing the session (upgrade under way)
	ws      *wsConn  // the WebSocket transport, once upgraded or opened so
	queue   []Packet // waiting to be sent
	// The heartbeat's schedule, by Options.Now: the next ping is due at
	// nextPing; once sent, the client must answer by pingDeadline. Both
	// count from the schedule, not from when a busy machine got round to
	// the ping, so a session expires at the same time whatever the load.
	nextPing     time.Time
	pingDeadline time.Time
	lastSeen     time.Time // the client's last packet
	// final is what the client's next poll gets once the session has
	// closed (a close or noop packet, after what was queued for a graceful
	// close); the session stays findable until then, at most a ping period.
	final []Packet
}

// ID returns the session id (the "sid").
func (so *Socket) ID() string { return so.id }

// Handshake returns what the request that opened the session carried.
func (so *Socket) Handshake() Handshake { return so.hs }

// Done is closed when the session has ended.
func (so *Socket) Done() <-chan struct{} { return so.done }

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
	if len(so.queue)+len(msgs) > so.srv.o.QueueLen {
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

// Close ends the session from the server's side: the client gets what was
// queued, then a close packet.
func (so *Socket) Close() { so.close(ErrServerClose, true) }

// expired reports whether the session is past its ping deadline at now,
// whether or not its heartbeat has noticed. Called with mu held.
func (so *Socket) expired(now time.Time) bool {
	d := so.pingDeadline
	if d.IsZero() {
		d = so.nextPing.Add(so.srv.o.PingTimeout)
	}
	if l := so.lastSeen.Add(so.srv.o.PingTimeout); l.After(d) {
		d = l
	}
	return !so.closed && now.After(d)
}

func (so *Socket) isClosed() bool {
	so.mu.Lock()
	defer so.mu.Unlock()
	return so.closed
}

// signal wakes every waiter (a poll, a WebSocket writer). Called with mu held.
func (so *Socket) signal() {
	close(so.changed)
	so.changed = make(chan struct{})
}

// close ends the session for reason. Graceful sends what is queued and a
// close packet; otherwise the queue is dropped.
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
			so.queue = append(so.queue, Packet{Type: Close})
		} else {
			so.queue = nil
		}
	default:
		// A waiting poll gets the last word; without one, the next poll
		// does if the close was orderly.
		switch {
		case graceful:
			so.final = append(so.queue, Packet{Type: Close})
		case reason == ErrClientClose:
			so.final = []Packet{{Type: Noop}}
		case so.polling:
			so.final = []Packet{{Type: Close}}
		}
		so.queue = nil
		keep = so.final != nil
	}
	if so.probe != nil {
		so.probe.c.Close() // its reader ends and takes it away
	}
	close(so.done)
	so.signal()
	so.mu.Unlock()
	if !keep {
		so.srv.remove(so)
		return
	}
	// The session waits for the client's next poll, not for ever.
	time.AfterFunc(so.srv.o.PingInterval+so.srv.o.PingTimeout, func() {
		so.mu.Lock()
		so.final = nil
		so.mu.Unlock()
		so.srv.remove(so)
	})
}

// heartbeat pings the client PingInterval after the handshake or its last
// pong and closes the session when a ping stays unanswered for PingTimeout
// (a client that keeps sending gets more time; the next ping waits for the
// pong).
// When the session has ended it calls the Handler's Closed.
func (so *Socket) heartbeat() {
	defer so.srv.wg.Done()
	o := &so.srv.o
	t := time.NewTimer(o.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-so.done:
			so.inMu.Lock()
			so.h.Closed(so.reason)
			so.inMu.Unlock()
			return
		case <-so.pong:
			so.mu.Lock()
			t.Reset(so.nextPing.Sub(o.Now()))
			so.mu.Unlock()
		case <-t.C:
			so.mu.Lock()
			now := o.Now()
			switch {
			case so.closed:
			case so.pingDeadline.IsZero() && so.nextPing.After(now):
				t.Reset(so.nextPing.Sub(now))
			case so.pingDeadline.IsZero():
				so.queue = append(so.queue, Packet{Type: Ping})
				so.pingDeadline = so.nextPing.Add(o.PingTimeout)
				so.signal()
				t.Reset(so.pingDeadline.Sub(now))
			case so.pingDeadline.After(now):
				t.Reset(so.pingDeadline.Sub(now))
			default:
				so.mu.Unlock()
				so.close(ErrPingTimeout, false)
				continue
			}
			so.mu.Unlock()
		}
	}
}

// receive handles packets from the client, in order.
func (so *Socket) receive(pkts []Packet) {
	so.inMu.Lock()
	defer so.inMu.Unlock()
	for _, p := range pkts {
		so.mu.Lock()
		closed := so.closed
		now := so.srv.o.Now()
		so.lastSeen = now
		if d := now.Add(so.srv.o.PingTimeout); !so.pingDeadline.IsZero() && d.After(so.pingDeadline) {
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
			so.pingDeadline = time.Time{}
			so.nextPing = so.srv.o.Now().Add(so.srv.o.PingInterval)
			so.mu.Unlock()
			select {
			case so.pong <- struct{}{}:
			default:
			}
		case Close:
			so.close(ErrClientClose, false)
			return
		}
		// Others (open, ping, upgrade, noop) mean nothing here.
	}
}

// poll answers a GET: what is queued, as soon as there is something.
func (so *Socket) poll(w http.ResponseWriter, r *http.Request) {
	so.mu.Lock()
	if so.closed {
		fin := so.final
		so.final = nil
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
			pkts, so.final = so.final, nil
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
		ch := so.changed
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

// wsConn is one WebSocket of a session: the transport, or a probe that
// may become it.
type wsConn struct {
	so      *Socket
	c       *websocket.Conn
	wmu     sync.Mutex // serializes writes: the writer's and the probe's answer
	probing bool       // only the reader touches it

	// Under so.mu.
	probed bool // "2probe" was answered
	gone   bool // the reader has ended
}

// serveWS runs a WebSocket's reader and its writer goroutine until both
// end. The caller has counted it in s.wg.
func (s *Server) serveWS(wc *wsConn) {
	defer s.wg.Done()
	so := wc.so
	wc.c.SetReadLimit(s.o.MaxPayload)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		wc.writeLoop()
	}()
	err := wc.readLoop()
	so.mu.Lock()
	wc.gone = true
	active := so.ws == wc
	if so.probe == wc {
		so.probe = nil
	}
	so.signal()
	so.mu.Unlock()
	if active {
		so.close(err, false)
	}
	<-writerDone
	wc.c.Close()
}

// readLoop reads until the connection fails or sends garbage.
func (wc *wsConn) readLoop() error {
	so := wc.so
	o := &so.srv.o
	if wc.probing {
		wc.c.SetReadDeadline(time.Now().Add(o.UpgradeTimeout))
	}
	for {
		mt, data, err := wc.c.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				return ErrTooLarge
			}
			return fmt.Errorf("%w: %v", ErrTransport, err)
		}
		if mt == websocket.BinaryMessage {
			if wc.probing {
				return fmt.Errorf("%w: binary message during the upgrade", ErrPacket)
			}
			so.receive([]Packet{{Type: Msg, Data: data, Binary: true}})
			continue
		}
		p, err := DecodePacket(data)
		if err != nil {
			return err
		}
		if !wc.probing {
			so.receive([]Packet{p})
			continue
		}
		switch {
		case p.Type == Ping && string(p.Data) == "probe":
			wc.wmu.Lock()
			wc.c.SetWriteDeadline(time.Now().Add(o.WriteWait))
			err := wc.c.WriteMessage(websocket.TextMessage, []byte("3probe"))
			wc.wmu.Unlock()
			if err != nil {
				return fmt.Errorf("%w: %v", ErrTransport, err)
			}
			so.mu.Lock()
			wc.probed = true
			so.signal()
			so.mu.Unlock()
		case p.Type == Upgrade && wc.isProbed():
			so.mu.Lock()
			if so.closed {
				so.mu.Unlock()
				return ErrClosed
			}
			so.onPoll, so.probe, so.ws = false, nil, wc
			so.signal()
			so.mu.Unlock()
			wc.c.SetReadDeadline(time.Time{})
			wc.probing = false
		default:
			return fmt.Errorf("%w: %q during the upgrade", ErrPacket, data)
		}
	}
}

func (wc *wsConn) isProbed() bool {
	wc.so.mu.Lock()
	defer wc.so.mu.Unlock()
	return wc.probed
}

// writeLoop writes the session's queue while this connection is its
// transport, and the close frame when the session ends.
func (wc *wsConn) writeLoop() {
	so := wc.so
	o := &so.srv.o
	for {
		so.mu.Lock()
		for !wc.gone && !so.closed && (so.ws != wc || len(so.queue) == 0) {
			ch := so.changed
			so.mu.Unlock()
			<-ch
			so.mu.Lock()
		}
		if wc.gone || so.ws != wc {
			// The reader ended, or the session closed during a probe.
			so.mu.Unlock()
			wc.c.Close()
			return
		}
		pkts := so.queue
		so.queue = nil
		reason := so.reason
		closing := so.closed && len(pkts) == 0
		so.mu.Unlock()

		wc.wmu.Lock()
		var err error
		if closing {
			code := websocket.CloseNormalClosure
			switch {
			case errors.Is(reason, ErrTooLarge):
				code = websocket.CloseMessageTooBig
			case errors.Is(reason, ErrPacket):
				code = websocket.CloseProtocolError
			case errors.Is(reason, ErrServerClose):
				code = websocket.CloseGoingAway
			}
			wc.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(o.WriteWait))
			wc.wmu.Unlock()
			wc.c.Close()
			return
		}
		wc.c.SetWriteDeadline(time.Now().Add(o.WriteWait))
		for _, p := range pkts {
			if err = writePacket(wc.c, p); err != nil {
				break
			}
		}
		wc.wmu.Unlock()
		if err != nil {
			so.close(fmt.Errorf("%w: %v", ErrTransport, err), false)
			wc.c.Close()
			return
		}
	}
}

// writePacket writes one packet as one frame: binary messages as binary
// frames, the rest as text.
func writePacket(c *websocket.Conn, p Packet) error {
	if p.Binary {
		return c.WriteMessage(websocket.BinaryMessage, p.Data)
	}
	w, err := c.NextWriter(websocket.TextMessage)
	if err != nil {
		return err
	}
	w.Write([]byte{byte(p.Type)})
	w.Write(p.Data)
	return w.Close()
}
