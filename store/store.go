package store

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DefaultCommitInterval is Options.CommitInterval's default: the longest
// telemetry waits for its commit (see the package doc for why 10 s).
const DefaultCommitInterval = 10 * time.Second

// Defaults of Options.
const (
	defaultMaxBatch    = 4096
	defaultMaxBytes    = 256 << 20
	defaultOpenTimeout = 5 * time.Second
	// maxBytes32 caps MaxBytes on 32-bit builds, where bbolt's mmap of the
	// whole file must fit in a 2 GiB address range.
	maxBytes32 = 3 << 29 // 1.5 GiB
	// maxMaxBatch bounds MaxBatch, and with it the queue (4 x MaxBatch
	// records in memory) and the seq reserve (8 x MaxBatch).
	maxMaxBatch = 1 << 20
	// minMaxBytes is the smallest cap that leaves room for records next to
	// bbolt's own pages (meta, freelist, bucket roots).
	minMaxBytes = 128 << 10
	// maxSkipped bounds the list of skipped ranges kept in meta.
	maxSkipped = 100
)

// Options configures a Store. The zero value of each field means its default.
type Options struct {
	// CommitInterval is the longest a telemetry record waits before its
	// batch is committed (one transaction, one fsync), and so the longest
	// it waits before the uplinks can read it. Alerts and device status
	// are committed at once, with whatever is queued. Default 10 s: each
	// commit writes at least 4 to 7 pages of 4 KiB (see the package doc).
	CommitInterval time.Duration
	// MaxBatch commits early once this many records are pending. Default
	// 4096, at most 1<<20. Append blocks once 4 x MaxBatch records are
	// pending (back-pressure).
	MaxBatch int
	// MaxBytes caps the data kept, in bytes in use (the file's pages less
	// its free pages; the file itself can be a few MiB larger, as bbolt
	// preallocates and never shrinks it). Default 256 MiB; at most 1.5 GiB
	// on 32-bit builds; at least 128 KiB. See doc.go for what is evicted first.
	MaxBytes int64
	// MaxAge evicts records whose TS is older than this, checked at every
	// commit and at least once a minute. Zero keeps records until the byte
	// cap needs the room.
	MaxAge time.Duration
	// OpenTimeout bounds waiting for the file lock. Default 5 s.
	OpenTimeout time.Duration
	// ChatMaxMessages caps the floor chat's messages kept under their
	// chats, a count; past it the oldest messages (of any chat) are
	// evicted and counted (Stats.ChatEvicted). Default 20000. The chat has
	// its own caps: telemetry never evicts a chat message from its chat
	// (the log's copy, which the uplinks forward, is an event record).
	ChatMaxMessages int
	// ChatMaxBytes caps the same messages by their bytes (key, value and
	// bbolt's per-entry overhead); the first cap reached evicts. Default
	// 8 MiB, at least 64 KiB.
	ChatMaxBytes int64
	// ChatMaxChats caps the number of chats, a count; CreateChat fails
	// with ErrChatFull past it (chats are never evicted). Default 1000.
	ChatMaxChats int
	// Logger receives the store's log lines. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock used for age eviction. Default time.Now.
	Now func() time.Time
}

// Validate reports the first field of o that cannot mean anything, as a
// *FieldError wrapping ErrInvalid. Open calls it; so does the agent's
// config check, so that a config that passes never fails here.
func (o *Options) Validate() error {
	if o == nil {
		return nil
	}
	switch {
	case o.CommitInterval < 0:
		return invalidOption("CommitInterval", "%v is negative", o.CommitInterval)
	case o.MaxBatch < 0 || o.MaxBatch > maxMaxBatch:
		return invalidOption("MaxBatch", "%d: want 0 (default) to %d", o.MaxBatch, maxMaxBatch)
	case o.MaxBytes < 0 || (o.MaxBytes > 0 && o.MaxBytes < minMaxBytes):
		return invalidOption("MaxBytes", "%d: want 0 (default) or at least %d", o.MaxBytes, minMaxBytes)
	case o.MaxAge < 0:
		return invalidOption("MaxAge", "%v is negative", o.MaxAge)
	case o.OpenTimeout < 0:
		return invalidOption("OpenTimeout", "%v is negative", o.OpenTimeout)
	case o.ChatMaxMessages < 0:
		return invalidOption("ChatMaxMessages", "%d is negative", o.ChatMaxMessages)
	case o.ChatMaxBytes < 0 || (o.ChatMaxBytes > 0 && o.ChatMaxBytes < 64<<10):
		return invalidOption("ChatMaxBytes", "%d: want 0 (default) or at least %d", o.ChatMaxBytes, 64<<10)
	case o.ChatMaxChats < 0:
		return invalidOption("ChatMaxChats", "%d is negative", o.ChatMaxChats)
	}
	return nil
}

// resolve returns o with every default filled in, or Validate's error.
func (o *Options) resolve() (Options, error) {
	var r Options
	if o != nil {
		r = *o
	}
	if err := r.Validate(); err != nil {
		return r, err
	}
	if r.CommitInterval == 0 {
		r.CommitInterval = DefaultCommitInterval
	}
	if r.MaxBatch == 0 {
		r.MaxBatch = defaultMaxBatch
	}
	if r.MaxBytes == 0 {
		r.MaxBytes = defaultMaxBytes
	}
	if strconv.IntSize == 32 && r.MaxBytes > maxBytes32 {
		r.MaxBytes = maxBytes32
	}
	if r.OpenTimeout == 0 {
		r.OpenTimeout = defaultOpenTimeout
	}
	if r.ChatMaxMessages == 0 {
		r.ChatMaxMessages = defaultChatMaxMessages
	}
	if r.ChatMaxBytes == 0 {
		r.ChatMaxBytes = defaultChatMaxBytes
	}
	if r.ChatMaxChats == 0 {
		r.ChatMaxChats = defaultChatMaxChats
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	return r, nil
}

// pending is a record appended but not yet committed.
type pending struct {
	seq     uint64
	kind    Kind
	enc     []byte
	alertID uint64 // KindAlert and KindAlertAck only
	raise   bool   // KindAlert: State == AlertActive
	chat    uint64 // KindChat: the chat's ID
}

// Store is the durable log of records, with delivery cursors.
//
// All methods are safe for concurrent use.
type Store struct {
	db      *bolt.DB
	path    string
	o       Options
	log     *slog.Logger
	reserve uint64 // seqs reserved ahead of the last assigned one at each commit
	qcap    int    // Append blocks when this many records are pending

	kick chan struct{} // wakes the writer; buffered, never blocks
	quit chan struct{} // closed by Close
	done chan struct{} // closed when the writer has exited
	shut chan struct{} // closed when Close has closed the file

	mu        sync.Mutex
	space     *sync.Cond // Append waits here for queue room or a higher ceiling
	closed    bool       // Close was called: Append refuses
	exited    bool       // the writer is gone: nothing more will commit
	dying     bool       // abandon: the writer exits without committing
	last      uint64     // highest seq assigned
	ceiling   uint64     // durable in meta: Append never assigns past it
	queue     []pending
	spare     []pending // the last batch's array, reused by the next queue
	flushWant bool
	urgent    bool              // an event is queued: commit now, not at the tick
	curs      map[string]uint64 // every cursor set since Open: its latest value
	curDirty  map[string]bool   // cursors set and not yet committed
	curGen    uint64            // bumped whenever a cursor becomes dirty
	curDone   uint64            // curGen as of the last committed cursor snapshot
	commitCh  chan struct{}     // closed at the next successful commit
	failCh    chan struct{}     // closed at the next failed commit
	commitErr error             // error of the last commit if it failed, else nil
	closeErr  error
	st        Stats
	skipped   [][2]uint64
	chats     int // chats stored

	dict *dict // short strings shared by records; safe for concurrent use

	// Owned by the writer goroutine (and Open before it starts).
	hint   uint64   // value in the "<path>.seq" sidecar; always >= ceiling
	counts [2]int64 // records in telemetry, events
	chat   chatCounts
	evlog  evictLog

	bl         backlogMemo // guarded by its own mutex
	damageOnce atomic.Bool // damage met and marked
}

// Stats describes the store at one instant.
type Stats struct {
	LastSeq      uint64    // highest seq assigned
	CommittedSeq uint64    // highest seq durably committed
	FirstSeq     uint64    // lowest seq still stored (0 when empty)
	Records      int       // records stored
	Bytes        int64     // bytes in use
	Evicted      uint64    // records evicted by the cap or age, since the file was created
	OldestTS     time.Time // TS of the oldest stored record
	Commits      uint64    // transactions committed since Open
	Pending      int       // records appended and waiting for a commit (failed commits keep theirs here)
	Failing      bool      // the last commit failed (disk full, I/O error); cleared by the next good one
	Chats        int       // floor chats stored
	ChatMessages int       // chat messages stored under their chats
	ChatBytes    int64     // their bytes (see Options.ChatMaxBytes)
	ChatEvicted  uint64    // chat messages evicted by the chat caps, since the file was created
}

// Append assigns r the next seq, queues it for the next group commit and
// returns it with Seq set. It does not wait for the commit. It blocks only
// when the queue is full (back-pressure); if the queue is full because
// commits are failing (disk full, I/O errors), it returns the commit error
// instead of blocking, and spends no seq.
//
// An alert record that raises an alert (State AlertActive) with a zero
// Alert.ID gets its own Seq as ID: the returned record carries it, and the
// record that clears the alert must carry the same ID. An active record
// with the ID of an alert still active updates it: ActiveAlerts keeps
// returning the first raising record. A bad record is
// refused with an error wrapping ErrInvalid, and spends no seq.
func (s *Store) Append(r Record) (Record, error) {
	if err := validate(&r); err != nil {
		return r, err
	}
	enc, err := s.dict.encode(make([]byte, 0, 64), &r)
	if err != nil {
		return r, err
	}
	s.mu.Lock()
	for !s.closed && (len(s.queue) >= s.qcap || s.last >= s.ceiling) {
		if s.commitErr != nil {
			// The disk is failing and the queue is full: waiting could
			// stall the sensors forever. Tell the caller instead.
			err := s.commitErr
			s.mu.Unlock()
			return r, err
		}
		s.poke()
		s.space.Wait()
	}
	if s.closed {
		s.mu.Unlock()
		return r, ErrClosed
	}
	s.last++
	r.Seq = s.last
	p := pending{seq: r.Seq, kind: r.Kind, enc: enc}
	if r.Kind == KindAlert {
		if r.Alert.ID == 0 {
			// Never write through the caller's pointer.
			a := *r.Alert
			a.ID = r.Seq
			r.Alert = &a
			p.enc, _ = s.dict.encode(enc[:0], &r) // a few varint bytes more at most: cannot fail
		}
		p.alertID = r.Alert.ID
		p.raise = r.Alert.State == AlertActive
	}
	if r.Kind == KindChat {
		p.chat = r.Chat.ChatID
	}
	if r.Kind == KindAlertAck {
		p.alertID = r.Alert.ID
		k := *r.Ack // as Read returns it; never write through the caller's pointer
		k.At = r.TS
		r.Ack = &k
	}
	s.queue = append(s.queue, p)
	if r.Kind != KindTelemetry {
		// An alert or a status change must reach the uplinks at once,
		// and they read only what is committed: commit now.
		s.urgent = true
		s.poke()
	} else if len(s.queue) == s.o.MaxBatch {
		s.poke()
	}
	s.mu.Unlock()
	return r, nil
}

// poke wakes the writer without blocking.
func (s *Store) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Flush commits every record appended and every cursor set so far, and
// returns when they are durable.
func (s *Store) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	target, curTarget := s.last, s.curGen
	for s.st.CommittedSeq < target || s.curDone < curTarget {
		if s.exited {
			if s.closeErr != nil {
				return s.closeErr
			}
			return ErrClosed
		}
		s.flushWant = true
		s.poke()
		cc, fc := s.commitCh, s.failCh
		s.mu.Unlock()
		select {
		case <-cc:
			s.mu.Lock()
		case <-fc:
			s.mu.Lock()
			return s.commitErr
		case <-ctx.Done():
			s.mu.Lock()
			return ctx.Err()
		}
	}
	return nil
}

// WaitCommitted waits until the record seq is committed, or ctx ends. It
// asks for no commit: on a failing disk the writer tries again at its own
// pace, and a caller waiting for one record should not hurry it (Flush
// does, and returns at the next failure).
func (s *Store) WaitCommitted(ctx context.Context, seq uint64) error {
	for {
		s.mu.Lock()
		done, exited, ch := s.st.CommittedSeq >= seq, s.exited, s.commitCh
		s.mu.Unlock()
		switch {
		case done:
			return nil
		case exited:
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Committed returns a channel closed at the next commit; call it again for the next one.
// After Close it returns a closed channel.
func (s *Store) Committed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commitCh
}

// Skipped returns the seq ranges that were reserved but never committed
// because the process died (inclusive bounds), oldest first, at most 100.
func (s *Store) Skipped() [][2]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][2]uint64(nil), s.skipped...)
}

// Stats returns current counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.LastSeq = s.last
	st.Pending = len(s.queue)
	st.Failing = s.commitErr != nil
	st.Chats = s.chats
	return st
}

// Close commits what is pending and closes the file. It persists the
// reserve ceiling as the last assigned seq, so that a clean restart skips
// nothing. Close is idempotent: later calls return the first call's result.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.shut
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.closeErr
	}
	s.closed = true
	s.space.Broadcast() // blocked Appends return ErrClosed
	close(s.quit)
	s.mu.Unlock()

	<-s.done
	return s.shutdown()
}

// abandon stops the store the way kill -9 would: no final commit, no
// ceiling written. For tests.
func (s *Store) abandon() {
	s.mu.Lock()
	s.closed, s.dying = true, true
	s.space.Broadcast()
	close(s.quit)
	s.mu.Unlock()
	<-s.done
	s.shutdown()
}

// shutdown closes the file once the writer has exited.
func (s *Store) shutdown() error {
	s.evlog.flush(s.log, true)
	err := s.db.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closeErr == nil && err != nil {
		s.closeErr = fmt.Errorf("store: close %s: %w", s.path, err)
	}
	close(s.shut)
	return s.closeErr
}
