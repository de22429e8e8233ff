// Package chat is the hub's third front end: the floor chat of seed 001 on
// Socket.IO (package socketio), with its chats, messages and seen marks in
// the store, so that a member who was offline reads them later, with
// unread counts.
//
// A client connects to the namespace "/" with a token (the CONNECT auth
// payload's token, the token query parameter, or Authorization: Bearer);
// the token's uid claim is the user's number, and the seed's userId
// handshake query is accepted only when it is that number. Events, their
// payloads and answers are in docs/chat.md.
package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/hub/socketio"
	"github.com/floorhub/floorhub/store"
)

// Store is what the chat needs of the store (package store implements it).
type Store interface {
	CreateChat(members []int64, now time.Time) (store.Chat, bool, error)
	GetChat(id uint64) (store.Chat, error)
	AppendChat(ctx context.Context, r store.Record) (store.Record, error)
	UserChats(user int64) ([]store.ChatSummary, error)
	ChatMessages(chat uint64, max int) ([]store.Record, error)
	MarkSeen(chat uint64, user int64, seq uint64) error
	// WaitCommitted waits until the record seq is committed.
	WaitCommitted(ctx context.Context, seq uint64) error
}

// Verifier checks a token (auth.Verifier implements it).
type Verifier interface {
	Verify(token string) (*auth.Claims, error)
	// Leeway is the clock skew allowed on exp: a connection ends that long
	// after its token expires.
	Leeway() time.Duration
}

// Authenticator authenticates the dashboard's session cookie and gives a
// token its configured user's id and role; *session.Manager (auth/session)
// satisfies it.
type Authenticator interface {
	Cookie(value string) (auth.Identity, error)
	Token(token string) (auth.Identity, error)
	// Check tells whether an identity still holds (a session: live, and
	// renewed; a token: not expired) and returns its current role.
	Check(id auth.Identity) (auth.Identity, error)
}

// Directory tells which user ids are configured; *session.Manager
// (auth/session) satisfies it.
type Directory interface {
	// KnownUser tells whether id is a configured user's, and whether any
	// user is configured at all.
	KnownUser(id int64) (known, configured bool)
}

// sessionCheck is how often Run checks that the open connections' sessions
// still hold (a logout or a removed user ends them), as the hub checks its
// /ws connections, and ends those whose token has expired.
const sessionCheck = time.Second

// ErrOptions is wrapped by every error of Options.Validate.
var ErrOptions = errors.New("chat: invalid options")

// Options configures a Service. The zero value of each field means its
// default.
type Options struct {
	// Store keeps chats and messages; required.
	Store Store
	// Verifier checks tokens; required unless Auth is set.
	Verifier Verifier
	// Auth, when set, authenticates instead of Verifier: a token (its uid
	// claim, else its configured user's id) or, without one, the
	// dashboard's session cookie; and only roles that may chat (operator,
	// admin) are admitted.
	Auth Authenticator
	// SocketIO configures the Socket.IO and Engine.IO core (origins,
	// payload size, sessions, attachments per packet).
	SocketIO socketio.Options
	// MaxMessageBytes caps a message's text, in bytes of UTF-8. Default
	// 2048.
	MaxMessageBytes int
	// EventsPerSecond caps the events one connection may send per second
	// (a burst of as many is allowed); beyond it an event is refused with
	// an exception. Default 20.
	EventsPerSecond int
	// MaxConnsPerUser caps one user's connections at once, and their
	// CONNECTs a second; one more is refused with a connect_error.
	// Default 10.
	MaxConnsPerUser int
	// Users, when set and some user is configured, limits create_chat's
	// receiver_id to the configured users' ids, so that one operator
	// cannot fill the store's chats with made-up ones. Unset, or with no
	// user configured (token-only setups), any positive id is accepted.
	Users Directory
	// MaxChatsPerUser caps the chats a user belongs to: past it,
	// create_chat refuses to start another (an existing one is still
	// returned). Default 100.
	MaxChatsPerUser int
	// History caps the messages chat_messages returns (the newest).
	// Default 500.
	History int
	// Timeout bounds the store's commit of one message. Default 10 s.
	Timeout time.Duration
	// Stamp fills a new message's record: TS, BootID, Mono, ClockSynced
	// (the agent stamps it as it stamps readings). Default: TS from Now,
	// ClockSynced true.
	Stamp func(store.Record) store.Record
	// Logger receives the chat's log lines. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock for message times, the event rate limit and token
	// expiry; it must not step back (time.Now's monotonic reading does
	// not). Default time.Now.
	Now func() time.Time
}

// Validate reports the first field of o that cannot mean anything.
func (o *Options) Validate() error {
	for _, f := range [...]struct {
		name string
		v    int64
	}{{"MaxMessageBytes", int64(o.MaxMessageBytes)}, {"EventsPerSecond", int64(o.EventsPerSecond)},
		{"MaxConnsPerUser", int64(o.MaxConnsPerUser)}, {"MaxChatsPerUser", int64(o.MaxChatsPerUser)}, {"History", int64(o.History)}, {"Timeout", int64(o.Timeout)}} {
		if f.v < 0 {
			return fmt.Errorf("%w: %s is negative", ErrOptions, f.name)
		}
	}
	return o.SocketIO.Validate()
}

// Service is the chat: mount it at /socket.io/.
type Service struct {
	o     Options
	sio   *socketio.Server
	start time.Time // by Options.Now: the origin of since

	mu     sync.Mutex
	online map[int64]map[*socketio.Socket]*user // user id -> their connections
	// joins limits each user's CONNECTs to MaxConnsPerUser a second: a
	// connection's event bucket starts full, so leaving and joining again
	// would otherwise lift events_per_second (and each CONNECT reads the
	// user's chats). Kept past the connections, until full again (expire).
	joins  map[int64]*limiter
	closed bool

	// late carries the messages appended whose commit a post stopped
	// waiting for (Timeout): Run delivers each once it is on disk.
	late chan store.Record
}

// lateQueue bounds the messages waiting for a slow commit to be
// delivered; beyond it, one is kept and read in the history, but not
// delivered live.
const lateQueue = 256

// ErrPending is wrapped by the error of a message that was taken but not
// yet committed when the post stopped waiting: it reaches the chat once
// it is, and sending it again would post it twice.
var ErrPending = errors.New("not on disk yet")

// New returns a Service.
func New(o Options) (*Service, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Store == nil || (o.Verifier == nil && o.Auth == nil) {
		return nil, fmt.Errorf("%w: Store and Verifier (or Auth) are required", ErrOptions)
	}
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&o.MaxMessageBytes, 2048)
	def(&o.EventsPerSecond, 20)
	def(&o.MaxConnsPerUser, 10)
	def(&o.MaxChatsPerUser, 100)
	def(&o.History, 500)
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Stamp == nil {
		now := o.Now
		o.Stamp = func(r store.Record) store.Record {
			r.TS, r.ClockSynced = now(), true
			return r
		}
	}
	if o.SocketIO.Engine.Logger == nil {
		o.SocketIO.Engine.Logger = o.Logger
	}
	sio, err := socketio.NewServer(o.SocketIO)
	if err != nil {
		return nil, err
	}
	s := &Service{o: o, sio: sio, start: o.Now(), online: make(map[int64]map[*socketio.Socket]*user), joins: make(map[int64]*limiter),
		late: make(chan store.Record, lateQueue)}
	sio.Namespace("/", s.connect)
	return s, nil
}

// since is the time on the Service's clock (Options.Now) since it started.
func (s *Service) since() time.Duration { return s.o.Now().Sub(s.start) }

// ServeHTTP serves the Socket.IO endpoint.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.sio.ServeHTTP(w, r) }

// Run serves until ctx ends, then closes every session and waits for
// their goroutines. Meanwhile, every sessionCheck, it ends the connections
// whose token has expired or whose session no longer holds (see expire).
func (s *Service) Run(ctx context.Context) error {
	tick := time.NewTicker(sessionCheck)
	defer tick.Stop()
	lateDone := make(chan struct{})
	go func() {
		defer close(lateDone)
		s.deliverLate(ctx)
	}()
	defer func() { <-lateDone }()
	for {
		select {
		case <-tick.C:
			s.expire()
			continue
		case <-ctx.Done():
		}
		break
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.sio.Close(cctx)
}

// expire ends, as on /ws, the connections whose token has expired (with
// the verifier's leeway), and those whose session no longer holds or no
// longer may chat (a logout, a removed user or role): the client gets a
// DISCONNECT and connects again with a fresh token, or logs in again. An
// open connection is a use of its session: the check renews it. One sweep
// for all connections, rather than a timer each, which every connection
// would keep.
func (s *Service) expire() {
	leeway := auth.DefaultLeeway
	if s.o.Verifier != nil {
		leeway = s.o.Verifier.Leeway()
	}
	now := s.o.Now()
	var check []*user
	s.mu.Lock()
	for id, l := range s.joins {
		if l.full(float64(s.o.MaxConnsPerUser), s.since()) {
			delete(s.joins, id) // as a new one would start
		}
	}
	for _, conns := range s.online {
		for _, u := range conns {
			if u.ident.Session != "" || (!u.ident.Expires.IsZero() && now.After(u.ident.Expires.Add(leeway))) {
				check = append(check, u)
			}
		}
	}
	s.mu.Unlock()
	for _, u := range check { // not under mu: Disconnect calls left
		if u.ident.Session != "" {
			if id, err := s.o.Auth.Check(u.ident); err == nil && id.May(auth.Chat) {
				continue
			}
		}
		u.so.Disconnect()
	}
}

// Online returns the number of users connected.
func (s *Service) Online() int {
	s.mu.Lock()
	n := len(s.online)
	s.mu.Unlock()
	return n
}

// user is one authenticated connection.
type user struct {
	s     *Service
	so    *socketio.Socket
	ident auth.Identity // as authenticated (expire checks it)
	lim   limiter
}

// refuse is a connect_error's text.
func refuse(format string, args ...any) error {
	return &socketio.Refusal{Message: fmt.Sprintf(format, args...)}
}

// token finds the client's token: the CONNECT auth payload, the token
// query parameter, or Authorization: Bearer.
func token(so *socketio.Socket, authPayload json.RawMessage) (tok string, userID string) {
	var a struct {
		Token  string          `json:"token"`
		UserID json.RawMessage `json:"userId"`
	}
	_ = json.Unmarshal(authPayload, &a)
	hs := so.Handshake()
	tok = a.Token
	if tok == "" {
		tok = hs.Query.Get("token")
	}
	if tok == "" {
		if h := hs.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			tok = strings.TrimSpace(h[7:])
		}
	}
	userID = hs.Query.Get("userId")
	if userID == "" && len(a.UserID) > 0 {
		userID = strings.Trim(string(a.UserID), `"`)
	}
	return tok, userID
}

// sessionCookie is the dashboard's session cookie (auth/session.CookieName).
const sessionCookie = "floorhub_session"

// errForeignCookie refuses a session cookie sent from another site's page.
var errForeignCookie = errors.New("a session cookie is accepted from the hub's own origin only")

// identify authenticates a client by its token or, with Auth and no token,
// its session cookie.
func (s *Service) identify(so *socketio.Socket, tok string) (auth.Identity, error) {
	if s.o.Auth == nil {
		claims, err := s.o.Verifier.Verify(tok)
		if err != nil {
			return auth.Identity{}, err
		}
		return auth.TokenIdentity(claims, nil), nil
	}
	if tok != "" {
		return s.o.Auth.Token(tok)
	}
	hs := so.Handshake()
	r := http.Request{Header: hs.Header}
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		// As on /ws: a browser's session only from the hub's own origin
		// or one listed by name; "*" does not extend to cookies, or any
		// site's page could chat as whoever visits it.
		if !hs.TrustedOrigin {
			return auth.Identity{}, errForeignCookie
		}
		return s.o.Auth.Cookie(c.Value)
	}
	return auth.Identity{}, auth.ErrMissing
}

// connect admits a client: no token or session, no chat.
func (s *Service) connect(so *socketio.Socket, authPayload json.RawMessage) error {
	tok, qid := token(so, authPayload)
	id, err := s.identify(so, tok)
	if err != nil {
		return refuse("unauthorized: %v", err)
	}
	if id.ID <= 0 {
		return refuse("unauthorized: the token has no chat user id (uid claim)")
	}
	if !id.May(auth.Chat) {
		return refuse("forbidden: %s may not chat", id.Role)
	}
	if qid != "" {
		n, err := strconv.ParseInt(qid, 10, 64)
		if err != nil || n != id.ID {
			return refuse("unauthorized: userId %q is not the token's user", qid)
		}
	}
	u := &user{s: s, so: so, ident: id, lim: newLimiter(float64(s.o.EventsPerSecond), s.since())}
	// Before the connection is online, where expire may end it.
	so.OnDisconnect(u.left)
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return refuse("shutting down")
	case len(s.online[id.ID]) >= s.o.MaxConnsPerUser:
		s.mu.Unlock()
		return refuse("too many connections for user %d (at most %d)", id.ID, s.o.MaxConnsPerUser)
	case !s.join(id.ID):
		s.mu.Unlock()
		return refuse("too many connections for user %d: at most %d a second", id.ID, s.o.MaxConnsPerUser)
	}
	if s.online[id.ID] == nil {
		s.online[id.ID] = make(map[*socketio.Socket]*user)
	}
	s.online[id.ID][so] = u
	s.mu.Unlock()
	// One handler for every event: the same five for every connection
	// would cost each a table of its own.
	so.OnAny(u.event)
	// What arrived while the user was away: the chats with unread counts.
	if list, err := s.chatList(id.ID); err == nil {
		so.Emit("updated_chat_list", list)
	}
	return nil
}

// join takes one of user's CONNECTs off their bucket (joins); s.mu held.
func (s *Service) join(user int64) bool {
	rate, now := float64(s.o.MaxConnsPerUser), s.since()
	l := s.joins[user]
	if l == nil {
		l = &limiter{tokens: rate, last: now}
		s.joins[user] = l
	}
	return l.allow(rate, now)
}

// events are the chat's events and their handlers.
var events = map[string]func(*Service, *user, map[string]any) (string, any, error){
	"create_chat":    (*Service).createChat,
	"create_message": (*Service).createMessage,
	"seen_message":   (*Service).seenMessage,
	"chat_messages":  (*Service).chatMessages,
	"get_chats":      (*Service).getChats,
}

// event handles one of the client's events; others are ignored.
func (u *user) event(name string, args []any, ack func(...any) error) {
	if h := events[name]; h != nil {
		u.s.handle(u, h, args, ack)
	}
}

// left takes the connection off the online users when its socket has
// left.
func (u *user) left(error) {
	s := u.s
	s.mu.Lock()
	delete(s.online[u.ident.ID], u.so)
	if len(s.online[u.ident.ID]) == 0 {
		delete(s.online, u.ident.ID)
	}
	s.mu.Unlock()
}

// handle runs one event: rate limit, payload, the handler; then the
// answer (an exception on error), and the ack when the client asked.
func (s *Service) handle(u *user, h func(*Service, *user, map[string]any) (string, any, error), args []any, ack func(...any) error) {
	var reply string
	var body any
	var err error
	if !u.lim.allow(float64(s.o.EventsPerSecond), s.since()) {
		err = fmt.Errorf("rate limit: at most %d events per second", s.o.EventsPerSecond)
	} else {
		var p map[string]any
		if len(args) > 0 {
			if m, ok := args[0].(map[string]any); ok {
				p = m
			}
		}
		reply, body, err = h(s, u, p)
	}
	if err != nil {
		exc := map[string]any{"status": "error", "message": err.Error()}
		u.so.Emit("exception", exc)
		if ack != nil {
			ack(exc)
		}
		return
	}
	if reply != "" {
		u.so.Emit(reply, body)
	}
	if ack != nil {
		if body == nil {
			body = map[string]any{"status": "ok"}
		}
		ack(body)
	}
}

// ErrBadRequest is wrapped by the errors about an event's payload (and
// Post's arguments).
var ErrBadRequest = errors.New("bad request")

// number reads a positive integer field.
func number(p map[string]any, field string) (int64, error) {
	v, ok := p[field]
	if !ok || v == nil {
		return 0, fmt.Errorf("%w: %s is required", ErrBadRequest, field)
	}
	var n int64
	var err error
	switch x := v.(type) {
	case json.Number:
		n, err = x.Int64()
	case string:
		n, err = strconv.ParseInt(x, 10, 64)
	default:
		err = ErrBadRequest
	}
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%w: %s must be a positive integer", ErrBadRequest, field)
	}
	return n, nil
}

// memberChat returns chat id if u is a member.
func (s *Service) memberChat(u *user, id int64) (store.Chat, error) {
	c, err := s.o.Store.GetChat(uint64(id))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return c, fmt.Errorf("chat %d not found", id)
		}
		return c, err
	}
	for _, m := range c.Members {
		if m == u.ident.ID {
			return c, nil
		}
	}
	return c, fmt.Errorf("chat %d not found", id) // not telling strangers it exists
}

func (s *Service) createChat(u *user, p map[string]any) (string, any, error) {
	to, err := number(p, "receiver_id")
	if err != nil {
		return "", nil, err
	}
	if to == u.ident.ID {
		return "", nil, fmt.Errorf("%w: receiver_id is your own id", ErrBadRequest)
	}
	if s.o.Users != nil {
		if known, configured := s.o.Users.KnownUser(to); configured && !known {
			return "", nil, fmt.Errorf("unknown user %d", to)
		}
	}
	mine, err := s.o.Store.UserChats(u.ident.ID)
	if err != nil {
		return "", nil, err
	}
	if len(mine) >= s.o.MaxChatsPerUser && !slices.ContainsFunc(mine, func(c store.ChatSummary) bool {
		return slices.Equal(c.Members, sortedPair(u.ident.ID, to))
	}) {
		// Checked before the store's transaction: connections of one
		// user at once may pass it together, by at most MaxConnsPerUser.
		return "", nil, fmt.Errorf("too many chats: user %d is in %d (at most %d)", u.ident.ID, len(mine), s.o.MaxChatsPerUser)
	}
	c, _, err := s.o.Store.CreateChat([]int64{u.ident.ID, to}, s.o.Now())
	if err != nil {
		return "", nil, err
	}
	return "chat_created", chatJSON(store.ChatSummary{Chat: c}), nil
}

// sortedPair is the members of a chat of a and b, as the store keeps them.
func sortedPair(a, b int64) []int64 {
	if a > b {
		a, b = b, a
	}
	return []int64{a, b}
}

func (s *Service) createMessage(u *user, p map[string]any) (string, any, error) {
	id, err := number(p, "chat_id")
	if err != nil {
		return "", nil, err
	}
	to, err := number(p, "receiver_id")
	if err != nil {
		return "", nil, err
	}
	text, _ := p["message"].(string)
	if err := s.checkText(text); err != nil {
		return "", nil, err
	}
	c, err := s.memberChat(u, id)
	if err != nil {
		return "", nil, err
	}
	member := false
	for _, m := range c.Members {
		member = member || m == to
	}
	if !member || to == u.ident.ID {
		return "", nil, fmt.Errorf("%w: receiver %d is not the other member of chat %d", ErrBadRequest, to, id)
	}
	rec, err := s.post(c, u.ident.ID, u.ident.User, to, text)
	if err != nil {
		return "", nil, err
	}
	// post delivered response_message to every connection of the
	// members, this one included.
	return "", messageJSON(&rec), nil
}

// checkText refuses an empty, oversized or non-UTF-8 message.
func (s *Service) checkText(text string) error {
	switch {
	case strings.TrimSpace(text) == "":
		return fmt.Errorf("%w: message is required", ErrBadRequest)
	case len(text) > s.o.MaxMessageBytes:
		return fmt.Errorf("%w: message is %d bytes, at most %d", ErrBadRequest, len(text), s.o.MaxMessageBytes)
	case !utf8.ValidString(text):
		return fmt.Errorf("%w: message is not UTF-8", ErrBadRequest)
	case strings.ContainsFunc(text, control):
		// A message of NULs is as empty as one of spaces, and each
		// control character is 6 bytes of JSON to every reader.
		return fmt.Errorf("%w: message has a control character (only tab and line breaks may be in it)", ErrBadRequest)
	}
	return nil
}

// control tells a control character (C0, DEL, C1) other than a tab or a
// line break.
func control(r rune) bool {
	return unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r'
}

// post stores a message durably, then delivers it to every connection of
// every member.
func (s *Service) post(c store.Chat, from int64, name string, to int64, text string) (store.Record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.o.Timeout)
	defer cancel()
	rec, err := s.o.Store.AppendChat(ctx, s.o.Stamp(store.Record{Kind: store.KindChat,
		Chat: &store.ChatMessage{ChatID: c.ID, From: from, FromName: name, To: to, Text: text}}))
	if errors.Is(err, store.ErrInvalid) {
		// Trying again would not store it either (a record over 64 KiB
		// with a long sender's name).
		return rec, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if err != nil && rec.Seq != 0 {
		// Appended: the store commits it when it can (a slow card, a
		// full disk it waits out), and telling the sender to try again
		// would post it twice.
		select {
		case s.late <- rec:
			s.o.Logger.Warn("chat: a message is not on disk yet; it goes to the chat once it is", "chat_id", c.ID, "seq", rec.Seq, "err", err)
		default:
			s.o.Logger.Warn("chat: a message is not on disk yet; once it is, it is in the chat's history but not delivered live (too many wait)", "chat_id", c.ID, "seq", rec.Seq, "err", err)
		}
		return rec, fmt.Errorf("the message is taken but %w (%v); it reaches the chat once it is: do not send it again", ErrPending, err)
	}
	if err != nil {
		s.o.Logger.Warn("chat: a message was not stored", "chat_id", c.ID, "from", from, "err", err)
		return rec, errors.New("the message could not be stored; try again")
	}
	return rec, s.deliver(c.Members, &rec)
}

// deliver sends a stored message to every connection of members.
func (s *Service) deliver(members []int64, rec *store.Record) error {
	// Encoded once for every connection: with many sockets the encoding,
	// not the message, is what multiplies.
	f, err := socketio.NewFrame("/", "response_message", messageJSON(rec))
	if err != nil {
		return err
	}
	for _, so := range s.sockets(members) {
		so.EmitFrame(f)
	}
	return nil
}

// deliverLate delivers the messages of s.late once they are committed,
// until ctx ends.
func (s *Service) deliverLate(ctx context.Context) {
	for {
		select {
		case rec := <-s.late:
			// Not Flush: it returns at the next failed commit, and the
			// store keeps the record and commits it once the disk lets it.
			if err := s.o.Store.WaitCommitted(ctx, rec.Seq); err != nil {
				if ctx.Err() == nil {
					s.o.Logger.Warn("chat: a message waiting for its commit was not delivered live", "chat_id", rec.Chat.ChatID, "seq", rec.Seq, "err", err)
				}
				continue
			}
			c, err := s.o.Store.GetChat(rec.Chat.ChatID)
			if err == nil {
				err = s.deliver(c.Members, &rec)
			}
			if err != nil {
				s.o.Logger.Warn("chat: a message stored late was not delivered live", "chat_id", rec.Chat.ChatID, "seq", rec.Seq, "err", err)
			}
		case <-ctx.Done():
			return
		}
	}
}

// sockets returns the connections of users.
func (s *Service) sockets(users []int64) []*socketio.Socket {
	var out []*socketio.Socket
	s.mu.Lock()
	for _, u := range users {
		for so := range s.online[u] {
			out = append(out, so)
		}
	}
	s.mu.Unlock()
	return out
}

func (s *Service) seenMessage(u *user, p map[string]any) (string, any, error) {
	id, err := number(p, "chat_id")
	if err != nil {
		return "", nil, err
	}
	if _, err := s.memberChat(u, id); err != nil {
		return "", nil, err
	}
	if err := s.o.Store.MarkSeen(uint64(id), u.ident.ID, 0); err != nil {
		return "", nil, err
	}
	return "", nil, nil
}

// historyBytes bounds the text of one chat_messages answer, the newest
// messages: 500 of the default max_message_bytes fit, and a larger one
// cannot make an answer outgrow what a session may have waiting
// (engineio's QueueBytes, 16 MiB): sent twice with an ack, each quote
// 2 bytes of JSON (a control character, which older messages may hold,
// 6).
const historyBytes = 1 << 20

func (s *Service) chatMessages(u *user, p map[string]any) (string, any, error) {
	id, err := number(p, "chat_id")
	if err != nil {
		return "", nil, err
	}
	if _, err := s.memberChat(u, id); err != nil {
		return "", nil, err
	}
	recs, err := s.o.Store.ChatMessages(uint64(id), s.o.History)
	if err != nil {
		return "", nil, err
	}
	// The newest that fit historyBytes.
	for i, n := len(recs)-1, 0; i >= 0; i-- {
		if n += len(recs[i].Chat.Text); n > historyBytes {
			recs = recs[i+1:]
			break
		}
	}
	out := make([]*Message, len(recs))
	for i := range recs {
		out[i] = messageJSON(&recs[i])
	}
	return "get_all_chat_messages", out, nil
}

func (s *Service) getChats(u *user, _ map[string]any) (string, any, error) {
	list, err := s.chatList(u.ident.ID)
	if err != nil {
		return "", nil, err
	}
	return "updated_chat_list", list, nil
}

func (s *Service) chatList(user int64) ([]*chatView, error) {
	sums, err := s.o.Store.UserChats(user)
	if err != nil {
		s.o.Logger.Warn("chat: reading a user's chats", "user", user, "err", err)
		return nil, errors.New("the chats could not be read")
	}
	out := make([]*chatView, len(sums))
	for i := range sums {
		out[i] = chatJSON(sums[i])
	}
	return out, nil
}

// Post writes a message into chat id as a central user (the chat_post
// command): from is the central user's number (negative), name their
// name. It returns the stored message as the chat shows it.
func (s *Service) Post(id uint64, from int64, name, text string) (*Message, error) {
	if err := s.checkText(text); err != nil {
		return nil, err
	}
	c, err := s.o.Store.GetChat(id)
	if err != nil {
		return nil, err
	}
	rec, err := s.post(c, from, name, 0, text)
	if err != nil {
		return nil, err
	}
	return messageJSON(&rec), nil
}

// Message is a message as the chat's events carry it (docs/chat.md).
type Message struct {
	ID         uint64 `json:"id"` // the record's seq
	ChatID     uint64 `json:"chat_id"`
	SenderID   int64  `json:"sender_id"`
	SenderName string `json:"sender_name"`
	ReceiverID int64  `json:"receiver_id"`
	Message    string `json:"message"`
	CreatedAt  string `json:"created_at"` // RFC 3339
}

func messageJSON(r *store.Record) *Message {
	m := r.Chat
	return &Message{ID: r.Seq, ChatID: m.ChatID, SenderID: m.From, SenderName: m.FromName, ReceiverID: m.To,
		Message: m.Text, CreatedAt: r.TS.UTC().Format(time.RFC3339Nano)}
}

// chatView is a chat as one member sees it.
type chatView struct {
	ID          uint64   `json:"id"`
	Members     []int64  `json:"members"`
	CreatedAt   string   `json:"created_at"`
	UnreadCount int      `json:"unread_count"`
	LastMessage *Message `json:"last_message"`
}

func chatJSON(c store.ChatSummary) *chatView {
	v := &chatView{ID: c.ID, Members: c.Members, CreatedAt: c.Created.UTC().Format(time.RFC3339Nano), UnreadCount: c.Unread}
	if c.Last != nil {
		v.LastMessage = messageJSON(c.Last)
	}
	return v
}

// limiter is a token bucket: rate events a second, bursts of rate; it
// starts full. Times are durations on one clock (the Service's, since it
// started: smaller than a time.Time in every connection). Used only by its
// connection's handlers, which run one at a time.
type limiter struct {
	tokens float64
	last   time.Duration
}

func newLimiter(rate float64, now time.Duration) limiter { return limiter{tokens: rate, last: now} }

// full tells whether the bucket would be full at now: as a new one.
func (l *limiter) full(rate float64, now time.Duration) bool {
	return l.tokens+(now-l.last).Seconds()*rate >= rate
}

func (l *limiter) allow(rate float64, now time.Duration) bool {
	if now > l.last {
		l.tokens = min(rate, l.tokens+(now-l.last).Seconds()*rate)
		l.last = now
	}
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}
