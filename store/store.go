// Package store keeps floorhub's records durably in a bbolt file.
//
// STUB: the signatures below are the contract other packages build against.
// The implementation is being written; do not change a signature without
// telling every user of it.
package store

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Sentinel errors.
var (
	ErrClosed  = errors.New("store: closed")
	ErrTimeout = errors.New("store: timed out opening the database (is another agent running?)")
)

// Options configures a Store. The zero value of each field means its default.
type Options struct {
	// CommitInterval is the longest a record waits before its batch is
	// committed (one transaction, one fsync). Default 1 s.
	CommitInterval time.Duration
	// MaxBatch commits early once this many records are pending. Default 4096.
	MaxBatch int
	// MaxBytes caps the data kept, in bytes. Default 256 MiB; at most 1.5 GiB
	// on 32-bit builds.
	MaxBytes int64
	// MaxAge evicts records older than this. Zero keeps records until the
	// byte cap needs the room.
	MaxAge time.Duration
	// OpenTimeout bounds waiting for the file lock. Default 5 s.
	OpenTimeout time.Duration
	// Logger receives the store's log lines. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock used for age eviction. Default time.Now.
	Now func() time.Time
}

// Store is the durable log of records, with delivery cursors.
type Store struct{}

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
}

// Open opens (or creates) the store at path. A file that another process
// holds makes Open fail with ErrTimeout after OpenTimeout. A corrupt file is
// moved aside (path + ".corrupt-<unix time>"), logged, and replaced by a new one.
func Open(path string, opts *Options) (*Store, error) {
	return nil, errors.New("store: not implemented")
}

// Append assigns r the next seq, queues it for the next group commit and
// returns it with Seq set. It does not wait for the commit. It blocks only
// when the queue is full (back-pressure).
func (s *Store) Append(r Record) (Record, error) { return r, ErrClosed }

// Flush commits every record appended so far and returns when they are durable.
func (s *Store) Flush(ctx context.Context) error { return ErrClosed }

// Committed returns a channel closed at the next commit; call it again for the next one.
func (s *Store) Committed() <-chan struct{} { return nil }

// Read returns up to max committed records with Seq > after, in seq order.
// kinds filters by kind; none means all kinds.
func (s *Store) Read(after uint64, max int, kinds ...Kind) ([]Record, error) { return nil, ErrClosed }

// Cursor returns the delivery cursor of consumer (0 when it has none).
func (s *Store) Cursor(consumer string) (uint64, error) { return 0, ErrClosed }

// SetCursor records that consumer has delivered everything up to seq.
// It is durable when it returns. A cursor never moves backwards.
func (s *Store) SetCursor(consumer string, seq uint64) error { return ErrClosed }

// Skipped returns the seq ranges that were reserved but never committed
// because the process died (inclusive bounds), oldest first, at most 100.
func (s *Store) Skipped() [][2]uint64 { return nil }

// Backlog counts the committed records with Seq > after, and returns the TS
// of the oldest of them (zero when there are none).
func (s *Store) Backlog(after uint64) (n int, oldest time.Time, err error) {
	return 0, time.Time{}, ErrClosed
}

// ActiveAlerts returns the raising records of the alerts that are active
// (raised and not yet cleared), in seq order. Eviction never drops them.
func (s *Store) ActiveAlerts() ([]Record, error) { return nil, ErrClosed }

// Stats returns current counters.
func (s *Store) Stats() Stats { return Stats{} }

// Close commits what is pending and closes the file.
func (s *Store) Close() error { return nil }
