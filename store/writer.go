package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket names and meta keys: the on-disk layout (see doc.go).
var (
	bTelemetry = []byte("telemetry")
	bEvents    = []byte("events")
	bMeta      = []byte("meta")
	bCursors   = []byte("cursors")
	bActive    = []byte("active_alerts")

	mLayout  = []byte("layout")  // 1 byte: layoutVersion
	mLast    = []byte("last")    // 8 bytes: highest seq ever committed
	mCeiling = []byte("ceiling") // 8 bytes: highest seq that may have been assigned
	mEvicted = []byte("evicted") // 8 bytes: records evicted since the file was created
	mCountT  = []byte("count_t") // 8 bytes: records in telemetry
	mCountE  = []byte("count_e") // 8 bytes: records in events
	mSkipped = []byte("skipped") // 16 bytes per range: lo, hi
)

// layoutVersion is the version of the bucket layout, in meta. Version 2
// added the chat buckets and the record kinds chat and alert_ack; Open
// raises a version 1 file to 2 (nothing else changed), so that an older
// program refuses the file instead of taking those records for damage.
const layoutVersion = 2

// Per-record overhead in a bbolt leaf page beyond key and value: the leaf
// element header. Used to estimate the bytes a batch adds or an eviction frees.
const leafOverhead = 16

// Eviction works in bounded chunks inside the writer's transaction, so that
// one commit never spends long deleting: at most this many records per commit,
// and at most evictChunkBytes (or twice the batch, if larger).
const (
	evictChunkRecords = 1 << 16
	evictChunkBytes   = 1 << 20
)

// run is the single writer: it owns every write transaction.
func (s *Store) run() {
	defer close(s.done)
	tick := time.NewTicker(s.o.CommitInterval)
	defer tick.Stop()
	var lastAge time.Time
	var failing bool
	var failLogged time.Time // failures are logged once a minute, not per retry
	for {
		ticked, closing := false, false
		select {
		case <-s.kick:
		case <-tick.C:
			ticked = true
		case <-s.quit:
			closing = true
		}
		s.mu.Lock()
		if closing && s.dying {
			s.exited = true
			close(s.commitCh)
			close(s.failCh)
			s.mu.Unlock()
			return
		}
		n, nc := len(s.queue), len(s.curDirty)
		ageDue := s.o.MaxAge > 0 && ticked && time.Since(lastAge) >= time.Minute
		// A Flush with nothing queued waits for the commit in flight.
		// Cursors alone wait for the tick: they ride along with records.
		due := closing || (s.flushWant && n+nc > 0) || (s.urgent && n > 0) || n >= s.o.MaxBatch ||
			(ticked && n+nc > 0) || s.last >= s.ceiling || ageDue
		if !due {
			s.mu.Unlock()
			continue
		}
		// Cursors before the queue: every seq a cursor names was appended
		// before it was set, so it is in this batch or committed already.
		var curs map[string]uint64
		if nc > 0 {
			curs = make(map[string]uint64, nc)
			for c := range s.curDirty {
				curs[c] = s.curs[c]
			}
			s.curDirty = nil
		}
		curGen := s.curGen
		batch := s.queue
		s.queue, s.spare = s.spare[:0], nil
		s.flushWant, s.urgent = false, false
		last := s.last
		s.mu.Unlock()
		// After the queue snapshot: covers every entry its records use.
		strs, first, upTo := s.dict.unpersisted()

		ceiling := last + s.reserve
		if closing {
			ceiling = last // a clean stop skips nothing
		}
		if s.o.MaxAge > 0 && (n > 0 || ageDue) {
			lastAge = time.Now()
		}
		st, err := s.commit(batch, curs, dictDelta{strs, first}, ceiling, s.o.MaxAge > 0 && (n > 0 || ageDue))
		if err == nil {
			s.dict.done(upTo)
		}

		s.mu.Lock()
		if err != nil {
			if !failing || time.Since(failLogged) >= time.Minute {
				s.log.Error("store: commit failed; records stay queued and are retried every commit interval",
					"path", s.path, "queued", len(batch)+len(s.queue), "err", err)
				failLogged = time.Now()
			}
			failing = true
			s.queue = append(batch, s.queue...)
			for c := range curs { // retried with the next commit
				s.dirtyCursorLocked(c)
			}
			s.commitErr = fmt.Errorf("store: commits are failing: %w", err)
			close(s.failCh)
			s.failCh = make(chan struct{})
			if closing {
				s.closeErr = fmt.Errorf("store: final commit, %d records lost: %w", len(s.queue), err)
			}
		} else {
			if len(batch) > 0 {
				st.CommittedSeq = batch[len(batch)-1].seq
			}
			if failing {
				s.log.Info("store: commits work again", "path", s.path, "records", len(batch))
				failing = false
			}
			s.st = st
			s.curDone = curGen
			s.ceiling = ceiling
			s.commitErr = nil
			clear(batch) // drop the encoded records
			s.spare = batch[:0]
			close(s.commitCh)
			s.commitCh = make(chan struct{})
			s.space.Broadcast()
		}
		if closing {
			s.exited = true
			close(s.commitCh) // Committed() after Close: closed, never replaced
			close(s.failCh)
			s.space.Broadcast()
		}
		s.mu.Unlock()
		s.evlog.flush(s.log, false)
		if closing {
			return
		}
	}
}

// dictDelta is the dictionary entries a commit adds, from id first.
type dictDelta struct {
	strs  []string
	first int
}

// commit writes batch in one transaction with the new ceiling, evicts what
// the cap and age require, and returns the new committed-side Stats.
func (s *Store) commit(batch []pending, curs map[string]uint64, dd dictDelta, ceiling uint64, age bool) (Stats, error) {
	if ceiling > s.hint {
		s.raiseHint(ceiling)
	}
	s.mu.Lock()
	st := s.st
	s.mu.Unlock()
	counts, cc := s.counts, s.chat
	var ev evictor
	s.bl.begin()
	err := guard(func() error { return s.db.Update(s.commitTx(batch, curs, dd, ceiling, age, &st, &counts, &cc, &ev)) })
	if errors.Is(err, ErrCorrupt) {
		s.damaged(err)
	}
	if err != nil {
		s.bl.end(0, 0, 0)
		return Stats{}, err
	}
	evT, evE := ev.n[0], ev.n[1]
	s.bl.end(evT+evE, ev.low, ev.high)
	s.counts, s.chat = counts, cc
	st.ChatMessages, st.ChatBytes, st.ChatEvicted = int(cc.msgs), cc.bytes, cc.evicted
	st.Records = int(counts[0] + counts[1])
	st.Commits++
	st.Bytes = s.inUse()
	if evT+evE > 0 {
		s.evlog.add(evT, evE, ev.low, ev.high)
	}
	return st, nil
}

// commitTx returns the body of a commit's transaction. It fills st, counts
// and ev, which the caller keeps only if the transaction commits.
func (s *Store) commitTx(batch []pending, curs map[string]uint64, dd dictDelta, ceiling uint64, age bool, st *Stats, counts *[2]int64, cc *chatCounts, ev *evictor) func(*bolt.Tx) error {
	free := int64(s.db.Stats().FreeAlloc)
	return func(tx *bolt.Tx) error {
		if err := putDict(tx.Bucket(bStrings), dd.first, dd.strs); err != nil {
			return err
		}
		if err := putCursors(tx.Bucket(bCursors), curs); err != nil {
			return err
		}
		tb, eb, mb, ab := tx.Bucket(bTelemetry), tx.Bucket(bEvents), tx.Bucket(bMeta), tx.Bucket(bActive)
		// Keys only ever grow: fill pages completely.
		tb.FillPercent, eb.FillPercent = 1.0, 1.0
		used := tx.Size() - free
		var added int64
		// A batch retried after a commit error that reached the disk
		// anyway rewrites keys already there: count only new ones.
		var lastK [2]uint64
		for i, b := range [...]*bolt.Bucket{tb, eb} {
			if k, _ := b.Cursor().Last(); k != nil {
				lastK[i] = u64(k)
			}
		}
		for i := range batch {
			p := &batch[i]
			k := seqKey(p.seq)
			b, ci := tb, 0
			if p.kind != KindTelemetry {
				b, ci = eb, 1
			}
			if p.seq > lastK[ci] || b.Get(k) == nil {
				counts[ci]++
			}
			if err := b.Put(k, p.enc); err != nil {
				return err
			}
			added += int64(len(k) + len(p.enc) + leafOverhead)
			switch p.kind {
			case KindAlert:
				id := seqKey(p.alertID)
				if p.raise {
					if ab.Get(id) == nil {
						if err := ab.Put(id, k); err != nil {
							return err
						}
					}
				} else if err := ab.Delete(id); err != nil {
					return err
				}
			case KindAlertAck:
				// The index value grows to (raising seq, ack seq): the
				// acknowledgement outlives a restart and eviction like
				// the alert. An alert no longer active keeps no ack,
				// and the first ack stays.
				id := seqKey(p.alertID)
				if v := ab.Get(id); len(v) == 8 {
					if err := ab.Put(id, append(v[:8:8], k...)); err != nil {
						return err
					}
				}
			}
		}

		if err := s.putChatMessages(tx, batch, cc); err != nil {
			return err
		}

		*ev = evictor{tx: tx, tb: tb, eb: eb, ab: ab}
		if age {
			if err := ev.byAge(s.o.Now().Add(-s.o.MaxAge)); err != nil {
				return err
			}
		}
		if over := used + added - ev.freed - s.o.MaxBytes; over > 0 {
			// Evict down to a little under the cap, so the next commits
			// do not each evict a sliver.
			need := over + min(s.o.MaxBytes/16, evictChunkBytes)
			limit := max(2*added, evictChunkBytes)
			if err := ev.byBytes(min(need, limit)); err != nil {
				return err
			}
		}
		counts[0] -= int64(ev.n[0])
		counts[1] -= int64(ev.n[1])

		if len(batch) > 0 {
			if err := mb.Put(mLast, seqKey(batch[len(batch)-1].seq)); err != nil {
				return err
			}
		}
		st.Evicted += uint64(ev.n[0] + ev.n[1])
		for _, kv := range [...]struct {
			k []byte
			v uint64
		}{{mCeiling, ceiling}, {mEvicted, st.Evicted}, {mCountT, uint64(counts[0])}, {mCountE, uint64(counts[1])}} {
			if err := mb.Put(kv.k, seqKey(kv.v)); err != nil {
				return err
			}
		}
		st.FirstSeq, st.OldestTS = oldest(tb, eb)
		return nil
	}
}

// inUse measures the bytes the file really uses: its pages up to the high
// water mark, less the free and pending pages bbolt will reuse.
func (s *Store) inUse() int64 {
	var size int64
	_ = s.db.View(func(tx *bolt.Tx) error {
		size = tx.Size()
		return nil
	})
	return size - int64(s.db.Stats().FreeAlloc)
}

// oldest returns the lowest stored seq and its TS.
func oldest(tb, eb *bolt.Bucket) (uint64, time.Time) {
	kt, vt := tb.Cursor().First()
	ke, ve := eb.Cursor().First()
	if kt == nil || (ke != nil && bytes.Compare(ke, kt) < 0) {
		kt, vt = ke, ve
	}
	if kt == nil {
		return 0, time.Time{}
	}
	ts, _ := headerTS(vt)
	return u64(kt), ts
}

// evictor deletes the oldest records inside the writer's transaction.
type evictor struct {
	tx         *bolt.Tx
	tb, eb, ab *bolt.Bucket
	active     map[uint64]bool // raising and ack seqs of active alerts, loaded lazily
	n          [2]int          // evicted from telemetry, events
	freed      int64           // estimated bytes freed
	low, high  uint64          // range of evicted seqs
}

func (e *evictor) activeSet() map[uint64]bool {
	if e.active == nil {
		e.active = make(map[uint64]bool)
		_ = e.ab.ForEach(func(_, v []byte) error {
			for ; len(v) >= 8; v = v[8:] {
				e.active[u64(v)] = true // the raising record and its ack
			}
			return nil
		})
	}
	return e.active
}

func (e *evictor) budget() int { return evictChunkRecords - e.n[0] - e.n[1] }

// remove deletes keys (copied) from bucket i.
func (e *evictor) remove(i int, keys [][]byte, sizes int64) error {
	b := e.tb
	if i == 1 {
		b = e.eb
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
		seq := u64(k)
		if e.low == 0 || seq < e.low {
			e.low = seq
		}
		e.high = max(e.high, seq)
	}
	e.n[i] += len(keys)
	e.freed += sizes
	return nil
}

// byBytes evicts about need bytes: the oldest telemetry first, events only
// once no telemetry is left, and never an active alert's raising record.
func (e *evictor) byBytes(need int64) error {
	for i, b := range [...]*bolt.Bucket{e.tb, e.eb} {
		var skip map[uint64]bool
		if i == 1 {
			if k, _ := e.tb.Cursor().First(); k != nil {
				return nil // telemetry is left (the chunk limit stopped us)
			}
			skip = e.activeSet()
		}
		var keys [][]byte
		var sizes int64
		c := b.Cursor()
		for k, v := c.First(); k != nil && e.freed+sizes < need && len(keys) < e.budget(); k, v = c.Next() {
			if skip[u64(k)] {
				continue
			}
			keys = append(keys, append([]byte(nil), k...))
			sizes += int64(len(k) + len(v) + leafOverhead)
		}
		if err := e.remove(i, keys, sizes); err != nil {
			return err
		}
		if e.freed >= need {
			return nil
		}
	}
	return nil
}

// byAge evicts records whose TS is before cutoff, oldest first. A record
// taken before the clock was synced has no trustworthy TS: it goes with the
// first synced, expired record after it, and stays if none follows.
func (e *evictor) byAge(cutoff time.Time) error {
	for i, b := range [...]*bolt.Bucket{e.tb, e.eb} {
		var skip map[uint64]bool
		if i == 1 {
			skip = e.activeSet()
		}
		var keys, held [][]byte
		var sizes, heldSizes int64
		c := b.Cursor()
		for k, v := c.First(); k != nil && len(keys)+len(held) < e.budget(); k, v = c.Next() {
			if skip[u64(k)] {
				continue
			}
			ts, ok := headerTS(v)
			size := int64(len(k) + len(v) + leafOverhead)
			if !ok || v[offFlags]&flagSynced == 0 {
				held = append(held, append([]byte(nil), k...))
				heldSizes += size
				continue
			}
			if !ts.Before(cutoff) {
				break
			}
			keys = append(append(keys, held...), append([]byte(nil), k...))
			sizes += heldSizes + size
			held, heldSizes = held[:0], 0
		}
		if err := e.remove(i, keys, sizes); err != nil {
			return err
		}
	}
	return nil
}

// evictLog turns evictions into a summary line at most once a minute.
type evictLog struct {
	t, e      int
	low, high uint64
	last      time.Time
}

func (l *evictLog) add(t, e int, low, high uint64) {
	if l.t+l.e == 0 || low < l.low {
		l.low = low
	}
	l.high = max(l.high, high)
	l.t += t
	l.e += e
}

func (l *evictLog) flush(log *slog.Logger, force bool) {
	if l.t+l.e == 0 || (!force && time.Since(l.last) < time.Minute) {
		return
	}
	log.Warn("store: evicted records to stay within the cap or age limit",
		"telemetry", l.t, "events", l.e, "lowest_seq", l.low, "highest_seq", l.high, "since", l.last.Format(time.RFC3339))
	*l = evictLog{last: time.Now()}
}

// encodeSkipped is the meta form of the skipped ranges.
func encodeSkipped(r [][2]uint64) []byte {
	b := make([]byte, 0, 16*len(r))
	for _, x := range r {
		b = binary.BigEndian.AppendUint64(b, x[0])
		b = binary.BigEndian.AppendUint64(b, x[1])
	}
	return b
}

func decodeSkipped(b []byte) ([][2]uint64, error) {
	if len(b)%16 != 0 {
		return nil, fmt.Errorf("%w: meta %q has %d bytes", ErrCorrupt, mSkipped, len(b))
	}
	var r [][2]uint64
	for ; len(b) > 0; b = b[16:] {
		r = append(r, [2]uint64{u64(b), u64(b[8:])})
	}
	return r, nil
}
