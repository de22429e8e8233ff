package store

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxConsumerName bounds a cursor's name.
const maxConsumerName = 255

// view runs fn in a read transaction, mapping a closed database to
// ErrClosed and a panic in bbolt (a damaged page) to ErrCorrupt.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	err := guard(func() error { return s.db.View(fn) })
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	if errors.Is(err, ErrCorrupt) {
		s.damaged(err)
	}
	return err
}

// Read returns up to max committed records with Seq > after, in seq order.
// kinds filters by kind; none means all kinds. max must be positive.
//
// A record that cannot be decoded (damage in the file) is logged and
// skipped, so that one bad record never wedges a consumer.
func (s *Store) Read(after uint64, max int, kinds ...Kind) ([]Record, error) {
	if max <= 0 {
		return nil, fmt.Errorf("%w: Read max %d, want > 0", ErrInvalid, max)
	}
	var want [kindLimit]bool
	wantT, wantE := len(kinds) == 0, len(kinds) == 0
	for _, k := range kinds {
		switch k {
		case KindTelemetry:
			wantT = true
		case KindAlert, KindDeviceStatus, KindChat, KindAlertAck:
			wantE = true
		default:
			return nil, fmt.Errorf("%w: Read kind %d", ErrInvalid, k)
		}
		want[k] = true
	}
	if len(kinds) == 0 {
		for k := range want {
			want[k] = k != 0
		}
	}
	var out []Record
	strs := s.dict.snapshot()
	err := s.view(func(tx *bolt.Tx) error {
		if after == ^uint64(0) {
			return nil
		}
		start := seqKey(after + 1)
		var ct, ce *bolt.Cursor
		var kt, vt, ke, ve []byte
		if wantT {
			ct = tx.Bucket(bTelemetry).Cursor()
			kt, vt = ct.Seek(start)
		}
		if wantE {
			ce = tx.Bucket(bEvents).Cursor()
			ke, ve = ce.Seek(start)
		}
		for len(out) < max && (kt != nil || ke != nil) {
			var k, v []byte
			if ke == nil || (kt != nil && u64(kt) < u64(ke)) {
				k, v = kt, vt
				kt, vt = ct.Next()
			} else {
				k, v = ke, ve
				ke, ve = ce.Next()
			}
			if len(v) > offKind && int(v[offKind]) < len(want) && !want[v[offKind]] {
				continue
			}
			if r, ok := s.decodeOrSkip(strs, k, v); ok {
				out = append(out, r)
			}
		}
		return nil
	})
	return out, err
}

// decodeOrSkip decodes the record stored under key k; one that cannot be
// decoded (damage in the file) is logged and reported not ok, so that one
// bad record never wedges a reader.
func (s *Store) decodeOrSkip(strs []string, k, v []byte) (Record, bool) {
	r, err := decode(strs, u64(k), v)
	if err != nil {
		s.log.Error("store: skipping a record that cannot be decoded", "path", s.path, "err", err)
		s.damaged(err)
		return Record{}, false
	}
	return r, true
}

// LastTelemetry returns the newest committed telemetry record of device,
// looking at no more than the newest scan telemetry records (a device not
// among them counts as never read: found is false). Drivers whose values
// accumulate, such as pulse counters, resume from it after a restart.
func (s *Store) LastTelemetry(device, scan int) (rec Record, found bool, err error) {
	strs := s.dict.snapshot()
	err = s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bTelemetry).Cursor()
		n := 0
		for k, v := c.Last(); k != nil && n < scan; k, v = c.Prev() {
			n++
			// The device id follows the fixed header: no full decode
			// for the records of other devices.
			if len(v) <= headerLen {
				continue
			}
			d := decoder{b: v[headerLen:], strs: strs}
			if id := d.varint(); d.err != nil || id != int64(device) {
				continue
			}
			r, ok := s.decodeOrSkip(strs, k, v)
			if !ok {
				continue
			}
			rec, found = r, true
			return nil
		}
		return nil
	})
	return rec, found, err
}

// Cursor returns the delivery cursor of consumer (0 when it has none): the
// last seq set, committed or not yet. It never goes backwards while the
// store is open.
func (s *Store) Cursor(consumer string) (uint64, error) {
	if err := checkConsumer(consumer); err != nil {
		return 0, err
	}
	s.mu.Lock()
	v, ok := s.curs[consumer]
	s.mu.Unlock()
	if ok {
		return v, nil
	}
	return s.committedCursor(consumer)
}

// committedCursor reads consumer's cursor from the file.
func (s *Store) committedCursor(consumer string) (uint64, error) {
	var seq uint64
	err := s.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bCursors).Get([]byte(consumer)); len(v) == 8 {
			seq = u64(v)
		}
		return nil
	})
	return seq, err
}

// SetCursor records that consumer has delivered everything up to seq. It
// costs no write of its own: the cursor is committed with the next group
// commit (at most CommitInterval later; Flush and Close wait for it), so a
// crash before then resends what was delivered since the last commit. A
// cursor never moves backwards: a seq at or below the current cursor is a
// no-op. A seq above the last one assigned is refused with ErrInvalid.
func (s *Store) SetCursor(consumer string, seq uint64) error {
	if err := checkConsumer(consumer); err != nil {
		return err
	}
	s.mu.Lock()
	closed, last := s.closed, s.last
	known, ok := s.curs[consumer] // at or above the committed value
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if seq > last {
		return fmt.Errorf("%w: cursor %q to %d, beyond the last seq %d", ErrInvalid, consumer, seq, last)
	}
	if !ok {
		var err error
		if known, err = s.committedCursor(consumer); err != nil {
			return fmt.Errorf("store: set cursor %q: %w", consumer, err)
		}
	}
	if seq <= known {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.setCursorLocked(consumer, seq)
	return nil
}

// setCursorLocked raises consumer's cursor to seq, to be committed; s.mu
// is held.
func (s *Store) setCursorLocked(consumer string, seq uint64) {
	if s.curs == nil {
		s.curs = make(map[string]uint64)
	}
	if seq > s.curs[consumer] {
		s.curs[consumer] = seq
		s.dirtyCursorLocked(consumer)
	}
}

// dirtyCursorLocked marks consumer's cursor for the next commit; s.mu is held.
func (s *Store) dirtyCursorLocked(consumer string) {
	if s.curDirty == nil {
		s.curDirty = make(map[string]bool)
	}
	s.curDirty[consumer] = true
	s.curGen++
}

// putCursors writes the pending cursors in the commit's transaction; a
// cursor never moves backwards.
func putCursors(b *bolt.Bucket, curs map[string]uint64) error {
	for c, seq := range curs {
		if v := b.Get([]byte(c)); len(v) == 8 && u64(v) >= seq {
			continue
		}
		if err := b.Put([]byte(c), seqKey(seq)); err != nil {
			return err
		}
	}
	return nil
}

func checkConsumer(c string) error {
	if c == "" || len(c) > maxConsumerName {
		return fmt.Errorf("%w: consumer name %q: want 1 to %d bytes", ErrInvalid, c, maxConsumerName)
	}
	return nil
}

// ActiveAlerts returns the raising records of the alerts that are active
// (raised and not yet cleared), in seq order. Eviction never drops them.
func (s *Store) ActiveAlerts() ([]Record, error) {
	var out []Record
	strs := s.dict.snapshot()
	err := s.view(func(tx *bolt.Tx) error {
		eb := tx.Bucket(bEvents)
		return tx.Bucket(bActive).ForEach(func(k, v []byte) error {
			if len(v) != 8 && len(v) != 16 {
				return fmt.Errorf("%w: active alert %x: index value of %d bytes", ErrCorrupt, k, len(v))
			}
			raw := eb.Get(v[:8])
			if raw == nil {
				s.log.Error("store: active alert's raising record is missing", "path", s.path, "seq", u64(v))
				return nil
			}
			r, err := decode(strs, u64(v), raw)
			if err != nil {
				s.damaged(err)
				return err
			}
			if len(v) == 16 {
				// Acknowledged: the index holds the alert_ack record's seq too.
				if raw := eb.Get(v[8:]); raw != nil {
					ack, err := decode(strs, u64(v[8:]), raw)
					if err != nil {
						s.damaged(err)
						return err
					}
					r.Ack = ack.Ack
				}
			}
			out = append(out, r)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, err
}

// Backlog counts the committed records with Seq > after, and returns the TS
// of the oldest of them (zero when there are none).
//
// It never decodes records: it counts keys, and remembers the last answer
// so that the next call (usually with a cursor that moved a little) only
// walks the keys that changed.
func (s *Store) Backlog(after uint64) (n int, oldest time.Time, err error) {
	for try := 0; ; try++ {
		m, ok, gen := s.bl.get()
		ok = ok && try < 2 // a commit raced us twice: count every key
		n, oldest, m, err = s.backlog(after, m, ok)
		// The answer is exact if it did not use the memo, or if no commit
		// started since get (which waited for any in flight).
		if err != nil || s.bl.put(m, gen) || !ok {
			return n, oldest, err
		}
	}
}

// backlog computes one Backlog answer, from the memo m if ok.
func (s *Store) backlog(after uint64, m memo, ok bool) (n int, oldest time.Time, _ memo, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		tb, eb := tx.Bucket(bTelemetry), tx.Bucket(bEvents)
		upTo := lastKey(tb, eb)
		if ok && m.upTo <= upTo {
			n = m.n
			if after >= m.after {
				n -= countRange(tb, eb, m.after, min(after, m.upTo))
			} else {
				n += countRange(tb, eb, after, min(m.after, m.upTo))
			}
			n += countRange(tb, eb, max(m.upTo, after), upTo)
		} else {
			n = countRange(tb, eb, after, upTo)
		}
		m = memo{after: after, upTo: upTo, n: n}
		if n > 0 {
			oldest = firstTS(tb, eb, after)
		}
		return nil
	})
	return n, oldest, m, err
}

// countRange counts the keys in (lo, hi] of both buckets.
func countRange(tb, eb *bolt.Bucket, lo, hi uint64) int {
	if hi <= lo {
		return 0
	}
	n := 0
	for _, b := range [...]*bolt.Bucket{tb, eb} {
		c := b.Cursor()
		for k, _ := c.Seek(seqKey(lo + 1)); k != nil && u64(k) <= hi; k, _ = c.Next() {
			n++
		}
	}
	return n
}

func lastKey(tb, eb *bolt.Bucket) uint64 {
	var last uint64
	for _, b := range [...]*bolt.Bucket{tb, eb} {
		if k, _ := b.Cursor().Last(); k != nil {
			last = max(last, u64(k))
		}
	}
	return last
}

// firstTS returns the TS of the first record after seq.
func firstTS(tb, eb *bolt.Bucket, after uint64) time.Time {
	if after == ^uint64(0) {
		return time.Time{}
	}
	kt, vt := tb.Cursor().Seek(seqKey(after + 1))
	ke, ve := eb.Cursor().Seek(seqKey(after + 1))
	if kt == nil || (ke != nil && u64(ke) < u64(kt)) {
		vt = ve
	}
	ts, _ := headerTS(vt)
	return ts
}

// memo is a Backlog answer: n committed records in (after, upTo].
type memo struct {
	after, upTo uint64
	n           int
}

// backlogMemo keeps the last Backlog answer valid across commits. A
// commit that evicts changes counts behind Backlog's back, so the writer
// brackets its transaction with begin/end, which adjust the answer; an
// answer computed while a commit was in flight is not kept.
type backlogMemo struct {
	mu       sync.Mutex
	idle     *sync.Cond // signalled when no commit is in flight
	m        memo
	valid    bool
	gen      uint64 // bumped at the start and end of every commit
	inflight bool
}

// get returns the kept answer, whether it may be used, and the generation
// to hand back to put. It waits for a commit in flight (milliseconds), so
// that the answer can be used instead of counting every key again.
func (b *backlogMemo) get() (memo, bool, uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.idle == nil {
		b.idle = sync.NewCond(&b.mu)
	}
	for b.inflight {
		b.idle.Wait()
	}
	return b.m, b.valid, b.gen
}

// put keeps m unless a commit started since get, and reports whether none did.
func (b *backlogMemo) put(m memo, gen uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gen != gen || b.inflight {
		return false
	}
	b.m, b.valid = m, true
	return true
}

// begin is called by the writer before a transaction.
func (b *backlogMemo) begin() {
	b.mu.Lock()
	b.gen++
	b.inflight = true
	b.mu.Unlock()
}

// end is called by the writer after a transaction, with the number of
// records it evicted and their seq range.
func (b *backlogMemo) end(n int, low, high uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gen++
	b.inflight = false
	if b.idle != nil {
		b.idle.Broadcast()
	}
	if n == 0 || !b.valid {
		return
	}
	switch {
	case high <= b.m.after:
		// All behind the answer: nothing it counted.
	case low > b.m.after && high <= b.m.upTo:
		b.m.n -= n
	default:
		b.valid = false
	}
}
