package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/floorhub/floorhub/aether"
	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/command"
	"github.com/floorhub/floorhub/hub/wsconn"
)

// This file is the Aether V3 front end (seed 002): routed messaging among
// the clients of /v3/ws/group/{group_id}/client/{client_id}, on the same
// connection core, limits and shutdown as the first API. docs/aether.md
// documents the protocol.

// Close codes of the V3 endpoint besides the core's.
const (
	// CloseReplaced (4001) ends a connection when another one joins with
	// the same client_id.
	CloseReplaced = 4001
	// ClosePresenceTimeout (4002) ends a connection that sent nothing for
	// two heartbeat intervals.
	ClosePresenceTimeout = 4002
)

// Presence events (payload.event of a presence message).
const (
	PresenceJoin    = "join"
	PresenceLeave   = "leave"
	PresenceTimeout = "timeout"
)

// V3Options configures the V3 endpoint. The zero value of each field means
// its default.
type V3Options struct {
	// GatewayID is the agent's client id: the agent is a member of Group
	// under this id and runs the cmd messages addressed to it. Default
	// "gateway". No client may connect with it.
	GatewayID string
	// Group is the group the agent is a member of. Default "floorhub".
	Group string
	// Commander runs the agent's commands. Without it every command to
	// the agent is answered unknown_command.
	Commander command.Commander
	// HeartbeatInterval is how often clients are expected to send a
	// heartbeat (the seed says every 30–60 s); a member that sent nothing
	// for two intervals is removed, announced and disconnected. Default
	// 60 s.
	HeartbeatInterval time.Duration
	// CommandTimeout bounds one command run for a client. Default 10 s.
	CommandTimeout time.Duration
	// CommandQueue caps the commands waiting for the agent; beyond it a
	// command is answered with the error failed ("busy"). Default 64.
	CommandQueue int
	// Logger receives the endpoint's log lines. Default: the hub's.
	Logger *slog.Logger
	// Now is the clock of presence timeouts and sent_at. Default time.Now.
	Now func() time.Time

	tick <-chan time.Time // tests drive presence sweeps with it
}

// V3 is the Aether V3 endpoint of a Hub. Make it with NewV3, mount
// Handler at "/v3/ws/" and call Run.
type V3 struct {
	h   *Hub
	o   V3Options
	log *slog.Logger

	cmds    chan v3command
	running atomic.Bool

	mu      sync.RWMutex
	clients map[string]*v3member            // by client id, every group
	groups  map[string]map[string]*v3member // group -> client id -> member
}

// v3member is one connected client (conn nil: the agent).
type v3member struct {
	id, group string
	conn      *wsconn.Conn
	claims    *auth.Claims
	role      auth.Role    // commands to the agent need RunCommand
	lastSeen  atomic.Int64 // unix nanoseconds of the last message, by V3Options.Now
	gone      atomic.Bool  // removed from the maps (replaced or timed out)
}

type v3command struct {
	req  aether.Message
	from *v3member
}

// Validate reports the first field of o that cannot mean anything, as a
// *FieldError. NewV3 calls it, and so does the agent's config check.
func (o *V3Options) Validate() error {
	if o.GatewayID != "" {
		if err := aether.ValidID(o.GatewayID); err != nil {
			return invalidOption("GatewayID", "%v", err)
		}
	}
	if o.Group != "" {
		if err := aether.ValidID(o.Group); err != nil {
			return invalidOption("Group", "%v", err)
		}
	}
	switch {
	case o.HeartbeatInterval < 0:
		return invalidOption("HeartbeatInterval", "is negative (%v)", o.HeartbeatInterval)
	case o.CommandTimeout < 0:
		return invalidOption("CommandTimeout", "is negative (%v)", o.CommandTimeout)
	case o.CommandQueue < 0:
		return invalidOption("CommandQueue", "is negative (%d)", o.CommandQueue)
	}
	return nil
}

// NewV3 returns the V3 endpoint of h.
func NewV3(h *Hub, o V3Options) (*V3, error) {
	if h == nil {
		return nil, errors.New("hub: NewV3: nil Hub")
	}
	if o.GatewayID == "" {
		o.GatewayID = "gateway"
	}
	if o.Group == "" {
		o.Group = "floorhub"
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = 60 * time.Second
	}
	if o.CommandTimeout == 0 {
		o.CommandTimeout = 10 * time.Second
	}
	if o.CommandQueue == 0 {
		o.CommandQueue = 64
	}
	if o.Logger == nil {
		o.Logger = h.log
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	v := &V3{
		h: h, o: o, log: o.Logger,
		cmds:    make(chan v3command, o.CommandQueue),
		clients: map[string]*v3member{},
		groups:  map[string]map[string]*v3member{},
	}
	agent := &v3member{id: o.GatewayID, group: o.Group}
	v.clients[agent.id] = agent
	v.groups[agent.group] = map[string]*v3member{agent.id: agent}
	return v, nil
}

// Handler serves GET /v3/ws/group/{group_id}/client/{client_id}; mount it
// at "/v3/ws/". The token comes in "Authorization: Bearer" or ?token=.
// Refusals before the upgrade are plain HTTP: 400 (bad path or id), 401
// (token), 403 (group not allowed by the token), 409 (the gateway's id),
// and the core's 403/429/503.
func (v *V3) Handler() http.Handler { return http.HandlerFunc(v.serveHTTP) }

// Run runs the agent's commands and the presence and token-expiry sweep
// (every quarter heartbeat interval) until ctx ends, and
// returns when both have stopped. The connections themselves end with the
// Hub's Run (shared shutdown).
func (v *V3) Run(ctx context.Context) error {
	if !v.running.CompareAndSwap(false, true) {
		return errors.New("hub: V3.Run called more than once")
	}
	tick := v.o.tick
	if tick == nil {
		t := time.NewTicker(v.o.HeartbeatInterval / 4)
		defer t.Stop()
		tick = t.C
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		v.commandLoop(ctx)
	}()
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			v.sweep()
		}
	}
}

// Members returns the client ids of group, sorted (the agent included when
// group is its group).
func (v *V3) Members(group string) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.membersLocked(group)
}

func (v *V3) membersLocked(group string) []string {
	ids := make([]string, 0, len(v.groups[group]))
	for id := range v.groups[group] {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (v *V3) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "hub: V3: method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// /v3/ws/group/{group_id}/client/{client_id}
	seg := strings.Split(strings.TrimPrefix(strings.TrimSuffix(r.URL.Path, "/"), "/"), "/")
	if len(seg) != 6 || seg[0] != "v3" || seg[1] != "ws" || seg[2] != "group" || seg[4] != "client" {
		http.Error(w, "hub: V3: the path is /v3/ws/group/{group_id}/client/{client_id}", http.StatusNotFound)
		return
	}
	group, id := seg[3], seg[5]
	if err := aether.ValidID(group); err != nil {
		http.Error(w, "hub: V3: group_id: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := aether.ValidID(id); err != nil {
		http.Error(w, "hub: V3: client_id: "+err.Error(), http.StatusBadRequest)
		return
	}
	claims, err := v.h.o.Verifier.Verify(wsconn.RequestToken(r))
	if err != nil {
		http.Error(w, "hub: V3: "+err.Error(), http.StatusUnauthorized)
		return
	}
	ident, err := v.h.identity(wsconn.RequestToken(r))
	if err != nil {
		http.Error(w, "hub: V3: "+err.Error(), http.StatusUnauthorized)
		return
	}
	if !claims.MayJoin(group) {
		http.Error(w, fmt.Sprintf("hub: V3: the token does not allow group %q", group), http.StatusForbidden)
		return
	}
	if id == v.o.GatewayID {
		http.Error(w, fmt.Sprintf("hub: V3: client_id %q is the gateway's own", id), http.StatusConflict)
		return
	}
	if err := v.mayReplace(id, claims); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	v.h.srv.Serve(w, r, func(conn *wsconn.Conn) wsconn.Session {
		if err := conn.SetUser(claims.User()); err != nil {
			conn.Close(wsconn.ClosePolicy, err.Error())
			return v3closed{}
		}
		m := &v3member{id: id, group: group, conn: conn, claims: claims, role: ident.Role}
		m.lastSeen.Store(v.o.Now().UnixNano())
		if err := v.join(m); err != nil {
			conn.Close(wsconn.ClosePolicy, err.Error())
			return v3closed{}
		}
		return &v3session{v: v, m: m}
	})
}

// mayReplace refuses to let a token restricted to some groups take over a
// client id connected in a group it may not join: replacing would
// disconnect another tenant's client.
func (v *V3) mayReplace(id string, claims *auth.Claims) error {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.mayReplaceLocked(id, claims)
}

func (v *V3) mayReplaceLocked(id string, claims *auth.Claims) error {
	if old := v.clients[id]; old != nil && !claims.MayJoin(old.group) {
		return fmt.Errorf("hub: V3: client_id %q is in use in a group your token does not allow", id)
	}
	return nil
}

// v3closed is the session of a connection refused after the upgrade.
type v3closed struct{}

func (v3closed) Message([]byte) {}
func (v3closed) Limited()       {}
func (v3closed) Closed()        {}

// join registers m, replacing any connection with the same client id, and
// announces it.
func (v *V3) join(m *v3member) error {
	v.mu.Lock()
	if err := v.mayReplaceLocked(m.id, m.claims); err != nil {
		v.mu.Unlock()
		return err
	}
	old := v.clients[m.id]
	if old != nil {
		old.gone.Store(true)
		delete(v.groups[old.group], old.id)
		if len(v.groups[old.group]) == 0 {
			delete(v.groups, old.group)
		}
	}
	v.clients[m.id] = m
	if v.groups[m.group] == nil {
		v.groups[m.group] = map[string]*v3member{}
	}
	v.groups[m.group][m.id] = m
	v.mu.Unlock()
	if old != nil {
		old.conn.Close(CloseReplaced, "replaced: another connection joined as client_id "+m.id)
		if old.group != m.group {
			v.announce(old.group, old.id, PresenceLeave)
		}
	}
	v.announce(m.group, m.id, PresenceJoin)
	return nil
}

// leave removes m (unless it was replaced or removed already) and
// announces event.
func (v *V3) leave(m *v3member, event string) {
	v.mu.Lock()
	if m.gone.Swap(true) || v.clients[m.id] != m {
		v.mu.Unlock()
		return
	}
	delete(v.clients, m.id)
	delete(v.groups[m.group], m.id)
	if len(v.groups[m.group]) == 0 {
		delete(v.groups, m.group)
	}
	v.mu.Unlock()
	v.announce(m.group, m.id, event)
}

// PresencePayload is the payload of a presence message.
type PresencePayload struct {
	Event    string   `json:"event"`     // join, leave or timeout
	ClientID string   `json:"client_id"` // who joined or left
	Members  []string `json:"members"`   // the group's members now, sorted
}

// announce sends a presence message to every member of group.
func (v *V3) announce(group, who, event string) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	p, _ := json.Marshal(PresencePayload{Event: event, ClientID: who, Members: v.membersLocked(group)})
	verb := map[string]string{PresenceJoin: "joined", PresenceLeave: "left", PresenceTimeout: "timed out"}[event]
	msg := aether.Message{MsgType: aether.TypePresence, Target: aether.TargetGroup, FromID: who, GroupID: group,
		Msg: who + " " + verb, Payload: p}
	data, at := v.encode(&msg), time.Now()
	for _, m := range v.groups[group] {
		if m.conn != nil {
			m.conn.Send(wsconn.Message{Data: data, Delay: true, At: at})
		}
	}
}

// sweep removes the members silent for two heartbeat intervals, and closes
// the connections whose token expired (like the first API).
func (v *V3) sweep() {
	now := v.o.Now()
	limit := now.Add(-2 * v.o.HeartbeatInterval).UnixNano()
	v.mu.RLock()
	var silent, expired []*v3member
	for _, m := range v.clients {
		switch {
		case m.conn == nil:
		case m.claims.ExpiresAt != nil && now.After(m.claims.ExpiresAt.Time.Add(v.h.leeway)):
			expired = append(expired, m)
		case m.lastSeen.Load() < limit:
			silent = append(silent, m)
		}
	}
	v.mu.RUnlock()
	// Each leaves before its connection is closed: the close ends the
	// session, whose own leave would otherwise race this one and could
	// announce a timeout as a plain leave.
	for _, m := range expired {
		env := aether.ErrorEnvelope(aether.CodeTokenExpired, errors.New("hub: V3: the token expired: reconnect with a fresh one"))
		env.GroupID = m.group
		m.conn.Send(wsconn.Message{Data: v.encode(&env)})
		v.leave(m, PresenceLeave)
		m.conn.Close(wsconn.ClosePolicy, "token expired")
	}
	for _, m := range silent {
		v.leave(m, PresenceTimeout)
		m.conn.Close(ClosePresenceTimeout, fmt.Sprintf("presence timeout: nothing received for %v (send a heartbeat every %v)", 2*v.o.HeartbeatInterval, v.o.HeartbeatInterval))
	}
}

// encode stamps m and returns its JSON.
func (v *V3) encode(m *aether.Message) []byte {
	m.Stamp(v.o.Now())
	b, err := m.Encode()
	if err != nil {
		// Only a payload that is not an object fails, and every payload
		// here was decoded as one or built by this file.
		v.log.Error("hub: V3: encoding an envelope failed", "err", err)
		return nil
	}
	return b
}

// v3session is one client's connection.
type v3session struct {
	v *V3
	m *v3member

	limitedSent bool
}

// Message implements wsconn.Session.
func (s *v3session) Message(data []byte) {
	s.limitedSent = false
	v, m := s.v, s.m
	if m.gone.Load() {
		return // replaced or timed out: its connection is closing
	}
	m.lastSeen.Store(v.o.Now().UnixNano())
	msg, err := aether.Decode(data)
	if err != nil {
		s.refuse(aether.CodeInvalidMessage, err)
		return
	}
	switch {
	case msg.MsgType == aether.TypePresence:
		s.refuse(aether.CodeInvalidMessage, aether.Invalid("msg_type", "presence messages are sent by the server only"))
		return
	case msg.GroupID != "" && msg.GroupID != m.group:
		s.refuse(aether.CodeInvalidMessage, aether.Invalid("group_id", "%q is not your group %q: messages go to the sender's own group (use target direct to reach one client elsewhere)", msg.GroupID, m.group))
		return
	case msg.MsgType == aether.TypeHeartbeat && msg.Target != aether.TargetEcho:
		s.refuse(aether.CodeInvalidMessage, aether.Invalid("target", "a heartbeat goes to the server only: use target echo"))
		return
	case msg.Target == aether.TargetBroadcast && !m.claims.Broadcast:
		s.refuse(aether.CodeForbidden, aether.Invalid("target", "broadcast needs a token with the broadcast claim"))
		return
	}
	// The server's word on who sent it, whatever the client wrote.
	msg.FromID, msg.GroupID = m.id, m.group
	v.route(m, &msg)
}

// refuse answers the sender with an error envelope.
func (s *v3session) refuse(code string, err error) {
	env := aether.ErrorEnvelope(code, err)
	env.GroupID = s.m.group
	s.m.conn.SendWait(s.m.conn.Context(), wsconn.Message{Data: s.v.encode(&env)})
}

// Limited implements wsconn.Session: one error per burst of refused
// messages (the core closes the connection if the burst goes on).
func (s *v3session) Limited() {
	if s.limitedSent {
		return
	}
	s.limitedSent = true
	s.refuse(aether.CodeRateLimited, errors.New("hub: V3: message rate limit exceeded; messages are being dropped"))
}

// Closed implements wsconn.Session.
func (s *v3session) Closed() { s.v.leave(s.m, PresenceLeave) }

// route delivers a valid, filled message from m.
//
// What one member sends to others (direct, group, broadcast) and presence
// is fan-out, marked Delay: it may wait the write delay
// (wsconn.Options.WriteDelay) to share a write with the recipient's other
// messages; the recipient did not ask for it at this instant, and a few
// tens of ms are nothing to people and devices exchanging messages over
// a floor. What answers the sender's own message (echo, errors, the
// agent's command RESULT) is written at once: the sender waits for it.
func (v *V3) route(from *v3member, msg *aether.Message) {
	switch msg.Target {
	case aether.TargetEcho:
		from.conn.SendWait(from.conn.Context(), wsconn.Message{Data: v.encode(msg)})
	case aether.TargetDirect:
		v.mu.RLock()
		to := v.clients[msg.ToID]
		v.mu.RUnlock()
		// A token restricted to some groups reaches only clients in
		// those; to it, the others look absent (no tenant learns who is
		// connected in another).
		if to == nil || !from.claims.MayJoin(to.group) {
			env := aether.ErrorEnvelope(aether.CodeNotConnected, aether.Invalid("to_id", "no client %q is connected (that you may reach)", msg.ToID))
			env.GroupID = from.group
			from.conn.SendWait(from.conn.Context(), wsconn.Message{Data: v.encode(&env)})
			return
		}
		if to.conn == nil {
			v.toAgent(from, msg, true)
			return
		}
		to.conn.Send(wsconn.Message{Data: v.encode(msg), Delay: true})
	case aether.TargetGroup:
		data, at := v.encode(msg), time.Now()
		agent := false
		v.mu.RLock()
		for _, to := range v.groups[from.group] {
			if to.conn == nil {
				agent = true
				continue
			}
			to.conn.Send(wsconn.Message{Data: data, Delay: true, At: at})
		}
		v.mu.RUnlock()
		if agent {
			v.toAgent(from, msg, false)
		}
	case aether.TargetBroadcast:
		data, at := v.encode(msg), time.Now()
		v.mu.RLock()
		for _, to := range v.clients {
			if to.conn != nil {
				to.conn.Send(wsconn.Message{Data: data, Delay: true, At: at})
			}
		}
		v.mu.RUnlock()
		v.toAgent(from, msg, false)
	}
}

// toAgent hands a message that reached the agent to its command worker.
// Only commands mean anything to the agent; a command sent to a whole
// group or everyone is answered only if the agent runs it.
func (v *V3) toAgent(from *v3member, msg *aether.Message, direct bool) {
	if msg.MsgType != aether.TypeCmd {
		return
	}
	select {
	case v.cmds <- v3command{req: *msg, from: from}:
	default:
		if direct {
			v.replyTo(from, msg, nil, nil, aether.CodeFailed, errors.New("hub: V3: the gateway is busy; retry later"))
		}
	}
}

func (v *V3) commandLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-v.cmds:
			v.runCommand(ctx, &c)
		}
	}
}

func (v *V3) runCommand(ctx context.Context, c *v3command) {
	direct := c.req.Target == aether.TargetDirect
	args, reqID := aether.CommandArgs(&c.req)
	if v.o.Commander == nil {
		if direct {
			v.replyTo(c.from, &c.req, reqID, nil, aether.CodeUnknownCommand, fmt.Errorf("hub: V3: %q: this gateway runs no commands", c.req.Cmd))
		}
		return
	}
	name := aether.CommandName(c.req.Cmd)
	if c.from.conn != nil && !c.from.role.May(auth.RunCommand) {
		if direct {
			v.replyTo(c.from, &c.req, reqID, nil, aether.CodeForbidden, fmt.Errorf("hub: V3: %q: %s may not %s", c.req.Cmd, c.from.role, auth.RunCommand))
		}
		return
	}
	cctx, cancel := context.WithTimeout(ctx, v.o.CommandTimeout)
	res, err := v.o.Commander.Command(cctx, name, args)
	cancel()
	if err != nil && !direct && errors.Is(err, command.ErrUnknownCommand) {
		return // meant for other members
	}
	v.replyTo(c.from, &c.req, reqID, res, command.ErrorCode(err), err)
}

// replyTo sends the agent's RESULT to the member that sent req, if it is
// still connected.
func (v *V3) replyTo(to *v3member, req *aether.Message, reqID json.RawMessage, res any, code string, err error) {
	if to.gone.Load() {
		return
	}
	r := aether.Reply(req, reqID, res, code, err)
	r.FromID, r.GroupID = v.o.GatewayID, v.o.Group
	to.conn.Send(wsconn.Message{Data: v.encode(&r)})
}
