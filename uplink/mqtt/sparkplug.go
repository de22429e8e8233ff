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
// rebirth command. The births are not waited for: the broker keeps a
// connection's messages in order, and a lost connection means new births.
func (u *Uplink) spBirth(ctx context.Context, c *mqttwire.Conn, fresh bool) {
	sp := u.sp
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if fresh {
		sp.liveFrom = u.src.Stats().LastSeq
	}
	msgs := sp.n.Birth(sp.bdSeq, time.Now())
	spPublish(ctx, c, msgs)
	u.log.Info("mqtt: sparkplug: born", "bdSeq", sp.bdSeq, "devices", len(msgs)-1, "historical_up_to", sp.liveFrom)
}

// spSubscribe subscribes to NCMD, DCMD and, with a Primary Host, its
// STATE; the messages go to in (never blocking the connection's reader).
func (u *Uplink) spSubscribe(ctx context.Context, c *mqttwire.Conn, in chan<- mqttwire.Message) error {
	handle := func(m mqttwire.Message) {
		select {
		case in <- m:
		default:
			u.log.Warn("mqtt: sparkplug: command queue full; message dropped", "topic", m.Topic)
		}
	}
	filters := []mqttwire.Subscription{
		{Filter: sparkplug.NodeTopic(u.sp.group, sparkplug.NCMD, u.sp.node), QoS: 1},
		{Filter: sparkplug.NodeTopic(u.sp.group, sparkplug.DCMD, u.sp.node) + "/+", QoS: 1},
	}
	if u.sp.host != "" {
		filters = append(filters, mqttwire.Subscription{Filter: sparkplug.StateTopic(u.sp.host), QoS: 1})
	}
	ctx, cancel := context.WithTimeout(ctx, u.o.ConnectTimeout)
	defer cancel()
	return c.Subscribe(ctx, filters, handle)
}

// spMessage handles one NCMD, DCMD or STATE message. It returns
// errHostOffline when the Primary Host went offline, and reports whether
// the message asks for a rebirth.
func (u *Uplink) spMessage(m mqttwire.Message) (rebirth bool, err error) {
	sp := u.sp
	switch {
	case sp.host != "" && m.Topic == sparkplug.StateTopic(sp.host):
		sp.mu.Lock()
		applied, perr := sp.hostState.Update(m.Payload)
		online := sp.hostState.Online()
		sp.mu.Unlock()
		if perr != nil {
			u.log.Warn("mqtt: sparkplug: ignoring a malformed STATE message", "topic", m.Topic, "err", perr)
			return false, nil
		}
		u.log.Info("mqtt: sparkplug: primary host state", "host", sp.host, "online", online, "applied", applied)
		if applied && !online {
			return false, errHostOffline
		}
	case m.Topic == sparkplug.NodeTopic(sp.group, sparkplug.NCMD, sp.node):
		p, perr := sparkplug.Decode(m.Payload)
		if perr != nil {
			u.log.Warn("mqtt: sparkplug: ignoring a malformed NCMD", "err", perr)
			return false, nil
		}
		if sparkplug.IsRebirth(p) {
			return true, nil
		}
		u.log.Info("mqtt: sparkplug: NCMD without a rebirth request ignored", "metrics", len(p.Metrics))
	default:
		u.log.Info("mqtt: sparkplug: device commands are not supported; DCMD ignored", "topic", m.Topic)
	}
	return false, nil
}

// spCommands serves NCMD, DCMD and STATE until ctx ends. It publishes
// the births once the Primary Host is online (at once without one) and
// then closes born; later, a rebirth request publishes them again, and the
// Primary Host going offline ends the session through fail.
func (u *Uplink) spCommands(ctx context.Context, c *mqttwire.Conn, in <-chan mqttwire.Message, born chan<- struct{}, fail func(error)) {
	isBorn := false
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
	for {
		select {
		case m := <-in:
			rebirth, err := u.spMessage(m)
			if err != nil && isBorn {
				fail(err)
				return
			}
			switch {
			case !isBorn:
				birth() // a STATE online, perhaps; commands before the birth are dropped
			case rebirth:
				u.log.Info("mqtt: sparkplug: rebirth requested")
				u.spBirth(ctx, c, false)
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
