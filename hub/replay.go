package hub

import (
	"slices"
	"time"

	"github.com/floorhub/floorhub/hub/wsconn"
	"github.com/floorhub/floorhub/store"
)

// replayBatch is how many records one store read returns at most.
const replayBatch = 256

// runReplays is the client's replay goroutine: it runs the queued jobs one
// after the other and exits when none is left or the connection ends.
func (c *client) runReplays() {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		if len(c.jobs) == 0 || c.closed {
			c.replaying = false
			c.mu.Unlock()
			return
		}
		job := c.jobs[0]
		c.jobs = c.jobs[1:]
		c.mu.Unlock()
		c.replay(job)
	}
}

// kindsOf are the kinds of record a channel carries.
func kindsOf(ch channel) []store.Kind {
	switch ch {
	case chAlerts:
		return []store.Kind{store.KindAlert, store.KindAlertAck}
	case chDevices:
		return []store.Kind{store.KindDeviceStatus}
	}
	return []store.Kind{store.KindTelemetry}
}

// replay sends the committed records after job.since that match, then
// switches the job's subscriptions to live delivery.
//
// The seam: job.target was the newest seq fanned out when the
// subscription was installed, so every record above it was held back in
// job.buf. Replay reads the store until it is sure everything up to the
// target is committed and read, then sends the held-back records above the
// last seq it read (waiting for room, as replay does), and repeats until
// nothing is held back. Nothing is missed and nothing is sent twice. When
// the held-back records overflow, the fan-out drops them and raises the
// target, so replay reads them from the store instead.
func (c *client) replay(job *replayJob) {
	ctx := c.conn.Context()
	rp := c.h.o.Replay
	cur := job.since
	var confirmed uint64 // every seq up to it is known committed
	var waitSince time.Time
	fail := func(code, format string, args ...any) {
		pe := perr(code, format, args...)
		c.conn.Send(wsconn.Message{Data: mustJSON(errorMsg{Type: "error", Error: pe.code, Message: pe.msg, Request: typeSubscribe})})
	}
	if cur > 0 {
		// Tell the client if what it missed is no longer stored.
		if first, err := rp.Read(cur, 1); err == nil && len(first) > 0 && first[0].Seq > cur+1 {
			fail(codeReplayIncomplete, "records %d to %d are not stored any more (evicted by the store's cap, or lost in a crash before their commit); replaying from %d",
				cur+1, first[0].Seq-1, first[0].Seq)
		}
	}
	for ctx.Err() == nil {
		recs, err := rp.Read(cur, replayBatch, kindsOf(job.ch)...)
		if err != nil {
			fail(codeReplayFailed, "reading the store after seq %d: %v; live data only", cur, err)
			c.goLive(job, cur)
			return
		}
		from := cur
		for i := range recs {
			r := &recs[i]
			if r.Seq <= cur {
				continue
			}
			cur = r.Seq
			m, ok := c.replayMessage(job, r)
			if !ok {
				continue
			}
			if c.conn.SendWait(ctx, m) != nil {
				return
			}
		}
		if len(recs) == replayBatch && cur > from {
			continue
		}
		c.mu.Lock()
		if !c.jobAlive(job) {
			c.mu.Unlock()
			return
		}
		if confirmed >= job.target {
			// Caught up with the store: send what was held back, outside
			// the lock and waiting for room like the replay, until
			// nothing is held back; then go live in the same lock.
			var held []store.Record
			for _, r := range job.buf {
				if r.Seq > cur {
					held = append(held, r)
				}
			}
			job.buf = nil
			if len(held) == 0 {
				c.switchLive(job, cur)
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
			for i := range held {
				cur = held[i].Seq
				if m, ok := c.replayMessage(job, &held[i]); ok {
					if c.conn.SendWait(ctx, m) != nil {
						return
					}
				}
			}
			continue
		}
		target := job.target
		c.mu.Unlock()

		// Are the records up to the target committed yet? Commits are in
		// seq order, so any committed record at or above it says so.
		var commitC <-chan struct{}
		if cm, ok := rp.(committer); ok {
			commitC = cm.Committed()
		}
		probe, err := rp.Read(target-1, 1)
		if err != nil {
			fail(codeReplayFailed, "reading the store after seq %d: %v; live data only", target-1, err)
			c.goLive(job, cur)
			return
		}
		if len(probe) > 0 {
			confirmed = target
			waitSince = time.Time{}
			continue // read what was committed meanwhile, then switch
		}
		if waitSince.IsZero() {
			waitSince = time.Now()
		} else if time.Since(waitSince) > c.h.o.CommitWait {
			fail(codeReplayFailed, "records up to seq %d were not committed within %v; they may be missing", target, c.h.o.CommitWait)
			confirmed = target
			continue
		}
		if fl, ok := rp.(flusher); ok && c.h.forceCommit(ctx, fl) {
			// A commit now instead of the store's next one, shared
			// hub-wide and spaced (forceCommit): read again.
			continue
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-commitC:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
}

// goLive switches the job to live delivery after a failed replay.
func (c *client) goLive(job *replayJob, cur uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	job.buf = nil
	c.switchLive(job, cur)
}

// jobAlive reports whether a subscription still waits for job; c.mu held.
func (c *client) jobAlive(job *replayJob) bool {
	alive := false
	c.eachEntry(job.ch, func(e *entry) { alive = alive || e.job == job })
	return alive
}

// switchLive makes the job's subscriptions live; c.mu held. Live records
// at or below cur were sent by the replay (or precede since): the floor
// keeps them from being sent again when the fan-out lags the store.
func (c *client) switchLive(job *replayJob, cur uint64) {
	c.eachEntry(job.ch, func(e *entry) {
		if e.job == job {
			e.job = nil
			e.floor = cur
		}
	})
}

// replayMessage encodes a stored record for a replaying subscription; false
// when the subscription does not want it.
func (c *client) replayMessage(job *replayJob, r *store.Record) (wsconn.Message, bool) {
	if job.f.devices != nil && !slices.Contains(job.f.devices, r.DeviceID) {
		return wsconn.Message{}, false
	}
	if !job.f.match(job.ch, r) {
		return wsconn.Message{}, false
	}
	switch job.ch {
	case chTelemetry:
		u := newTelemetry(r, job.f.metrics)
		if len(u.Telemetry) == 0 {
			return wsconn.Message{}, false
		}
		// Replayed history is not coalesced: no Key.
		return wsconn.Message{Data: mustJSON(u), Seq: r.Seq}, true
	case chAlerts:
		return wsconn.Message{Data: encodeAlert(r), Seq: r.Seq}, true
	default:
		return wsconn.Message{Data: encodeDeviceStatus(r, c.h.deviceInfo(r.DeviceID)), Seq: r.Seq}, true
	}
}
