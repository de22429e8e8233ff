package wsconn

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Message is one frame queued for a connection: text unless Binary.
type Message struct {
	// Data is the frame's payload. It is not copied: it must not change
	// after Send, and it may be shared by many connections.
	Data []byte
	// Binary sends Data as a binary frame instead of a text frame.
	Binary bool
	// Key, when not zero, makes the message replaceable: once the client
	// falls behind (Options.CoalesceAfter messages waiting), a later
	// message with the same Key removes this one if it still waits and
	// goes to the tail of the queue (so the queue stays in the order
	// messages were produced). A replacing message never overflows the
	// queue.
	Key uint64
	// Seq is the log sequence number the message carries, if any; the
	// connection remembers the highest one written (LastSeq).
	Seq uint64
	// Merge, when set on a message with a Key, combines the waiting message
	// it replaces into itself instead of dropping it.
	Merge Merger
	// Delay lets the message wait up to Options.WriteDelay before it is
	// written, so that the messages queued meanwhile go out with it in
	// one write. Set it on fan-out (published data); leave it unset on a
	// reply to the client's own request, which is written at once and
	// takes whatever waits before it along (the order never changes). A
	// message merged by coalescing keeps the newer one's Delay and At.
	Delay bool
	// At is when a delayed message was produced; zero means when Send is
	// called. Delayed messages wait in windows of WriteDelay, the same
	// for every connection of the Server (the first delayed message
	// produced after a window's end opens the next): the ones produced
	// in a window are written at its end. A fan-out that stamps every
	// copy of a message with one At therefore writes it to all its
	// connections at the same moment, however long queueing it on each
	// of them took.
	At time.Time

	op      byte          // a control frame's opcode (ping, pong); 0 for Data's frame
	framed  bool          // Data is a frame already (the rest of one a direct write began)
	due     time.Duration // a delayed message's write time (since the Server's epoch); 0: at once
	written chan struct{} // closed once written (SendFlushed)
}

// Merger combines a waiting message into a newer one with the same Key.
type Merger interface {
	// MergeOlder returns the message to queue in place of older and newer
	// (newer being the message whose Merge field holds this Merger). The
	// result may leave Data nil: the writer then calls Encode on its
	// Merge, once, when it writes it (a client that has fallen behind
	// may see many merges for each message written).
	MergeOlder(older, newer Message) Message
	// Encode returns the frame's payload.
	Encode() []byte
}

// Conn is one client connection.
type Conn struct {
	s    *Server
	nc   net.Conn
	raw  *rawSocket // nil when the socket is not a plain one (TLS): net.Conn then
	addr string
	done chan struct{} // closed when the connection is finished

	// Touched only by the reader, one goroutine at a time (see readLoop).
	rateTokens  float64
	rateLast    time.Time
	refused     int
	authed      bool
	readForever bool             // the read deadline was lifted (no pings: PingInterval negative)
	in          []byte           // bytes of a frame not all in yet; nil between frames
	msg         messageAssembler // a fragmented message

	mu          sync.Mutex
	user        string
	q           []Message // q[head:] waits; entries with dead set were replaced
	dead        []bool
	head        int
	live        int            // waiting messages, replaced ones excluded
	queued      int64          // their bytes (Data as queued; QueueBytes)
	keys        map[uint64]int // Key -> index in q; built once coalescing may start
	deadlineAt  time.Time      // when the write deadline was last moved
	writing     bool           // a writer goroutine runs
	force       int            // the next force waiting messages are written at once
	delayed     bool           // delayT is armed: the writer starts when it fires ...
	due         time.Duration  // ... at this time since the Server's epoch
	fired       time.Duration  // the due time of the timer's last firing: what is due by then goes
	delayT      timer          // made at the first delayed message, then reused
	readerDone  bool
	readErr     error // why the reader ended (ReadErr)
	closing     bool  // Close was called: the close frame follows the queue
	closeSent   bool
	closeCode   int
	closeReason string
	lastSeq     uint64
	writes      uint64        // writes completed: the writer's progress
	full        bool          // the queue was found full at fullAt ...
	fullAt      time.Time     // ... (by Options.Now) ...
	fullWrites  uint64        // ... with this many writes completed
	space       chan struct{} // closed when room appears; nil when nobody waits
	finished    bool
	deflate     bool   // permessage-deflate was negotiated (set before the first write)
	zbuf        []byte // the writers' compression buffer (one writer at a time)
	pingTimer   *time.Timer
	graceTimer  *time.Timer
	ctx         context.Context
	cancel      context.CancelFunc
}

func newConn(s *Server, nc net.Conn, addr string) *Conn {
	c := &Conn{s: s, nc: nc, raw: newRawSocket(nc, &s.readPool), addr: addr, done: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.rateTokens = float64(s.opts().MessagesPerSecond)
	c.rateLast = s.opts().Now()
	nc.SetReadDeadline(time.Now().Add(s.opts().AuthTimeout))
	if iv := s.opts().PingInterval; iv > 0 {
		c.mu.Lock()
		c.pingTimer = time.AfterFunc(iv, c.ping)
		c.mu.Unlock()
	}
	return c
}

// Addr returns the client's IP address.
func (c *Conn) Addr() string { return c.addr }

// User returns the user set by SetUser, or "".
func (c *Conn) User() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.user
}

// Context returns a context that ends when the connection starts closing.
// Goroutines a session starts for the connection watch it.
func (c *Conn) Context() context.Context { return c.ctx }

// Done returns a channel closed when the connection is finished.
func (c *Conn) Done() <-chan struct{} { return c.done }

// LastSeq returns the highest Message.Seq written to the client.
func (c *Conn) LastSeq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastSeq
}

// SetUser marks the connection authenticated as user, which lifts the
// authentication deadline and counts the connection against the user's
// limit (ErrTooManyForUser). Setting the same user again is a no-op;
// another user is ErrUserSet.
func (c *Conn) SetUser(user string) error {
	s := c.s
	s.mu.Lock()
	c.mu.Lock()
	defer s.mu.Unlock()
	defer c.mu.Unlock()
	switch {
	case c.user == user:
		return nil
	case c.user != "":
		return ErrUserSet
	case s.opts().MaxConnsPerUser > 0 && s.users[user] >= s.opts().MaxConnsPerUser:
		return ErrTooManyForUser
	}
	if _, ok := s.conns[c]; !ok {
		return ErrClosed
	}
	s.users[user]++
	c.user = user
	return nil
}

// Send queues m without blocking. It returns ErrClosed when the connection
// is closing, and ErrOverflow when the queue was full: the connection is
// then being closed with CloseSlowConsumer.
func (c *Conn) Send(m Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return ErrClosed
	}
	if m.Key != 0 && c.live >= c.s.opts().CoalesceAfter {
		if c.keys == nil {
			c.indexKeys()
		}
		if i, ok := c.keys[m.Key]; ok {
			old := c.q[i]
			c.dead[i] = true
			c.q[i] = Message{}
			c.live--
			c.unqueued(&old)
			c.s.coalesced.Add(1)
			if m.Merge != nil {
				delay, at := m.Delay, m.At
				m = m.Merge.MergeOlder(old, m)
				m.Delay, m.At = delay, at
			}
			c.push(m)
			return nil
		}
	}
	if over := c.overBytes(&m); over || c.live >= c.s.opts().QueueLen {
		atMax := over || c.live >= c.s.opts().QueueMax
		stalled := !atMax && c.stalled()
		if atMax || stalled {
			c.s.overflows.Add(1)
			c.closeLocked(CloseSlowConsumer, overflowReason(c.lastSeq), true)
			if stalled && c.writing {
				// Its writer is stuck in a write to a peer that stopped
				// reading: CloseGrace for it to read again and get the
				// close frame, not the rest of WriteWait.
				c.nc.SetWriteDeadline(time.Now().Add(c.s.opts().CloseGrace))
			}
			return ErrOverflow
		}
	}
	c.push(m)
	return nil
}

// overBytes tells whether queueing m would take the waiting bytes past
// QueueBytes; c.mu held.
func (c *Conn) overBytes(m *Message) bool {
	q := c.s.opts().QueueBytes
	return q > 0 && c.live > 0 && c.queued+int64(len(m.Data)) > q
}

// unqueued takes m, which no longer waits, off the waiting bytes; c.mu
// held. Never below 0: a merged message's Data may have been encoded
// after it was counted (emptied starts the count over anyway).
func (c *Conn) unqueued(m *Message) {
	c.queued = max(c.queued-int64(len(m.Data)), 0)
}

// stalled tells whether the writes of a connection with a full queue made
// no progress for StallTimeout since the queue was found full. A full
// queue whose writer is only waiting for the CPU is not stalled: the
// queue grows meanwhile, up to QueueMax. c.mu held.
func (c *Conn) stalled() bool {
	o := c.s.opts()
	now := o.Now()
	if c.delayed {
		// Waiting out WriteDelay is not a lack of progress. (push starts
		// the writer long before the queue fills; this is the rule, not
		// the usual path.)
		c.full = false
		return false
	}
	if !c.full || c.writes != c.fullWrites {
		c.full, c.fullAt, c.fullWrites = true, now, c.writes
		return false
	}
	return now.Sub(c.fullAt) >= o.StallTimeout
}

// SendWait queues m, first waiting while the queue is at least half full so
// that live traffic keeps room. It returns ErrClosed when the connection
// closes, or ctx's error.
func (c *Conn) SendWait(ctx context.Context, m Message) error {
	return c.waitRoom(ctx, &m)
}

// WaitRoom waits, like SendWait, while the queue is at least half full,
// and queues nothing. A front end whose reply must be queued under a lock
// of its own (so that it is ordered with what its fan-out queues under
// that lock) waits here first, then calls Send with the lock held.
func (c *Conn) WaitRoom(ctx context.Context) error {
	return c.waitRoom(ctx, nil)
}

// waitRoom waits for room and then queues m, if not nil.
func (c *Conn) waitRoom(ctx context.Context, m *Message) error {
	for {
		c.mu.Lock()
		if c.closing {
			c.mu.Unlock()
			return ErrClosed
		}
		if c.live < (c.s.opts().QueueLen+1)/2 {
			if m != nil {
				c.push(*m)
			}
			c.mu.Unlock()
			return nil
		}
		if c.space == nil {
			c.space = make(chan struct{})
		}
		space := c.space
		c.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.ctx.Done():
			return ErrClosed
		}
	}
}

// SendFlushed queues m (as Send; its Key is ignored) and waits until it
// has been written to the socket, the connection closes (ErrClosed) or
// ctx ends. A reply that must be on its way before the session goes on
// (one that another connection's answer must not overtake) is sent so.
func (c *Conn) SendFlushed(ctx context.Context, m Message) error {
	w := make(chan struct{})
	m.Key, m.written = 0, w
	if err := c.Send(m); err != nil {
		return err
	}
	select {
	case <-w:
		return nil
	case <-c.ctx.Done():
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close sends a close frame with code and reason after the messages already
// queued, then ends the connection. Later calls do nothing.
func (c *Conn) Close(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, reason, false)
}

func (c *Conn) closeLocked(code int, reason string, drop bool) {
	if c.closing {
		return
	}
	c.closing = true
	c.closeCode, c.closeReason = code, reason
	c.cancel()
	if drop {
		c.dropQueue()
	}
	c.startWriter()
}

// push appends m; c.mu held.
func (c *Conn) push(m Message) {
	// Compact when written entries dominate, or replaced ones do: while
	// the writer is stuck in a write, coalescing leaves a dead entry per
	// message and the head does not move.
	if c.head > 64 && c.head*2 > len(c.q) || len(c.q)-c.head > 2*c.live+64 {
		c.compact()
	}
	if m.Key != 0 && c.keys != nil {
		c.keys[m.Key] = len(c.q)
	}
	m.due = 0
	if m.Delay {
		m.due = c.dueOf(m.At)
	}
	c.live++
	c.queued += int64(len(m.Data))
	c.q = append(c.q, m)
	c.dead = append(c.dead, false)
	if m.due == 0 || c.live >= c.s.opts().delayFlush() {
		// A message that may not wait goes now, and what waits before
		// it goes first; so does a queue long enough to write (half of
		// CoalesceAfter: the delay never makes a client look slow or
		// coalesces its updates).
		c.force = c.live
		if !c.tryDirect() {
			c.startWriter()
		}
		return
	}
	c.startWriterAt(m.due)
}

// tryDirect writes the one waiting message itself, in the sender's
// goroutine, with a write that does not wait (the kernel takes it or
// not), and tells whether that sent all of it; c.mu held. A fan-out to
// many idle connections then costs one system call each, like an event
// loop's, instead of starting, scheduling and parking a writer goroutine
// for each. Whatever is not written (a full socket buffer, a part of
// the frame, an error) is left to the writer, which waits for room, keeps
// the order and reports a broken socket.
func (c *Conn) tryDirect() bool {
	if c.raw == nil || c.live != 1 || c.writing || c.finished || c.closing || c.s.opts().beforeWrite != nil {
		return false
	}
	m, _ := c.peek()
	if !c.deadlineAt.IsZero() {
		// A writer set one: a deadline in the past would fail the write
		// before it is tried.
		c.moveWriteDeadline()
	}
	bp := batchPool.Get().(*[]byte)
	buf := c.appendFrame((*bp)[:0], m)
	n := c.raw.tryWrite(buf)
	if hook := c.s.opts().directWrote; hook != nil {
		hook(n, len(buf))
	}
	if 0 < n && n < len(buf) {
		// The rest of the frame goes first, as it is, and can no longer
		// be replaced.
		if c.keys != nil && m.Key != 0 {
			delete(c.keys, m.Key)
		}
		c.unqueued(m)
		*m = Message{Data: append([]byte(nil), buf[n:]...), framed: true, Seq: m.Seq, written: m.written}
		c.queued += int64(len(m.Data))
	}
	if cap(buf) <= 2*maxWriteBatch {
		*bp = buf[:0]
		batchPool.Put(bp)
	}
	if n < len(buf) {
		return false
	}
	w, _ := c.pop()
	c.emptied()
	c.writes++
	c.lastSeq = max(c.lastSeq, w.Seq)
	c.s.sent.Add(1)
	if w.written != nil {
		close(w.written)
	}
	return true
}

// dueOf is when a delayed message produced at at (zero: now) is written:
// at the end of its window of WriteDelay, or 0 (at once) when that window
// has ended or there is no delay.
func (c *Conn) dueOf(at time.Time) time.Duration {
	d := c.s.opts().WriteDelay
	if d <= 0 {
		return 0
	}
	now := time.Since(c.s.epoch)
	since := now
	if !at.IsZero() {
		since = at.Sub(c.s.epoch)
	}
	due := c.s.windowDue(since, d)
	if due <= now || due > now+d {
		// The window ended while the message was queued on the
		// connections before this one (or the clock jumped).
		return 0
	}
	return due
}

// ready tells whether the writer may write m, the next message, now: it
// is due, or it is forced (push), or the connection is closing; c.mu held.
func (c *Conn) ready(m *Message, now time.Duration) bool {
	return m.due <= max(now, c.fired) || c.force > 0 || c.closing
}

// indexKeys maps the keys of the waiting messages to their places, the
// newest for each; c.mu held. A client that keeps up never needs the map
// (nothing coalesces below CoalesceAfter waiting), so it is built only
// when coalescing may start, and dropped when the queue empties.
func (c *Conn) indexKeys() {
	c.keys = make(map[uint64]int)
	for i := c.head; i < len(c.q); i++ {
		if k := c.q[i].Key; k != 0 && !c.dead[i] {
			c.keys[k] = i
		}
	}
}

// compact drops the written and replaced entries; c.mu held.
func (c *Conn) compact() {
	n := 0
	for i := c.head; i < len(c.q); i++ {
		if c.dead[i] {
			continue
		}
		c.q[n], c.dead[n] = c.q[i], false
		if k := c.q[n].Key; k != 0 && c.keys != nil {
			c.keys[k] = n
		}
		n++
	}
	clear(c.q[n:])
	c.q, c.dead, c.head = c.q[:n], c.dead[:n], 0
}

// pop takes the next message; c.mu held.
func (c *Conn) pop() (Message, bool) {
	for c.head < len(c.q) {
		i := c.head
		c.head++
		if c.dead[i] {
			continue
		}
		m := c.q[i]
		c.q[i] = Message{}
		c.live--
		c.unqueued(&m)
		if c.force > 0 {
			c.force--
		}
		if m.Key != 0 && c.keys != nil && c.keys[m.Key] == i {
			delete(c.keys, m.Key)
		}
		if c.space != nil && c.live < (c.s.opts().QueueLen+1)/2 {
			close(c.space)
			c.space = nil
		}
		return m, true
	}
	c.emptied()
	return Message{}, false
}

// emptied starts the queue over once nothing waits, releasing the backing
// arrays of a burst and the key map; c.mu held. Arrays of up to 64 entries
// are kept: a connection that gets a few messages in each write delay
// window would otherwise make them again at every window.
func (c *Conn) emptied() {
	c.q, c.dead, c.head, c.keys, c.force, c.queued = c.q[:0], c.dead[:0], 0, nil, 0, 0
	if cap(c.q) > 64 {
		c.q, c.dead = nil, nil
	}
}

// startWriter starts the writer goroutine unless it runs; c.mu held. The
// writer exits when the queue is empty, so an idle connection has none. A
// pending write delay ends: what waits goes out now, in order.
func (c *Conn) startWriter() {
	c.stopDelay()
	if c.writing || c.finished {
		return
	}
	c.writing = true
	go c.writeLoop()
}

// startWriterAt starts the writer at due (since the Server's epoch)
// unless it runs or is due as early; c.mu held. Nothing runs while it
// waits: a timer, no goroutine.
func (c *Conn) startWriterAt(due time.Duration) {
	if c.writing || c.finished || c.delayed && c.due <= due {
		return // the writer takes the message when it is due
	}
	wait := due - time.Since(c.s.epoch)
	if wait <= 0 {
		c.startWriter()
		return
	}
	c.delayed, c.due = true, due
	if c.delayT == nil {
		c.delayT = c.s.opts().afterFunc(wait, c.delayEnded)
		return
	}
	c.delayT.Reset(wait)
}

// windowDue is when a delayed message produced at t (since the Server's
// epoch) is written, with a WriteDelay of d: the end of the Server's
// current window if t falls in it, or of a new window that t opens if t
// is past its end; 0 (at once) if t fell in a window before the current
// one. Safe for concurrent use.
func (s *Server) windowDue(t, d time.Duration) time.Duration {
	for {
		start := time.Duration(s.winStart.Load())
		newStart, due := nextWindow(start, t, d)
		if newStart == start || s.winStart.CompareAndSwap(int64(start), int64(newStart)) {
			return due
		}
	}
}

// nextWindow is windowDue's rule, for the current window's start: the
// window's new start and the message's due time. The window's end
// follows the WriteDelay of the moment, so a shorter delay set by a reload
// applies to the current window at once.
func nextWindow(start, t, d time.Duration) (newStart, due time.Duration) {
	switch {
	case t >= start+d:
		return t, t + d // the first message after the window opens the next
	case t >= start:
		return start, start + d
	}
	return start, 0
}

// delayEnded runs when the write delay's timer fires: the timer's own
// goroutine becomes the writer.
func (c *Conn) delayEnded() {
	c.mu.Lock()
	// A timer that fired while startWriter stopped it finds nothing to do;
	// one re-armed meanwhile starts the writer early, which is harmless.
	if !c.delayed || c.writing || c.finished {
		c.mu.Unlock()
		return
	}
	c.delayed, c.fired = false, c.due
	c.writing = true
	c.mu.Unlock()
	c.writeLoop()
}

// moveWriteDeadline moves the socket's write deadline to WriteWait from
// now; c.mu held. It costs a timer update, so it is done when a quarter of
// the wait (at most a second) has passed since the last move (kept on the
// Conn: a writer goroutine often lives for one write). Under c.mu, so that
// it never undoes the shorter one closeLocked sets.
func (c *Conn) moveWriteDeadline() {
	wall := time.Now()
	if ww := c.s.opts().WriteWait; wall.Sub(c.deadlineAt) > min(ww/4, time.Second) {
		c.deadlineAt = wall
		c.nc.SetWriteDeadline(wall.Add(ww))
	}
}

// dropQueue forgets every waiting message, except the rest of a frame a
// direct write began: the client would read what follows it, the close
// frame, as part of it. c.mu held.
func (c *Conn) dropQueue() {
	var rest []Message
	if m, ok := c.peek(); ok && m.framed {
		rest = []Message{*m}
	}
	c.q, c.dead, c.head, c.live, c.keys, c.force = rest, make([]bool, len(rest)), 0, len(rest), nil, len(rest)
	c.queued = 0
	for i := range rest {
		c.queued += int64(len(rest[i].Data))
	}
	c.stopDelay()
}

// stopDelay disarms the write delay; c.mu held.
func (c *Conn) stopDelay() {
	if c.delayed {
		c.delayed = false
		c.delayT.Stop()
	}
}

// maxWriteBatch bounds the bytes the writer frames into one write.
const maxWriteBatch = 32 << 10

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, maxWriteBatch+64); return &b }}

// writeLoop writes the queue and exits when it is empty. Messages waiting
// together are framed into one buffer and written with one system call: a
// client that falls behind costs fewer writes, not more.
func (c *Conn) writeLoop() {
	wrote, seq := false, uint64(0) // the last write, not yet counted
	for {
		c.mu.Lock()
		if wrote {
			c.writes++
			c.lastSeq = max(c.lastSeq, seq)
			wrote = false
		}
		now := time.Since(c.s.epoch)
		if next, ok := c.peek(); ok && !c.ready(next, now) {
			// The rest waits for its window's end, as on every other
			// connection: a writer still busy with the last window does
			// not take the next one early.
			c.writing = false
			c.startWriterAt(next.due)
			c.mu.Unlock()
			return
		}
		m, ok := c.pop()
		if !ok {
			if c.closing && !c.closeSent {
				c.closeSent = true
				code, reason := c.closeCode, c.closeReason
				c.mu.Unlock()
				c.writeClose(code, reason)
				continue
			}
			c.writing = false
			fin := c.readerDone
			c.mu.Unlock()
			if fin {
				c.finish()
			}
			return
		}
		bp := batchPool.Get().(*[]byte)
		buf := c.appendFrame((*bp)[:0], &m)
		seq = m.Seq
		n := uint64(1)
		written := m.written // a batch ends with a message someone waits for
		for written == nil && len(buf) < maxWriteBatch {
			next, ok := c.peek()
			if !ok || len(buf)+len(next.Data) > maxWriteBatch || !c.ready(next, now) {
				break
			}
			m, _ = c.pop()
			buf = c.appendFrame(buf, &m)
			seq = max(seq, m.Seq)
			n++
			written = m.written
		}
		c.moveWriteDeadline()
		c.mu.Unlock()
		if hook := c.s.opts().beforeWrite; hook != nil {
			hook()
		}
		_, err := c.nc.Write(buf)
		if cap(buf) <= 2*maxWriteBatch {
			*bp = buf[:0]
			batchPool.Put(bp)
		}
		if err != nil {
			c.fail()
			continue
		}
		c.s.sent.Add(n)
		wrote = true
		if written != nil {
			close(written)
		}
	}
}

// appendFrame appends m as a final, unmasked frame (RFC 6455 5.2), a data
// frame compressed when the connection negotiated it. Every frame the core
// sends, control frames included, is built here and goes through the
// queue, so several go out in one write and none is interleaved with
// another.
func (c *Conn) appendFrame(b []byte, m *Message) []byte {
	const rsv1, fin = 0x40, 0x80
	if m.framed {
		return append(b, m.Data...)
	}
	p := m.payload()
	op := byte(fin | opText)
	switch {
	case m.op != 0:
		op = fin | m.op
	case m.Binary:
		op = fin | opBinary
	}
	if c.deflate && m.op == 0 {
		c.zbuf = deflate(c.zbuf[:0], p)
		p, op = c.zbuf, op|rsv1
	}
	b = append(b, op)
	switch n := len(p); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, p...)
}

// payload returns the message's frame payload, encoding it if a merge
// left it to the writer.
func (m *Message) payload() []byte {
	if m.Data == nil && m.Merge != nil {
		m.Data = m.Merge.Encode()
	}
	return m.Data
}

// peek returns the next waiting message without taking it; c.mu held.
func (c *Conn) peek() (*Message, bool) {
	for i := c.head; i < len(c.q); i++ {
		if !c.dead[i] {
			return &c.q[i], true
		}
	}
	return nil, false
}

// writeClose sends the close frame and arranges for the TCP connection to
// be dropped if the peer does not answer within CloseGrace.
func (c *Conn) writeClose(code int, reason string) {
	frame := c.appendFrame(nil, &Message{op: opClose, Data: appendClose(nil, code, reason)})
	c.nc.SetWriteDeadline(time.Now().Add(c.s.opts().WriteWait))
	_, err := c.nc.Write(frame)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil || c.readerDone {
		c.nc.Close()
		return
	}
	if !c.finished && c.graceTimer == nil {
		nc := c.nc
		c.graceTimer = time.AfterFunc(c.s.opts().CloseGrace, func() { nc.Close() })
	}
}

// fail ends a connection whose socket broke: nothing more can be written.
func (c *Conn) fail() {
	c.mu.Lock()
	c.closing, c.closeSent = true, true
	c.cancel()
	c.dropQueue()
	c.mu.Unlock()
	c.nc.Close()
}

func (c *Conn) ping() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.finished {
		return
	}
	c.push(Message{op: opPing})
	if iv := c.s.opts().PingInterval; iv > 0 {
		c.pingTimer.Reset(iv)
	}
}

// extendRead moves the read deadline: an authenticated peer may stay silent
// for a ping interval plus the pong wait.
func (c *Conn) extendRead() {
	if !c.authed {
		return
	}
	if iv := c.s.opts().PingInterval; iv > 0 {
		c.nc.SetReadDeadline(time.Now().Add(iv + c.s.opts().PongWait))
		return
	}
	if !c.readForever {
		c.readForever = true
		c.nc.SetReadDeadline(time.Time{}) // the front end watches the peer itself
	}
}

// allow applies the inbound rate limit to one message of cost n.
func (c *Conn) allow(n int) bool {
	if c.s.opts().MessagesPerSecond < 0 {
		return true // no limit
	}
	now := c.s.opts().Now()
	rate := float64(c.s.opts().MessagesPerSecond)
	c.rateTokens += now.Sub(c.rateLast).Seconds() * rate
	if c.rateTokens > rate {
		c.rateTokens = rate
	}
	c.rateLast = now
	if c.rateTokens < float64(n) {
		return false
	}
	c.rateTokens -= float64(n)
	return true
}

// Charge takes n more units of the inbound rate budget for the message
// being handled (a batch costs one per message in it). It returns false,
// taking nothing, when the budget does not cover it. Call it only from
// Session.Message.
func (c *Conn) Charge(n int) bool {
	if n <= 0 {
		return true
	}
	return c.allow(n)
}

// ReadErr is the error that ended the connection's reader, nil while it
// runs: websocket.ErrReadLimit for a message over MaxMessageBytes, a
// *websocket.CloseError for the peer's close, a *frameError for a frame
// that broke the protocol, or the socket's error. Front ends read it in
// Session.Closed to name the reason.
func (c *Conn) ReadErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readErr
}

// readLoop reads the client until it closes, breaks the protocol or goes
// silent past the read deadline. It waits for bytes with a shallow stack
// and handles them (frames, the session's work) on a short goroutine of
// its own: what a message's handling grows (authentication, the store,
// JSON) would otherwise stay with the reader for the connection's life,
// and a Go stack that has grown is not given back while it waits. An
// idle connection's reader thus keeps the smallest stack, and no buffer.
func (c *Conn) readLoop(sess Session) {
	c.mu.Lock()
	c.authed = c.user != ""
	c.mu.Unlock()
	c.extendRead()
	for {
		buf, n, err := c.readSome()
		if n > 0 {
			stop := false
			offStack(func() { stop = c.consume(sess, (*buf)[:n]) })
			c.s.readPool.Put(buf)
			if stop {
				return
			}
		} else if buf != nil {
			c.s.readPool.Put(buf)
		}
		if err != nil {
			var ne net.Error
			c.mu.Lock()
			authed := c.user != ""
			c.readErr = err
			c.mu.Unlock()
			if errors.As(err, &ne) && ne.Timeout() && !authed {
				c.Close(ClosePolicy, "authentication timeout")
			}
			return
		}
	}
}

// readSome waits for the client's next bytes, in a pooled buffer.
func (c *Conn) readSome() (*[]byte, int, error) {
	if c.raw != nil {
		return c.raw.readSome()
	}
	buf := c.s.readPool.Get().(*[]byte)
	n, err := c.nc.Read(*buf)
	return buf, n, err
}

// offStack runs f on a goroutine of its own and waits for it; a goroutine
// that ends gives back the stack it grew.
func offStack(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

// consume handles the bytes read, frame by frame, keeping a frame that is
// not all in yet for the next read. It tells whether reading ends.
func (c *Conn) consume(sess Session, chunk []byte) (stop bool) {
	data := chunk
	if len(c.in) > 0 {
		c.in = append(c.in, chunk...)
		data = c.in
	}
	limit := c.s.opts().MaxMessageBytes
	for len(data) > 0 {
		f, n, err := parseFrame(data, limit, c.deflate)
		if err != nil {
			c.broken(err)
			return true
		}
		if n == 0 {
			break
		}
		data = data[n:]
		if c.frame(sess, f) {
			return true
		}
	}
	switch {
	case len(data) == 0:
		c.in = nil // an idle connection holds no bytes
	case len(c.in) > 0:
		c.in = c.in[:copy(c.in, data)]
	default:
		c.in = append([]byte(nil), data...)
	}
	return false
}

// broken ends a connection whose client broke the protocol: a close frame
// with the code its error names, and nothing more read.
func (c *Conn) broken(err error) {
	code, reason := closeProtocol, err.Error()
	var fe *frameError
	if errors.As(err, &fe) {
		code, reason = fe.code, fe.reason
	}
	if code == CloseTooBig {
		err = websocket.ErrReadLimit
	}
	c.mu.Lock()
	c.readErr = err
	c.closeLocked(code, reason, true)
	c.mu.Unlock()
}

// frame handles one client frame. It tells whether reading ends.
func (c *Conn) frame(sess Session, f clientFrame) (stop bool) {
	switch f.op {
	case opPing:
		c.extendRead()
		c.mu.Lock()
		if !c.closing {
			c.push(Message{op: opPong, Data: append([]byte(nil), f.payload...)})
		}
		c.mu.Unlock()
		return false
	case opPong:
		c.extendRead()
		return false
	case opClose:
		code, reason, err := closePayload(f.payload)
		if err != nil {
			c.broken(err)
			return true
		}
		// The answer is the last frame: what waits is dropped, as the
		// client reads nothing more.
		c.mu.Lock()
		c.readErr = &websocket.CloseError{Code: code, Text: reason}
		if !c.closeSent {
			if !c.closing {
				c.closing, c.closeCode, c.closeReason = true, code, ""
				c.cancel()
			}
			c.dropQueue()
			c.startWriter()
		}
		c.mu.Unlock()
		return true
	}
	limit := c.s.opts().MaxMessageBytes
	data, op, compressed, done, err := c.msg.add(f, limit)
	if err == nil && compressed && done {
		data, err = inflate(data, limit)
	}

	if err != nil {
		c.broken(err)
		return true
	}
	if !done {
		return false // more frames to come
	}
	if !c.authed {
		c.mu.Lock()
		c.authed = c.user != ""
		c.mu.Unlock()
	}
	c.extendRead()
	c.mu.Lock()
	closing := c.closing
	c.mu.Unlock()
	if closing {
		return false // drain until the peer's close frame
	}
	bs, binOK := sess.(BinarySession)
	if op == opBinary && !binOK {
		// Binary frames are not part of this front end's protocol.
		c.Close(closeUnsupported, "binary messages are not accepted")
		return false
	}
	if !c.allow(1) {
		c.refused++
		if c.refused > c.s.opts().RateGrace {
			c.Close(ClosePolicy, "message rate limit exceeded")
			return false
		}
		sess.Limited()
		return false
	}
	c.refused = 0
	if op == opText {
		sess.Message(data)
	} else {
		bs.Binary(data)
	}
	// The session may have authenticated the connection just now.
	c.mu.Lock()
	nowAuthed := !c.authed && c.user != ""
	c.mu.Unlock()
	if nowAuthed {
		c.authed = true
		c.extendRead()
	}
	return false
}

// readerExited is called by Serve when the reader has returned.
func (c *Conn) readerExited() {
	c.mu.Lock()
	c.readerDone = true
	if !c.closing {
		// The peer went away or broke the protocol: nothing more to say.
		c.closing, c.closeSent = true, true
		c.dropQueue()
	}
	c.cancel()
	writing := c.writing
	closeSent := c.closeSent
	c.mu.Unlock()
	if closeSent && !writing {
		c.nc.Close()
	}
	if !writing {
		c.finish()
	}
}

// finish runs once, when neither the reader nor a writer is running.
func (c *Conn) finish() {
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		return
	}
	c.finished = true
	c.stopDelay()
	if c.pingTimer != nil {
		c.pingTimer.Stop()
	}
	if c.graceTimer != nil {
		c.graceTimer.Stop()
	}
	c.mu.Unlock()
	c.nc.Close()
	c.s.remove(c)
	close(c.done)
}
