package mqtt

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/floorhub/floorhub/store"
	"github.com/floorhub/floorhub/uplink"
	"github.com/floorhub/floorhub/uplink/mqtt/mqttwire"
	"github.com/floorhub/floorhub/uplink/sparkplug"
)

// The formats of Options.Format.
const (
	FormatJSON       = "json"
	FormatSparkplugB = "sparkplug_b"
)

// errHostOffline ends a Sparkplug session whose Primary Host went offline:
// the node publishes its NDEATH, disconnects, and connects again, to be
// born once the host is back (Sparkplug 3.0).
var errHostOffline = errors.New("mqtt: sparkplug: the primary host application went offline")

// spNode is the Sparkplug side of an Uplink (format sparkplug_b). mu
// orders the node's messages: a sequence number is given and its message
// handed to the connection under it, so the seqs on the wire are in order whichever
// goroutine (the stream, a rebirth) publishes.
type spNode struct {
	group, node, host string
	bdSeqFile         string

	mu        sync.Mutex
	n         *sparkplug.Node
	bdSeq     uint64 // the bdSeq of the current connection's will
	next      uint64 // the bdSeq of the next CONNECT
	loaded    bool   // next was read from bdSeqFile
	liveFrom  uint64 // records with a seq up to this are historical on this connection
	hostState sparkplug.HostState
	// stateLogged is the host's state the log last told: 0 none yet, 1
	// online, 2 offline. A change is always logged; the same state again
	// (a host that publishes STATE in a loop) goes through stateLog.
	stateLogged int8

	// The log lines the central side can repeat at will, one a minute.
	ignoredLog, droppedLog, badStateLog, stateLog quietLog
}

// quietLog holds a log line that a peer can make repeat at will (a flood
// of commands it sends) to one a minute, the first at once, each saying
// how many were left out before it: a plant's journal stays readable
// whatever the central side sends. It is safe for concurrent use.
type quietLog struct {
	mu    sync.Mutex
	last  time.Time
	muted int
}

// allow reports whether to log the line now, and how many were left out
// since the last one logged.
func (q *quietLog) allow(now time.Time) (ok bool, leftOut int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.last.IsZero() && now.Sub(q.last) < time.Minute {
		q.muted++
		return false, 0
	}
	q.last, leftOut, q.muted = now, q.muted, 0
	return true, leftOut
}

// logged records a line logged now whatever allow would say (a change
// that must be told), and returns how many were left out before it.
func (q *quietLog) logged(now time.Time) (leftOut int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.last, leftOut, q.muted = now, q.muted, 0
	return leftOut
}

// nextBdSeq returns the bdSeq for the CONNECT about to be made, after
// recording it in the bdSeq file: the will on the broker then never
// carries a bdSeq that the next start would use again. A file that cannot
// be read or written is logged; the node goes on counting in memory.
func (u *Uplink) nextBdSeq() uint64 {
	sp := u.sp
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if !sp.loaded && sp.bdSeqFile != "" {
		next, err := sparkplug.ReadBdSeq(sp.bdSeqFile)
		if err != nil {
			u.log.Warn("mqtt: sparkplug: bdSeq file unreadable; starting from 0", "err", err)
		}
		sp.next = next
	}
	sp.loaded = true
	v := sp.next
	if sp.bdSeqFile != "" {
		if err := sparkplug.WriteBdSeq(sp.bdSeqFile, v); err != nil {
			u.log.Warn("mqtt: sparkplug: bdSeq not saved; a restart may reuse it", "bdSeq", v, "err", err)
		}
	}
	sp.next = sparkplug.NextBdSeq(v)
	sp.bdSeq = v
	return v
}

// spDeath returns the NDEATH to register as the will of the CONNECT that
// uses bdSeq.
func (u *Uplink) spDeath(bdSeq uint64) sparkplug.Msg {
	u.sp.mu.Lock()
	defer u.sp.mu.Unlock()
	return u.sp.n.Death(bdSeq, time.Now())
}

// spPublish publishes msgs in order at QoS 1; u.sp.mu is held.
func spPublish(ctx context.Context, c *mqttwire.Conn, msgs []sparkplug.Msg) []uplink.Ack {
	acks := make([]uplink.Ack, len(msgs))
	for i, m := range msgs {
		acks[i] = c.Publish(ctx, m.Topic, 1, false, m.Payload)
	}
	return acks
}

// spBirth publishes the NBIRTH and the DBIRTHs: on a new connection
// (fresh: the records stored until now become historical) and on a
// rebirth command. The births are not waited for here: the broker keeps a
// connection's messages in order, and a lost connection means new births.
// Their acks tell spCommands when the rebirth is over.
func (u *Uplink) spBirth(ctx context.Context, c *mqttwire.Conn, fresh bool) []uplink.Ack {
	sp := u.sp
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if fresh {
		sp.liveFrom = u.src.Stats().LastSeq
	}
	msgs := sp.n.Birth(sp.bdSeq, time.Now())
	acks := spPublish(ctx, c, msgs)
	u.log.Info("mqtt: sparkplug: born", "bdSeq", sp.bdSeq, "devices", len(msgs)-1, "historical_up_to", sp.liveFrom)
	return acks
}

// spInbox hands NCMD, DCMD and STATE messages from the connection's
// reading goroutine (which must never block) to spCommands. Commands go
// through a bounded queue and are dropped when it is full; the Primary
// Host's STATE has its own one-slot hand-off where a newer message
// supersedes an unread one, so a flood of commands can never make the
// node miss the host's latest state (an "offline" that ends the session).
type spInbox struct {
	cmds  chan mqttwire.Message // NCMD and DCMD
	state chan mqttwire.Message // one slot: the latest unread STATE
}

// spCommandQueue is the number of NCMD and DCMD messages waiting for
// spCommands before further ones are dropped.
const spCommandQueue = 32

func newSpInbox() *spInbox {
	return &spInbox{cmds: make(chan mqttwire.Message, spCommandQueue), state: make(chan mqttwire.Message, 1)}
}

// putState hands over a STATE message, replacing an unread one. It never
// blocks: with one sender, the loop ends at the latest on its second turn.
func (b *spInbox) putState(m mqttwire.Message) {
	for {
		select {
		case b.state <- m:
			return
		default:
		}
		select {
		case <-b.state: // superseded
		default:
		}
	}
}

// putCommand queues an NCMD or DCMD; it reports false when the queue is
// full and the message was dropped.
func (b *spInbox) putCommand(m mqttwire.Message) bool {
	select {
	case b.cmds <- m:
		return true
	default:
		return false
	}
}

// spSubscribe subscribes to NCMD, DCMD and, with a Primary Host, its
// STATE; the messages go to in (never blocking the connection's reader).
func (u *Uplink) spSubscribe(ctx context.Context, c *mqttwire.Conn, in *spInbox) error {
	stateTopic := ""
	if u.sp.host != "" {
		stateTopic = sparkplug.StateTopic(u.sp.host)
		u.sp.mu.Lock()
		u.sp.hostState.NewSession()
		u.sp.mu.Unlock()
	}
	handle := func(m mqttwire.Message) {
		if stateTopic != "" && m.Topic == stateTopic {
			in.putState(m)
			return
		}
		if in.putCommand(m) {
			return
		}
		if ok, n := u.sp.droppedLog.allow(time.Now()); ok {
			u.log.Warn("mqtt: sparkplug: command queue full; message dropped", "topic", m.Topic, "suppressed", n)
		}
	}
	filters := []mqttwire.Subscription{
		{Filter: sparkplug.NodeTopic(u.sp.group, sparkplug.NCMD, u.sp.node), QoS: 1},
		{Filter: sparkplug.NodeTopic(u.sp.group, sparkplug.DCMD, u.sp.node) + "/+", QoS: 1},
	}
	if stateTopic != "" {
		filters = append(filters, mqttwire.Subscription{Filter: stateTopic, QoS: 1})
	}
	ctx, cancel := context.WithTimeout(ctx, u.o.ConnectTimeout)
	defer cancel()
	return c.Subscribe(ctx, filters, handle)
}

// rebirthGate throttles rebirths: at most one is in progress (its births
// published and not all acknowledged by the broker), and the requests
// that come meanwhile coalesce into one rebirth after it. Without it, a
// flood of rebirth requests would make as many NBIRTH and DBIRTH rounds.
type rebirthGate struct {
	busy    bool // a rebirth is in progress
	pending bool // a request came while busy
}

// request records a rebirth request and reports whether to start one now.
func (g *rebirthGate) request() bool {
	if g.busy {
		g.pending = true
		return false
	}
	g.busy = true
	return true
}

// finished records that the rebirth in progress is over, and reports
// whether to start the coalesced one (which is then in progress).
func (g *rebirthGate) finished() bool {
	if g.pending {
		g.pending = false
		return true
	}
	g.busy = false
	return false
}

// spMessage handles one NCMD, DCMD or STATE message. It returns
// errHostOffline when the Primary Host went offline, and reports whether
// the message asks for a rebirth.
func (u *Uplink) spMessage(m mqttwire.Message) (rebirth bool, err error) {
	sp := u.sp
	switch {
	case m.Skipped > 0:
		// Its payload was not read (mqttwire): nothing to act on.
		if ok, n := sp.ignoredLog.allow(time.Now()); ok {
			u.log.Warn("mqtt: sparkplug: ignoring a message over the packet limit", "topic", m.Topic, "bytes", m.Skipped, "limit", maxPacket, "suppressed", n)
		}
	case sp.host != "" && m.Topic == sparkplug.StateTopic(sp.host):
		sp.mu.Lock()
		applied, perr := sp.hostState.Update(m.Payload)
		online := sp.hostState.Online()
		told := int8(2)
		if online {
			told = 1
		}
		changed := applied && told != sp.stateLogged
		if changed {
			sp.stateLogged = told
		}
		sp.mu.Unlock()
		if perr != nil {
			if ok, n := sp.badStateLog.allow(time.Now()); ok {
				u.log.Warn("mqtt: sparkplug: ignoring a malformed STATE message", "topic", m.Topic, "err", perr, "suppressed", n)
			}
			return false, nil
		}
		if changed {
			n := sp.stateLog.logged(time.Now())
			u.log.Info("mqtt: sparkplug: primary host state", "host", sp.host, "online", online, "applied", applied, "suppressed", n)
		} else if ok, n := sp.stateLog.allow(time.Now()); ok {
			u.log.Info("mqtt: sparkplug: primary host state", "host", sp.host, "online", online, "applied", applied, "suppressed", n)
		}
		if applied && !online {
			return false, errHostOffline
		}
	case m.Topic == sparkplug.NodeTopic(sp.group, sparkplug.NCMD, sp.node):
		rebirth, metrics, perr := sparkplug.RequestsRebirth(m.Payload)
		if perr != nil {
			if ok, n := sp.ignoredLog.allow(time.Now()); ok {
				u.log.Warn("mqtt: sparkplug: ignoring a malformed NCMD", "err", perr, "suppressed", n)
			}
			return false, nil
		}
		if rebirth {
			return true, nil
		}
		if ok, n := sp.ignoredLog.allow(time.Now()); ok {
			u.log.Info("mqtt: sparkplug: NCMD without a rebirth request ignored", "metrics", metrics, "suppressed", n)
		}
	default:
		if ok, n := sp.ignoredLog.allow(time.Now()); ok {
			u.log.Info("mqtt: sparkplug: device commands are not supported; DCMD ignored", "topic", m.Topic, "suppressed", n)
		}
	}
	return false, nil
}

// spCommands serves NCMD, DCMD and STATE until ctx ends. It publishes
// the births once the Primary Host is online (at once without one) and
// then closes born; later, a rebirth request publishes them again, and the
// Primary Host going offline ends the session through fail.
func (u *Uplink) spCommands(ctx context.Context, c *mqttwire.Conn, in *spInbox, born chan<- struct{}, fail func(error)) {
	isBorn := false
	var gate rebirthGate
	var inFlight []uplink.Ack // the births of the rebirth in progress, oldest first
	birth := func() {
		u.sp.mu.Lock()
		ready := u.sp.host == "" || u.sp.hostState.Online()
		u.sp.mu.Unlock()
		if ready {
			u.spBirth(ctx, c, true)
			isBorn = true
			close(born)
		}
	}
	birth()
	handle := func(m mqttwire.Message) bool {
		rebirth, err := u.spMessage(m)
		if err != nil && isBorn {
			fail(err)
			return false
		}
		switch {
		case !isBorn:
			birth() // a STATE online, perhaps; commands before the birth are dropped
		case rebirth && gate.request():
			u.log.Info("mqtt: sparkplug: rebirth requested")
			if inFlight = u.spBirth(ctx, c, false); len(inFlight) == 0 {
				gate.finished() // nothing to wait for; cannot be pending yet
			}
		case rebirth:
			u.log.Debug("mqtt: sparkplug: rebirth requested while one is in progress; coalesced")
		}
		return true
	}
	for {
		var acked <-chan struct{}
		if len(inFlight) > 0 {
			acked = inFlight[0].Done()
		}
		select {
		case m := <-in.state:
			if !handle(m) {
				return
			}
		case m := <-in.cmds:
			if !handle(m) {
				return
			}
		case <-acked:
			if inFlight = inFlight[1:]; len(inFlight) == 0 && gate.finished() {
				u.log.Info("mqtt: sparkplug: rebirth for the requests that came during the last one")
				inFlight = u.spBirth(ctx, c, false)
			}
		case <-ctx.Done():
			return
		}
	}
}

// spSender publishes the telemetry stream as Sparkplug messages; the other
// kinds go through the JSON sender.
type spSender struct {
	sender
	u *Uplink
}

func (s spSender) SendRecords(recs []store.Record) []uplink.Ack {
	sp := s.u.sp
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return spPublish(s.ctx, s.c, sp.n.Records(recs, sp.liveFrom, time.Now()))
}
