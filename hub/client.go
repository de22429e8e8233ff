package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/command"
	"github.com/floorhub/floorhub/hub/wsconn"
	"github.com/floorhub/floorhub/store"
)

// client is the API's state for one connection; it is the wsconn.Session.
type client struct {
	h    *Hub
	conn *wsconn.Conn

	// Fixed before the upgrade.
	hasEndpoint   bool // a channel endpoint: subscribe on auth
	endpoint      channel
	epFilter      filter
	hasQuerySince bool
	querySince    uint64

	// Touched only by the reader goroutine.
	authed      bool
	sinceUsed   [numChannels]bool
	limitedSent bool

	mu        sync.Mutex
	exp       time.Time     // the token's expiry; zero when it has none
	ident     auth.Identity // who authenticated, and their role
	subs      [numChannels]*chanSubs
	jobs      []*replayJob // waiting for the replay goroutine
	replaying bool
	closed    bool
	wg        sync.WaitGroup // the replay goroutine
}

// chanSubs are a client's subscriptions on one channel: at most one for
// every device and one for all devices; a device's own wins.
type chanSubs struct {
	all *entry
	dev map[int]*entry
}

type entry struct {
	f     filter
	floor uint64             // records at or below it were replayed: not sent live
	job   *replayJob         // set while the subscription's replay runs
	freq  map[int]*freqState // by device (0 for system); period > 0 only
}

// freqState limits one device's updates to one per period.
type freqState struct {
	due time.Time
	tel *telemetryUpdate // pending, merged
	sys []byte           // pending system update
}

// replayJob is one resume: the records after since, from the store, then
// the live records that arrived meanwhile.
type replayJob struct {
	ch     channel
	f      filter
	since  uint64
	target uint64         // replay at least up to this seq
	buf    []store.Record // live records held back, seq > the first target
}

func (h *Hub) serveHTTP(w http.ResponseWriter, r *http.Request) {
	c := &client{h: h}
	switch p := strings.TrimSuffix(r.URL.Path, "/"); p {
	case "/ws":
	default:
		ch, ok := parseChannel(strings.TrimPrefix(p, "/ws/"))
		if !ok || !strings.HasPrefix(p, "/ws/") {
			http.NotFound(w, r)
			return
		}
		c.hasEndpoint, c.endpoint = true, ch
	}
	q := r.URL.Query()
	if c.hasEndpoint {
		f, pe := queryFilters(c.endpoint, q)
		if pe != nil {
			http.Error(w, "hub: "+pe.msg, http.StatusBadRequest)
			return
		}
		c.epFilter = f
	}
	if s := q.Get("since"); s != "" {
		v, pe := parseSince(json.RawMessage(s))
		if pe != nil {
			http.Error(w, "hub: "+pe.msg, http.StatusBadRequest)
			return
		}
		c.hasQuerySince, c.querySince = true, v
	}
	token := wsconn.RequestToken(r)
	var ident *auth.Identity
	if cookie, err := r.Cookie(sessionCookie); token == "" && h.o.Auth != nil && err == nil && cookie.Value != "" {
		// A browser's session: only from the hub's own origin or one
		// listed by name ("*" does not extend to cookies), and refused
		// before the upgrade when it is no longer live, so that the
		// page goes to its login screen rather than retrying.
		if _, named := wsconn.CheckOrigin(r, h.srv.Options().AllowedOrigins); !named {
			http.Error(w, "hub: a session cookie is accepted from the hub's own origin only", http.StatusForbidden)
			return
		}
		id, err := h.o.Auth.Cookie(cookie.Value)
		if err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write(mustJSON(errorMsg{Type: "error", Error: codeSessionExpiry, Message: "the session expired or was ended: log in again"}))
			return
		}
		ident = &id
	}
	h.srv.Serve(w, r, func(conn *wsconn.Conn) wsconn.Session {
		c.conn = conn
		switch {
		case ident != nil:
			c.admit(*ident)
		case token != "":
			c.auth(token)
		}
		return c
	})
}

// sessionCookie is the dashboard's session cookie (auth/session.CookieName).
const sessionCookie = "floorhub_session"

// reply queues a response to the client's request, waiting for room.
func (c *client) reply(v any) {
	c.conn.SendWait(c.conn.Context(), wsconn.Message{Data: mustJSON(v)})
}

func (c *client) replyError(pe *protoError, request string) {
	c.reply(errorMsg{Type: "error", Error: pe.code, Message: pe.msg, Request: request})
}

// Message implements wsconn.Session.
func (c *client) Message(data []byte) {
	c.limitedSent = false
	c.handle(data, false)
}

// Limited implements wsconn.Session: one error per burst of refused
// messages (the core closes the connection if the burst goes on).
func (c *client) Limited() {
	if c.limitedSent {
		return
	}
	c.limitedSent = true
	pe := perr(codeRateLimited, "more than %d messages per second: message dropped", c.h.srv.Options().MessagesPerSecond)
	c.conn.Send(wsconn.Message{Data: mustJSON(errorMsg{Type: "error", Error: pe.code, Message: pe.msg})})
}

// Closed implements wsconn.Session.
func (c *client) Closed() {
	c.mu.Lock()
	c.closed = true
	c.subs = [numChannels]*chanSubs{}
	c.jobs = nil
	c.mu.Unlock()
	for ch := range numChannels {
		c.h.index(c, ch, false)
	}
	c.h.setTimed(c, false)
	c.h.track(c, false)
	c.wg.Wait()
}

// expireBy closes the connection if its token expired before t (a client
// renews by sending a fresh auth message), or if its session ended
// (expired, logged out, its user removed); an open session is renewed.
func (c *client) expireBy(t time.Time) {
	c.mu.Lock()
	exp, id := c.exp, c.ident
	c.mu.Unlock()
	if id.Session != "" && c.h.o.Auth != nil {
		nid, err := c.h.o.Auth.Check(id)
		if err == nil {
			c.mu.Lock()
			if c.ident.Session == id.Session {
				c.ident = nid // a role changed by a reload applies
			}
			c.mu.Unlock()
			return
		}
		c.conn.Send(wsconn.Message{Data: mustJSON(errorMsg{Type: "error", Error: codeSessionExpiry,
			Message: "the session expired or was ended: log in again"})})
		c.conn.Close(wsconn.ClosePolicy, "session expired")
		return
	}
	if exp.IsZero() || !t.After(exp.Add(c.h.leeway)) {
		return
	}
	c.conn.Send(wsconn.Message{Data: mustJSON(errorMsg{Type: "error", Error: codeTokenExpired,
		Message: "the token expired: reconnect with a fresh one"})})
	c.conn.Close(wsconn.ClosePolicy, "token expired")
}

func (c *client) handle(data []byte, inBatch bool) {
	req, pe := decodeRequest(data)
	if pe != nil {
		c.replyError(pe, "")
		return
	}
	if !c.authed && req.typ != typeAuth && req.typ != typePing {
		c.replyError(perr(codeNotAuthenticated, "authenticate first: only auth and ping are accepted before auth"), req.typ)
		return
	}
	if req.typ != typeAuth && req.typ != typePing && req.typ != typeBatch {
		a, ok := actionOf(req)
		if !ok {
			c.replyError(perr(codeForbidden, "%s is not open to any role", req.typ), req.typ)
			return
		}
		if !c.may(a, req.typ) {
			return
		}
	}
	switch req.typ {
	case typeAuth:
		c.auth(req.token)
	case typeCommand:
		c.command(req)
	case typePing:
		c.reply(pongMsg{Type: "pong", Timestamp: req.timestamp, ServerTime: stamp(c.h.o.Now())})
	case typeSubscribe:
		c.subscribe(req.channel, req.filter, req.since, req.hasSince)
	case typeUnsubscribe:
		c.unsubscribe(req.channel, req.devices)
	case typeBatch:
		c.batch(req.messages, inBatch)
	case typeAckAlert:
		c.ackAlert(req.alertID, req.note)
	}
}

// ackAlert acknowledges an alert for the connection's user. Every alerts
// subscriber (this one too) sees the alert_ack record as an alert message
// with the acknowledgement; the sender also gets ack_alert_response.
func (c *client) ackAlert(id uint64, note string) {
	if c.h.o.Acker == nil {
		c.replyError(perr(codeUnknownType, "this hub does not acknowledge alerts"), typeAckAlert)
		return
	}
	rec, err := c.h.o.Acker.AckAlert(c.conn.Context(), id, c.conn.User(), note)
	if err != nil {
		code := command.ErrorCode(err)
		if code == command.CodeFailed {
			code = codeInternalError
		}
		c.replyError(perr(code, "%v", err), typeAckAlert)
		return
	}
	c.reply(ackAlertResponse{Type: "ack_alert_response", Success: true, AlertID: id, AcknowledgedBy: rec.Ack.By,
		AcknowledgedAt: stamp(rec.TS), Note: rec.Ack.Note, Seq: rec.Seq})
}

func (c *client) batch(msgs []json.RawMessage, inBatch bool) {
	switch {
	case inBatch:
		c.replyError(perr(codeInvalidMessage, "a batch may not contain a batch"), typeBatch)
		return
	case len(msgs) > int(c.h.maxBatch.Load()):
		c.replyError(perr(codeBatchTooLarge, "batch of %d messages: at most %d", len(msgs), c.h.maxBatch.Load()), typeBatch)
		return
	case !c.conn.Charge(len(msgs) - 1):
		c.replyError(perr(codeRateLimited, "batch of %d messages exceeds the rate of %d messages per second: dropped",
			len(msgs), c.h.srv.Options().MessagesPerSecond), typeBatch)
		return
	}
	for _, m := range msgs {
		if c.conn.Context().Err() != nil {
			return
		}
		c.handle(m, true)
	}
}

// actionOf is the action a request takes, for the role check (handle
// checks it before any request but auth, ping and batch runs). Operators
// acknowledge with the ack_alert message, which names the connection's
// user; a command (ack_alert too, whose arguments name any user) is an
// admin's. It denies by default: a request type not listed here (one
// added later and forgotten) is ok=false, refused to every role, rather
// than open to viewers. Types the hub does not know never get here:
// decodeRequest answers them unknown_type, whatever the role.
func actionOf(req *request) (a auth.Action, ok bool) {
	switch req.typ {
	case typeSubscribe, typeUnsubscribe: // the read-only requests
		return auth.Read, true
	case typeCommand:
		return auth.RunCommand, true
	case typeAckAlert:
		return auth.Acknowledge, true
	}
	return 0, false
}

// may tells whether the connection's role allows a; if not it answers
// the error forbidden.
func (c *client) may(a auth.Action, request string) bool {
	c.mu.Lock()
	role := c.ident.Role
	c.mu.Unlock()
	if role.May(a) {
		return true
	}
	who := string(role)
	if who == "" {
		who = "no role"
	}
	c.replyError(perr(codeForbidden, "%s may not %s", who, a), request)
	return false
}

// command runs a command message through the Commander; may checked the
// role.
func (c *client) command(req *request) {
	if c.h.o.Commander == nil {
		c.replyError(perr(command.CodeUnknownCommand, "%q: this hub runs no commands", req.command), typeCommand)
		return
	}
	ctx, cancel := context.WithTimeout(c.conn.Context(), c.h.o.CommandTimeout)
	res, err := c.h.o.Commander.Command(ctx, req.command, req.args)
	cancel()
	if err != nil {
		c.replyError(perr(command.ErrorCode(err), "%v", err), typeCommand)
		return
	}
	c.reply(commandResult{Type: "command_result", Command: req.command, RequestID: req.requestID, Result: res})
}

// identity returns the identity of verified claims.
func (h *Hub) identity(token string) (auth.Identity, error) {
	if h.o.Auth != nil {
		return h.o.Auth.Token(token)
	}
	claims, err := h.o.Verifier.Verify(token)
	if err != nil {
		return auth.Identity{}, err
	}
	return auth.TokenIdentity(claims, nil), nil
}

// auth checks token; on failure it answers and closes the connection.
func (c *client) auth(token string) {
	fail := func(code, msg string) {
		c.reply(authResponse{Type: "auth_response", Success: false, Message: msg, Error: code})
		c.conn.Close(wsconn.ClosePolicy, "authentication failed: "+code)
	}
	id, err := c.h.identity(token)
	if err != nil {
		switch {
		case errors.Is(err, auth.ErrMissing):
			fail(codeMissingToken, "no token: send {\"type\":\"auth\",\"token\":\"<jwt>\"}")
		case errors.Is(err, auth.ErrTooLong):
			fail(codeTokenTooLong, fmt.Sprintf("token longer than %d bytes", auth.MaxTokenLen))
		case errors.Is(err, auth.ErrExpired):
			fail(codeTokenExpired, "token expired")
		default:
			fail(codeInvalidToken, "invalid token")
		}
		return
	}
	c.admit(id)
}

// admit authenticates the connection as id (a verified token or a live
// session); it answers auth_response either way.
func (c *client) admit(id auth.Identity) {
	fail := func(code, msg string) {
		c.reply(authResponse{Type: "auth_response", Success: false, Message: msg, Error: code})
		c.conn.Close(wsconn.ClosePolicy, "authentication failed: "+code)
	}
	switch err := c.conn.SetUser(id.User); {
	case errors.Is(err, wsconn.ErrTooManyForUser):
		fail(codeTooManyConns, fmt.Sprintf("user %q has too many connections (at most %d)",
			id.User, c.h.srv.Options().MaxConnsPerUser))
		return
	case errors.Is(err, wsconn.ErrUserSet):
		fail(codeUserMismatch, "this connection is authenticated as another user")
		return
	case err != nil:
		return // closed meanwhile
	}
	first := !c.authed
	c.authed = true
	c.mu.Lock()
	c.exp = time.Time{}
	if id.Session == "" {
		c.exp = id.Expires
	}
	c.ident = id
	c.mu.Unlock()
	c.h.track(c, true)
	c.reply(authResponse{Type: "auth_response", Success: true, Message: "authenticated", User: id.User, Role: string(id.Role)})
	if first && c.hasEndpoint {
		c.subscribe(c.endpoint, c.epFilter, 0, false)
	}
}

func (c *client) subscribe(ch channel, f filter, since uint64, hasSince bool) {
	if !hasSince && c.hasQuerySince && !c.sinceUsed[ch] {
		since, hasSince = c.querySince, true
	}
	c.sinceUsed[ch] = true
	if ch == chSystem {
		hasSince = false // system status is not stored
	}
	if hasSince && c.h.o.Replay == nil {
		c.replyError(perr(codeReplayUnavail, "this hub cannot replay from the store: live data only"), typeSubscribe)
		hasSince = false
	}
	msg := subscribedMsg{Type: "subscribed", Channel: ch.String(), Filters: f.json(ch)}
	if hasSince {
		msg.Since = &since
	}
	// The reply is queued under c.mu once the entries are in place, so
	// that a record published after the client read "subscribed" reaches
	// it, and nothing of the new subscription precedes the reply. Like
	// every reply it first waits for room, here, without the lock.
	if c.conn.WaitRoom(c.conn.Context()) != nil {
		return
	}

	// Index first, then install under the lock and read the target: every
	// record above the target is then sure to reach the new entries.
	c.h.index(c, ch, true)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	s := c.subs[ch]
	if s == nil {
		s = &chanSubs{}
		c.subs[ch] = s
	}
	var job *replayJob
	if hasSince {
		// A since above the target is legitimate (the fan-out may lag
		// the store): nothing at or below since is sent either way.
		job = &replayJob{ch: ch, f: f, since: since, target: c.h.lastSeq.Load()}
	}
	now := c.h.o.Now()
	newEntry := func() *entry {
		e := &entry{f: f, job: job}
		if f.period > 0 {
			e.freq = make(map[int]*freqState)
		}
		return e
	}
	if f.devices == nil {
		s.all = newEntry()
	} else {
		if s.dev == nil {
			s.dev = make(map[int]*entry)
		}
		for _, d := range f.devices {
			s.dev[d] = newEntry()
		}
	}
	c.conn.Send(wsconn.Message{Data: mustJSON(msg)})
	if hook := c.h.o.afterSubscribe; hook != nil {
		hook(c, ch)
	}
	// What a new subscriber learns at once (device states, active alerts,
	// system status), read once its entries are in place and sent under the lock that deliver takes: a change fanned
	// out before this point is already in the state read here (the agent
	// updates its state before it publishes), and one fanned out after
	// is queued behind this snapshot, so the client's last word on every
	// device is the current one. (State and currentSystem must take only
	// leaf locks, never a client's, and never wait on I/O: see StateSource.)
	var devs []DeviceState
	if ch == chDevices && c.h.o.State != nil {
		devs = c.h.o.State.Devices()
	}
	var alerts []store.Record
	if ch == chAlerts {
		alerts = c.h.activeAlerts()
	}
	sys, haveSys := System{}, false
	if ch == chSystem {
		sys, haveSys = c.h.currentSystem()
	}
	for _, d := range devs {
		if (f.devices == nil || slices.Contains(f.devices, d.DeviceID)) &&
			(f.statuses == nil || slices.Contains(f.statuses, d.Status)) {
			c.conn.Send(wsconn.Message{Data: encodeDeviceState(d, now)})
		}
	}
	for i := range alerts {
		a := &alerts[i]
		if (f.devices == nil || slices.Contains(f.devices, a.DeviceID)) && f.match(chAlerts, a) {
			c.conn.Send(wsconn.Message{Data: encodeAlertMsg(a, true)})
		}
	}
	if haveSys {
		if sys.Timestamp.IsZero() {
			sys.Timestamp = now
		}
		c.conn.Send(wsconn.Message{Data: encodeSystem(sys, f.metrics), Key: systemKey})
		if f.period > 0 {
			s.all.freq[0] = &freqState{due: now.Add(f.period)}
		}
	}
	if job != nil {
		c.jobs = append(c.jobs, job)
		if !c.replaying {
			c.replaying = true
			c.wg.Add(1)
			go c.runReplays()
		}
	}
	timed := c.timedLocked()
	c.mu.Unlock()
	c.h.setTimed(c, timed)
}

func (c *client) unsubscribe(ch channel, devices []int) {
	c.mu.Lock()
	s := c.subs[ch]
	var pe *protoError
	switch {
	case s == nil:
		pe = perr(codeNotSubscribed, "not subscribed to channel %s", ch)
	case devices == nil:
		c.subs[ch] = nil
	default:
		for _, d := range devices {
			if s.dev[d] == nil {
				pe = perr(codeNotSubscribed, "device %d has no subscription of its own on channel %s", d, ch)
				break
			}
		}
		if pe == nil {
			for _, d := range devices {
				delete(s.dev, d)
			}
			if s.all == nil && len(s.dev) == 0 {
				c.subs[ch] = nil
			}
		}
	}
	empty := c.subs[ch] == nil
	timed := c.timedLocked()
	c.mu.Unlock()
	if pe != nil {
		c.replyError(pe, typeUnsubscribe)
		return
	}
	if empty {
		c.h.index(c, ch, false)
	}
	c.h.setTimed(c, timed)
	c.reply(unsubscribedMsg{Type: "unsubscribed", Channel: ch.String(), DeviceID: devices})
}

// entryFor returns the subscription a device's record goes to; c.mu held.
func (c *client) entryFor(ch channel, device int) *entry {
	s := c.subs[ch]
	if s == nil {
		return nil
	}
	if e := s.dev[device]; e != nil {
		return e
	}
	return s.all
}

// eachEntry calls fn for every subscription of ch; c.mu held.
func (c *client) eachEntry(ch channel, fn func(*entry)) {
	s := c.subs[ch]
	if s == nil {
		return
	}
	if s.all != nil {
		fn(s.all)
	}
	for _, e := range s.dev {
		fn(e)
	}
}

func (c *client) timedLocked() bool {
	timed := false
	for _, ch := range []channel{chTelemetry, chSystem} {
		c.eachEntry(ch, func(e *entry) { timed = timed || e.f.period > 0 })
	}
	return timed
}

// match applies the filters other than device and metrics (which the
// entry lookup and the encoding apply).
func (f *filter) match(ch channel, r *store.Record) bool {
	switch ch {
	case chAlerts:
		if r.Alert == nil {
			return false
		}
		return (f.severities == nil || slices.Contains(f.severities, r.Alert.Severity)) &&
			(f.alertTypes == nil || slices.Contains(f.alertTypes, r.Alert.Rule))
	case chDevices:
		if r.Status == nil {
			return false
		}
		return f.statuses == nil || slices.Contains(f.statuses, r.Status.New)
	}
	return true
}

// deliver hands a live record to the client; called by the fan-out.
func (c *client) deliver(ch channel, r *store.Record, enc *encoding) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entryFor(ch, r.DeviceID)
	if e == nil || r.Seq <= e.floor || !e.f.match(ch, r) {
		return
	}
	if j := e.job; j != nil {
		if len(j.buf) >= c.h.o.ReplayBuffer {
			// Too much held back: read it from the store instead.
			j.buf = nil
			j.target = c.h.lastSeq.Load()
			return
		}
		j.buf = append(j.buf, *r)
		return
	}
	c.sendLive(ch, e, r, enc)
}

// sendLive queues a live record's message for entry e; c.mu held.
//
// Live records, system status and the frequency-limited updates are the
// hub's fan-out: they carry Delay, so that a client's messages of one
// WriteDelay go out in one write (wsconn.Options.WriteDelay); every copy
// of one record carries the same At, so all clients get it at the end of
// the same window. Everything
// a client asked for (the replies, the subscription's snapshot, the
// replay of a resume, errors) is sent without it: it is written at once
// and takes the fan-out waiting before it along, in order.
func (c *client) sendLive(ch channel, e *entry, r *store.Record, enc *encoding) {
	if ch != chTelemetry {
		c.conn.Send(wsconn.Message{Data: enc.bytes(), Seq: r.Seq, Delay: true, At: enc.at})
		return
	}
	u, data := enc.telemetry(e.f.metrics)
	if u == nil {
		return
	}
	if e.f.period <= 0 {
		c.conn.Send(wsconn.Message{Data: data, Key: telemetryKey(u.DeviceID), Seq: u.Seq, Merge: u, Delay: true, At: enc.at})
		return
	}
	now := c.h.o.Now()
	st := e.freq[u.DeviceID]
	if st == nil {
		st = &freqState{}
		e.freq[u.DeviceID] = st
	}
	switch {
	case st.tel == nil && !now.Before(st.due):
		c.conn.Send(wsconn.Message{Data: data, Key: telemetryKey(u.DeviceID), Seq: u.Seq, Merge: u, Delay: true, At: enc.at})
		st.due = now.Add(e.f.period)
	case st.tel == nil:
		st.tel = u
	default:
		st.tel = u.merge(st.tel)
	}
}

// deliverSystem hands a system status to the client; called by the fan-out.
func (c *client) deliverSystem(s System, cache map[string][]byte, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sub := c.subs[chSystem]
	if sub == nil || sub.all == nil {
		return
	}
	e := sub.all
	key := strings.Join(e.f.metrics, "\x00")
	data, ok := cache[key]
	if !ok {
		data = encodeSystem(s, e.f.metrics)
		cache[key] = data
	}
	if e.f.period <= 0 {
		c.conn.Send(wsconn.Message{Data: data, Key: systemKey, Delay: true, At: at})
		return
	}
	now := c.h.o.Now()
	st := e.freq[0]
	if st == nil {
		st = &freqState{}
		e.freq[0] = st
	}
	if st.sys == nil && !now.Before(st.due) {
		c.conn.Send(wsconn.Message{Data: data, Key: systemKey, Delay: true, At: at})
		st.due = now.Add(e.f.period)
		return
	}
	st.sys = data
}

// flushDue sends the pending updates of frequency-limited subscriptions
// whose period has passed (at: the time of this round of flushes, for
// Message.At).
func (c *client) flushDue(now, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range []channel{chTelemetry, chSystem} {
		c.eachEntry(ch, func(e *entry) {
			if e.f.period <= 0 || e.job != nil {
				return
			}
			for _, st := range e.freq {
				if now.Before(st.due) {
					continue
				}
				switch {
				case st.tel != nil:
					c.conn.Send(st.tel.message(at))
				case st.sys != nil:
					c.conn.Send(wsconn.Message{Data: st.sys, Key: systemKey, Delay: true, At: at})
				default:
					continue
				}
				st.tel, st.sys = nil, nil
				st.due = now.Add(e.f.period)
			}
		})
	}
}
