package websocket

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	gws "github.com/gorilla/websocket"

	"github.com/floorhub/floorhub/aether"
	"github.com/floorhub/floorhub/command"
	"github.com/floorhub/floorhub/store"
	"github.com/floorhub/floorhub/uplink"
	"github.com/floorhub/floorhub/uplink/backoff"
)

// conn is one connection to the server: a reader goroutine, a writer
// goroutine and a command worker, and the record messages awaiting the
// server's ACK. It is the uplink.Sender of the stream for that connection.
type conn struct {
	u  *Uplink
	ws *gws.Conn

	out  chan []byte // frames for the writer
	live chan []byte // LIVE previews, written before out's frames
	cmds chan aether.Message
	dead chan struct{} // closed by fail: the connection is over
	stop chan struct{} // closed to make the writer send a close frame and exit

	mu      sync.Mutex
	err     error  // why the connection is over
	pending []*ack // sent record messages, in seq order
	acked   uint64 // highest seq the server acknowledged on this connection
}

// ack is the uplink.Ack of one record message.
type ack struct {
	last uint64    // highest seq in the message
	sent time.Time // when it was queued
	done chan struct{}
	err  error // set before done is closed
}

func (a *ack) Done() <-chan struct{} { return a.done }
func (a *ack) Error() error          { return a.err }

// session runs one connection: dial, HELLO, records, heartbeats and
// commands, until ctx ends or the connection fails.
func (u *Uplink) session(ctx context.Context, b *backoff.Backoff) error {
	dctx, cancel := context.WithTimeout(ctx, u.o.DialTimeout)
	ws, resp, err := u.dialer.DialContext(dctx, u.url, u.header)
	cancel()
	if err != nil {
		if resp != nil {
			return fmt.Errorf("websocket: dial: %w (HTTP %s)", err, resp.Status)
		}
		return fmt.Errorf("websocket: dial: %w", err)
	}
	b.Connected()
	u.connected.Store(true)
	defer u.connected.Store(false)
	u.log.Info("websocket uplink: connected", "url", u.url)

	c := &conn{
		u:    u,
		ws:   ws,
		out:  make(chan []byte, u.o.MaxInFlight+4),
		live: make(chan []byte, liveQueue),
		cmds: make(chan aether.Message, 16),
		dead: make(chan struct{}),
		stop: make(chan struct{}),
	}
	// HELLO first, before any writer runs: nothing (a LIVE preview
	// included) may go out ahead of it.
	ws.SetWriteDeadline(time.Now().Add(u.o.WriteWait))
	if err := ws.WriteMessage(gws.TextMessage, u.hello()); err != nil {
		ws.Close()
		return fmt.Errorf("websocket: sending HELLO: %w", err)
	}
	ws.SetReadLimit(u.o.MaxMessageBytes)
	c.extendRead()
	ws.SetPongHandler(func(string) error { c.extendRead(); return nil })

	cmdCtx, stopCmds := context.WithCancel(ctx)
	defer stopCmds()
	var wg sync.WaitGroup
	writerDone := make(chan struct{})
	wg.Add(2)
	go func() { defer wg.Done(); c.readLoop() }()
	go func() { defer close(writerDone); c.writeLoop() }()
	go func() { defer wg.Done(); c.commandLoop(cmdCtx) }()

	u.conn.Store(c)
	defer u.conn.Store(nil)
	sctx, stopStream := context.WithCancel(ctx)
	streamErr := make(chan error, 1)
	go func() { streamErr <- u.stream.Run(sctx, c, nil) }()

	tick := time.NewTicker(u.o.heartbeat)
	var result error
	streamDone := false
loop:
	for {
		select {
		case <-tick.C:
			if c.overdue() {
				c.fail(ErrAckTimeout)
				continue
			}
			c.send(u.heartbeat())
			// WriteControl may run alongside the writer's writes.
			if err := ws.WriteControl(gws.PingMessage, nil, time.Now().Add(u.o.WriteWait)); err != nil {
				c.fail(fmt.Errorf("websocket: ping: %w", err))
			}
		case <-c.dead:
			break loop
		case err := <-streamErr:
			streamDone, result = true, err
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	tick.Stop()
	// On shutdown the stream waits a little for outstanding ACKs while the
	// connection still reads them; a dead connection fails them at once.
	stopStream()
	if !streamDone {
		result = <-streamErr
	}
	close(c.stop) // the writer sends a close frame, if it still can
	<-writerDone
	c.fail(ErrConnLost)
	stopCmds()
	ws.Close() // unblocks the reader
	wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	if ctx.Err() == nil && c.err != ErrConnLost {
		return c.err
	}
	return result
}

// extendRead pushes the read deadline: any frame from the server, or a
// pong, proves it alive; silence for two heartbeats and a write wait ends
// the connection.
func (c *conn) extendRead() {
	c.ws.SetReadDeadline(time.Now().Add(2*c.u.o.heartbeat + c.u.o.WriteWait))
}

// fail ends the connection for err (the first reason wins) and fails every
// outstanding acknowledgement, so that the stream resends from its cursor.
func (c *conn) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	close(c.dead)
	for _, a := range c.pending {
		a.err = fmt.Errorf("%w: %w", ErrConnLost, err)
		close(a.done)
	}
	c.pending = nil
	// Unblock a reader waiting on the network.
	c.ws.SetReadDeadline(time.Now())
}

// overdue reports whether the oldest unacknowledged message waited longer
// than AckTimeout.
func (c *conn) overdue() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending) > 0 && time.Since(c.pending[0].sent) > c.u.o.AckTimeout
}

// send queues one frame for the writer; it waits for room (back-pressure)
// unless the connection is over.
func (c *conn) send(frame []byte) bool {
	select {
	case c.out <- frame:
		return true
	case <-c.dead:
		return false
	}
}

// Send implements uplink.Sender: it wraps the batch in a msg envelope to
// the group and returns an Ack that completes when the server acknowledges
// the batch's last seq.
func (c *conn) Send(kind store.Kind, payload []byte) uplink.Ack {
	a := &ack{done: make(chan struct{}), sent: time.Now()}
	last, err := lastSeq(payload)
	if err != nil {
		a.err = err
		close(a.done)
		return a
	}
	a.last = last
	frame := recordsFrame(aether.CmdRecords, kind, payload)

	c.mu.Lock()
	switch {
	case c.err != nil:
		a.err = fmt.Errorf("%w: %w", ErrConnLost, c.err)
		close(a.done)
		c.mu.Unlock()
		return a
	case last <= c.acked:
		// Already acknowledged (a server may ack ahead); still sent, so
		// the server sees every record at least once.
		close(a.done)
	default:
		// Registered before the frame leaves, so an early ACK finds it.
		c.pending = append(c.pending, a)
	}
	c.mu.Unlock()
	c.send(frame) // if the connection died meanwhile, fail has failed a
	return a
}

// recordsFrame wraps an uplink.AppendBatch payload in a msg envelope to the
// group: cmd RECORDS or LIVE, msg the records' kind.
func recordsFrame(cmd string, kind store.Kind, payload []byte) []byte {
	frame := make([]byte, 0, len(payload)+128)
	frame = append(frame, `{"version":"3","msg_type":"msg","target":"group","cmd":"`...)
	frame = append(frame, cmd...)
	frame = append(frame, `","msg":"`...)
	frame = append(frame, kind.String()...)
	frame = append(frame, `","payload":`...)
	frame = append(frame, payload...)
	return append(frame, '}')
}

// lastSeq returns the seq of the last record of an uplink.AppendBatch
// payload. (uplink.Sender passes only bytes; see docs/aether.md.)
//
// AppendRecord starts every record with {"seq":<digits>, and nothing else
// in a batch has that shape: quotes inside strings are escaped, and a
// metric named "seq" is followed by an object, not a digit. So the last
// such occurrence is the last record's, found without parsing the batch
// (which costs several times its encoding). The full parse remains the
// fallback.
func lastSeq(payload []byte) (uint64, error) {
	key := []byte(`{"seq":`)
	for end := len(payload); end > 0; {
		i := bytes.LastIndex(payload[:end], key)
		if i < 0 {
			break
		}
		j := i + len(key)
		k := j
		for k < len(payload) && '0' <= payload[k] && payload[k] <= '9' {
			k++
		}
		if k > j {
			if seq, err := strconv.ParseUint(string(payload[j:k]), 10, 64); err == nil {
				return seq, nil
			}
		}
		end = i
	}
	var b struct {
		Records []struct {
			Seq uint64 `json:"seq"`
		} `json:"records"`
	}
	if err := json.Unmarshal(payload, &b); err != nil {
		return 0, fmt.Errorf("websocket: unreadable batch: %w", err)
	}
	if len(b.Records) == 0 {
		return 0, errors.New("websocket: empty batch")
	}
	return b.Records[len(b.Records)-1].Seq, nil
}

// acknowledge completes every pending message whose records are all at or
// below seq.
func (c *conn) acknowledge(seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if seq > c.acked {
		c.acked = seq
	}
	i := 0
	for ; i < len(c.pending) && c.pending[i].last <= seq; i++ {
		close(c.pending[i].done)
	}
	c.pending = c.pending[i:]
}

func (c *conn) writeLoop() {
	write := func(f []byte) bool {
		c.ws.SetWriteDeadline(time.Now().Add(c.u.o.WriteWait))
		if err := c.ws.WriteMessage(gws.TextMessage, f); err != nil {
			c.fail(fmt.Errorf("websocket: write: %w", err))
			return false
		}
		return true
	}
	for {
		select { // previews first: they exist to overtake the backlog
		case f := <-c.live:
			if !write(f) {
				return
			}
			continue
		default:
		}
		select {
		case f := <-c.live:
			if !write(f) {
				return
			}
		case f := <-c.out:
			if !write(f) {
				return
			}
		case <-c.stop:
			msg := gws.FormatCloseMessage(gws.CloseGoingAway, "gateway shutting down")
			c.ws.WriteControl(gws.CloseMessage, msg, time.Now().Add(time.Second))
			return
		case <-c.dead:
			return
		}
	}
}

func (c *conn) readLoop() {
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			c.fail(fmt.Errorf("websocket: read: %w", err))
			return
		}
		c.extendRead()
		m, err := aether.Decode(data)
		if err != nil {
			c.u.log.Warn("websocket uplink: invalid message from the server", "err", err)
			continue
		}
		c.handle(&m)
	}
}

// handle acts on one message from the server.
func (c *conn) handle(m *aether.Message) {
	switch m.MsgType {
	case aether.TypeCmd:
		if aether.CommandName(m.Cmd) == "ack" {
			c.handleAck(m)
			return
		}
		if m.Target == aether.TargetDirect && m.ToID != c.u.self {
			return // routed to us by mistake: not ours to run
		}
		select {
		case c.cmds <- *m:
		default:
			c.reply(m, nil, nil, aether.CodeFailed, errors.New("websocket: too many commands waiting; retry later"))
		}
	case aether.TypeMsg:
		if m.Cmd == aether.CmdError {
			c.u.log.Warn("websocket uplink: the server refused a message", "msg", m.Msg)
		}
	}
	// Heartbeat echoes and presence only prove the server alive.
}

func (c *conn) handleAck(m *aether.Message) {
	var p struct {
		Seq *json.Number `json:"seq"`
	}
	if len(m.Payload) > 0 {
		_ = json.Unmarshal(m.Payload, &p)
	}
	if p.Seq == nil {
		c.u.log.Warn("websocket uplink: ACK without a numeric payload.seq ignored", "payload", string(m.Payload))
		return
	}
	seq, err := strconv.ParseUint(p.Seq.String(), 10, 64)
	if err != nil {
		c.u.log.Warn("websocket uplink: ACK with a bad seq ignored", "seq", p.Seq.String())
		return
	}
	c.acknowledge(seq)
}

// commandLoop runs the server's commands one at a time, so that a slow one
// never holds up reading (and ACKs).
func (c *conn) commandLoop(ctx context.Context) {
	for {
		select {
		case m := <-c.cmds:
			c.runCommand(ctx, &m)
		case <-c.dead:
			return
		}
	}
}

func (c *conn) runCommand(ctx context.Context, m *aether.Message) {
	args, reqID := aether.CommandArgs(m)
	if c.u.cmd == nil {
		c.reply(m, reqID, nil, aether.CodeUnknownCommand, fmt.Errorf("%w: %q (this gateway runs no commands)", command.ErrUnknownCommand, m.Cmd))
		return
	}
	cctx, cancel := context.WithTimeout(ctx, c.u.o.CommandTimeout)
	res, err := c.u.cmd.Command(cctx, aether.CommandName(m.Cmd), args)
	cancel()
	if err != nil && m.Target != aether.TargetDirect && errors.Is(err, command.ErrUnknownCommand) {
		// A group or broadcast command for other members, not for us.
		return
	}
	c.reply(m, reqID, res, command.ErrorCode(err), err)
}

func (c *conn) reply(m *aether.Message, reqID json.RawMessage, res any, code string, err error) {
	r := aether.Reply(m, reqID, res, code, err)
	r.Version = aether.Version
	b, eerr := r.Encode()
	if eerr != nil {
		c.u.log.Warn("websocket uplink: encoding a reply failed", "err", eerr)
		return
	}
	c.send(b)
}

// Hello is the payload of the HELLO message sent on every connect.
type Hello struct {
	GatewayID string `json:"gateway_id"`
	BootID    string `json:"boot_id,omitempty"` // the kernel's boot id
	RunID     string `json:"run_id,omitempty"`  // this start of the agent
	Version   string `json:"version,omitempty"`
	// AckedSeq is where sending resumes: every record up to it was
	// acknowledged.
	AckedSeq uint64 `json:"acked_seq"`
	// LastSeq is the highest seq the store has assigned.
	LastSeq uint64 `json:"last_seq"`
	// SkippedSeq lists the seq ranges (inclusive) reserved but never
	// stored because the agent died: they will never arrive. Always
	// present; [] when none.
	SkippedSeq [][2]uint64 `json:"skipped_seq"`
	// ClockSynced tells whether the wall clock is known to be right;
	// MonoOffsetNS, once it is, is wall clock minus mono_ns for this boot
	// (records of BootID sent unsynced date as mono_ns + mono_offset_ns).
	ClockSynced  bool   `json:"clock_synced"`
	MonoOffsetNS *int64 `json:"mono_offset_ns,omitempty"`
}

func (u *Uplink) hello() []byte {
	skipped := u.src.Skipped()
	if skipped == nil {
		skipped = [][2]uint64{}
	}
	synced, off := uplink.ClockFields(u.o.Clock)
	p, _ := json.Marshal(Hello{ // plain fields: cannot fail
		GatewayID: u.o.GatewayID, BootID: u.o.BootID, RunID: u.o.RunID, Version: u.o.Version,
		AckedSeq: u.stream.Acked(), LastSeq: u.src.Stats().LastSeq, SkippedSeq: skipped,
		ClockSynced: synced, MonoOffsetNS: off,
	})
	m := aether.Message{Version: aether.Version, MsgType: aether.TypeMsg, Target: aether.TargetGroup,
		Cmd: aether.CmdHello, Msg: "gateway " + u.o.GatewayID + " online", Payload: p}
	b, _ := m.Encode()
	return b
}

// Heartbeat is the payload of the heartbeat message.
type Heartbeat struct {
	GatewayID string  `json:"gateway_id"`
	BootID    string  `json:"boot_id,omitempty"`
	RunID     string  `json:"run_id,omitempty"`
	UptimeS   float64 `json:"uptime_s"` // seconds since Run started
	// Backlog counts the stored records after AckedSeq; OldestUnsentAgeS
	// is the age of the oldest of them, in seconds (0 when none).
	Backlog          int     `json:"backlog"`
	OldestUnsentAgeS float64 `json:"oldest_unsent_age_s"`
	LastSeq          uint64  `json:"last_seq"`
	AckedSeq         uint64  `json:"acked_seq"`
	Evictions        uint64  `json:"evictions"`
	// ClockSynced and MonoOffsetNS: see Hello.
	ClockSynced  bool   `json:"clock_synced"`
	MonoOffsetNS *int64 `json:"mono_offset_ns,omitempty"`
}

func (u *Uplink) heartbeat() []byte {
	acked := u.stream.Acked()
	st := u.src.Stats()
	h := Heartbeat{GatewayID: u.o.GatewayID, BootID: u.o.BootID, RunID: u.o.RunID, UptimeS: time.Since(u.started).Seconds(),
		LastSeq: st.LastSeq, AckedSeq: acked, Evictions: st.Evicted}
	h.ClockSynced, h.MonoOffsetNS = uplink.ClockFields(u.o.Clock)
	if n, oldest, err := u.src.Backlog(acked); err == nil {
		h.Backlog = n
		if n > 0 && !oldest.IsZero() {
			h.OldestUnsentAgeS = time.Since(oldest).Seconds()
		}
	}
	p, _ := json.Marshal(h)
	m := aether.Message{Version: aether.Version, MsgType: aether.TypeHeartbeat, Target: aether.TargetEcho, Payload: p}
	b, _ := m.Encode()
	return b
}
