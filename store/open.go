package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// hintStep is how far the sidecar "<path>.seq" runs ahead of the ceiling.
// The sidecar is rewritten (and fsynced) only when the ceiling passes it,
// about once per hintStep records, so it costs nothing per commit.
const hintStep = 1 << 20

// Bounds of the integrity check at Open: how many records at each end of
// each bucket are decoded, and how many evenly spread probes walk the
// B+tree from root to leaf. The check reads a few hundred pages, whatever
// the file's size.
const (
	checkEnds   = 32
	checkProbes = 64
)

// Open opens (or creates) the store at path. A file that another process
// holds makes Open fail with ErrTimeout after OpenTimeout. A corrupt file is
// moved aside (path + ".corrupt-<unix time>"), logged, and replaced by a new one.
//
// The parent directory is created (0750) if needed, and the file is 0600.
// Next to the file, "<path>.seq" holds a seq that is never below any seq
// assigned: a store that replaces a corrupt or missing file continues
// after it, so that seqs are not reused even then.
func Open(path string, opts *Options) (*Store, error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	if path == "" {
		return nil, fmt.Errorf("%w: empty path", ErrInvalid)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s := &Store{
		path:    path,
		o:       o,
		log:     o.Logger,
		reserve: 8 * uint64(o.MaxBatch),
		qcap:    4 * o.MaxBatch,
		kick:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		shut:    make(chan struct{}),
	}
	s.space = sync.NewCond(&s.mu)
	s.commitCh = make(chan struct{})
	s.failCh = make(chan struct{})

	hint, err := readHint(path)
	if err != nil {
		s.log.Warn("store: ignoring an unreadable seq hint", "path", hintPath(path), "err", err)
	}
	s.hint = hint
	db, err := s.openBolt()
	if err == nil {
		err = s.load(db)
		if err != nil {
			db.Close()
		}
	}
	if err != nil && errors.Is(err, ErrCorrupt) {
		aside := fmt.Sprintf("%s.corrupt-%d", path, time.Now().Unix())
		for i := 2; ; i++ { // never overwrite an earlier one
			if _, serr := os.Lstat(aside); errors.Is(serr, os.ErrNotExist) {
				break
			}
			aside = fmt.Sprintf("%s.corrupt-%d-%d", path, time.Now().Unix(), i)
		}
		if rerr := os.Rename(path, aside); rerr != nil {
			return nil, fmt.Errorf("store: %s is corrupt (%v) and cannot be moved aside: %w", path, err, rerr)
		}
		os.Remove(damagedPath(path))
		s.log.Error("store: DATABASE CORRUPT: moved it aside and started a new one; its records are no longer served",
			"path", path, "moved_to", aside, "err", err, "seq_continues_after", hint)
		if hint == 0 {
			s.log.Error("store: no seq hint next to the corrupt database: seqs restart from 1 and may repeat old ones",
				"path", path, "hint", hintPath(path))
		}
		db, err = s.openBolt()
		if err == nil {
			err = s.load(db)
			if err != nil {
				db.Close()
			}
		}
	}
	if err != nil {
		return nil, err
	}
	s.db = db
	s.st.Bytes = s.inUse()
	if s.ceiling > s.hint {
		s.raiseHint(s.ceiling)
	}
	go s.run()
	return s, nil
}

// openBolt opens the file with the lock timeout, turning a panic in bbolt
// (garbage in the meta or freelist pages) into ErrCorrupt.
//
// After a panic bbolt returns no handle to close: the file is closed here
// (releasing its lock), but its mapping stays until the process exits.
func (s *Store) openBolt() (*bolt.DB, error) {
	fi, err := os.Stat(s.path)
	if fresh := errors.Is(err, os.ErrNotExist) || (err == nil && fi.Size() == 0); fresh {
		// bbolt creates the file with one multi-page write, which the
		// page cache may keep as one large folio; reopening drops it
		// (see dropCache).
		db, err := s.openBoltOnce()
		if err != nil {
			return nil, err
		}
		if err := db.Close(); err != nil {
			return nil, fmt.Errorf("store: open %s: %w", s.path, err)
		}
	}
	return s.openBoltOnce()
}

func (s *Store) openBoltOnce() (*bolt.DB, error) {
	var db *bolt.DB
	var f *os.File
	err := guard(func() error {
		var err error
		db, err = bolt.Open(s.path, 0o600, &bolt.Options{
			Timeout:      s.o.OpenTimeout,
			FreelistType: bolt.FreelistMapType,
			OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
				var err error
				f, err = os.OpenFile(name, flag, perm)
				if err == nil {
					dropCache(f)
				}
				return f, err
			},
		})
		return err
	})
	if db == nil && f != nil && errors.Is(err, ErrCorrupt) {
		f.Close()
	}
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, bolt.ErrTimeout):
		return nil, fmt.Errorf("%w: %s still locked after %v", ErrTimeout, s.path, s.o.OpenTimeout)
	case errors.Is(err, ErrCorrupt), errors.Is(err, bolt.ErrInvalid), errors.Is(err, bolt.ErrChecksum),
		errors.Is(err, bolt.ErrVersionMismatch), errors.Is(err, bolt.ErrInvalidMapping),
		strings.Contains(err.Error(), "file size too small"):
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, s.path, err)
	}
	return nil, fmt.Errorf("store: open %s: %w", s.path, err)
}

// guard runs fn, turning a panic or a memory fault (a page pointer past
// the mapping) into ErrCorrupt instead of killing the process.
func guard(fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: bbolt panicked: %v", ErrCorrupt, r)
		}
	}()
	return fn()
}

// load checks the file, creates what is missing, reads meta and writes the
// new reserve ceiling. In a new file (no meta yet) the seq continues after
// the sidecar hint.
func (s *Store) load(db *bolt.DB) error {
	s.db = db
	full := false
	if _, err := os.Stat(damagedPath(s.path)); err == nil {
		s.log.Warn("store: the last run met damage in the file: checking every record", "path", s.path)
		full = true
	}
	start := time.Now()
	err := guard(func() error {
		return db.View(func(tx *bolt.Tx) error {
			var err error
			if s.dict, err = loadDict(tx.Bucket(bStrings)); err != nil {
				return err
			}
			return check(tx, s.dict.snapshot(), full)
		})
	})
	if err != nil {
		return err
	}
	if os.Remove(damagedPath(s.path)) == nil {
		s.log.Info("store: full check passed", "path", s.path, "took", time.Since(start))
	}
	return guard(func() error {
		return db.Update(func(tx *bolt.Tx) error {
			fresh := tx.Bucket(bMeta) == nil
			for _, name := range [...][]byte{bTelemetry, bEvents, bMeta, bCursors, bActive, bStrings, bChats, bChatUser, bChatMsgs, bChatSeq, bChatSeen} {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			mb := tx.Bucket(bMeta)
			if v := mb.Get(mLayout); len(v) != 1 || v[0] != layoutVersion {
				// New, or version 1 (the same but for the chat).
				if err := mb.Put(mLayout, []byte{layoutVersion}); err != nil {
					return err
				}
			}
			get := func(k []byte) uint64 {
				if v := mb.Get(k); len(v) == 8 {
					return u64(v)
				}
				return 0
			}
			last, ceiling := get(mLast), get(mCeiling)
			skipped, err := decodeSkipped(mb.Get(mSkipped))
			if err != nil {
				return err
			}
			start := max(last, ceiling)
			if ceiling > last {
				// Reserved, maybe handed out, never committed: the process died.
				if n := len(skipped); n > 0 && skipped[n-1][1] >= last {
					// Nothing committed since the previous crash: widen its range.
					skipped[n-1][1] = ceiling
				} else {
					skipped = append(skipped, [2]uint64{last + 1, ceiling})
				}
				if len(skipped) > maxSkipped {
					skipped = skipped[len(skipped)-maxSkipped:]
				}
				if err := mb.Put(mSkipped, encodeSkipped(skipped)); err != nil {
					return err
				}
				s.log.Warn("store: the last run stopped without closing; seqs reserved but never committed are skipped",
					"path", s.path, "from", last+1, "to", ceiling)
			}
			if fresh && s.hint > start {
				start = s.hint
			}
			s.last = start
			s.ceiling = start + s.reserve
			if err := mb.Put(mCeiling, seqKey(s.ceiling)); err != nil {
				return err
			}
			s.skipped = skipped
			s.counts = [2]int64{int64(get(mCountT)), int64(get(mCountE))}
			s.chat = chatCounts{msgs: int64(get(mChatCount)), bytes: int64(get(mChatBytes)), evicted: get(mChatEvicted)}
			s.chats = int(get(mChats))
			tb, eb := tx.Bucket(bTelemetry), tx.Bucket(bEvents)
			s.st = Stats{CommittedSeq: last, Evicted: get(mEvicted), Records: int(s.counts[0] + s.counts[1]),
				ChatMessages: int(s.chat.msgs), ChatBytes: s.chat.bytes, ChatEvicted: s.chat.evicted}
			s.st.FirstSeq, s.st.OldestTS = oldest(tb, eb)
			return nil
		})
	})
}

// check is the bounded integrity check run at Open: meta, the ends of each
// record bucket, evenly spread probes through them, the alert index and
// the cursors. It catches a damaged tree, a torn tail and foreign files
// without reading the whole file (a full walk of 256 MiB from an SD card
// takes seconds).
func check(tx *bolt.Tx, strs []string, full bool) error {
	mb := tx.Bucket(bMeta)
	if mb == nil {
		// A new file has no buckets at all; anything else is not ours.
		n := 0
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error { n++; return nil })
		if n != 0 {
			return fmt.Errorf("%w: no %q bucket among %d: not a floorhub store", ErrCorrupt, bMeta, n)
		}
		return nil
	}
	// A file cut short (a copy interrupted, a filesystem repair) may
	// still open; its missing pages would fault later.
	if fi, err := os.Stat(tx.DB().Path()); err == nil && fi.Size() < tx.Size() {
		return fmt.Errorf("%w: file is %d bytes, its pages need %d: truncated", ErrCorrupt, fi.Size(), tx.Size())
	}
	if v := mb.Get(mLayout); len(v) != 1 || v[0] < 1 || v[0] > layoutVersion {
		if len(v) == 1 && v[0] > layoutVersion {
			return fmt.Errorf("store: layout version %d is newer than this program's %d: refusing to touch it", v[0], layoutVersion)
		}
		return fmt.Errorf("%w: meta layout %x", ErrCorrupt, v)
	}
	for _, k := range [...][]byte{mLast, mCeiling, mEvicted, mCountT, mCountE} {
		if v := mb.Get(k); v != nil && len(v) != 8 {
			return fmt.Errorf("%w: meta %q has %d bytes", ErrCorrupt, k, len(v))
		}
	}
	if _, err := decodeSkipped(mb.Get(mSkipped)); err != nil {
		return err
	}
	for _, name := range [...][]byte{bTelemetry, bEvents, bCursors, bActive, bStrings} {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("%w: bucket %q missing", ErrCorrupt, name)
		}
	}
	for _, name := range [...][]byte{bTelemetry, bEvents} {
		if err := checkRecords(tx.Bucket(name), string(name), strs, full); err != nil {
			return err
		}
	}
	eb := tx.Bucket(bEvents)
	n := 0
	err := tx.Bucket(bActive).ForEach(func(k, v []byte) error {
		if n++; n > 4*checkProbes {
			return nil
		}
		if len(k) != 8 || (len(v) != 8 && len(v) != 16) || eb.Get(v[:8]) == nil || (len(v) == 16 && eb.Get(v[8:]) == nil) {
			return fmt.Errorf("%w: active alert index entry %x -> %x", ErrCorrupt, k, v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	c := tx.Bucket(bCursors).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(v) != 8 {
			return fmt.Errorf("%w: cursor %q has %d bytes", ErrCorrupt, k, len(v))
		}
	}
	return nil
}

// checkRecords decodes the first and last checkEnds records of b and the
// records found by checkProbes seeks spread over its key range; or, if
// full, every record.
func checkRecords(b *bolt.Bucket, name string, strs []string, full bool) error {
	verify := func(k, v []byte) error {
		if len(k) != 8 {
			return fmt.Errorf("%w: %s: key %x is not a seq", ErrCorrupt, name, k)
		}
		_, err := decode(strs, u64(k), v)
		return err
	}
	c := b.Cursor()
	if full {
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if err := verify(k, v); err != nil {
				return err
			}
		}
		return nil
	}
	first, _ := c.First()
	if first == nil {
		return nil
	}
	var prev uint64
	i := 0
	for k, v := c.First(); k != nil && i < checkEnds; k, v = c.Next() {
		if err := verify(k, v); err != nil {
			return err
		}
		if i > 0 && u64(k) <= prev {
			return fmt.Errorf("%w: %s: keys out of order", ErrCorrupt, name)
		}
		prev = u64(k)
		i++
	}
	lastK, _ := c.Last()
	i = 0
	for k, v := c.Last(); k != nil && i < checkEnds; k, v = c.Prev() {
		if err := verify(k, v); err != nil {
			return err
		}
		i++
	}
	lo, hi := u64(first), u64(lastK)
	if hi < lo {
		return fmt.Errorf("%w: %s: first key %d after last key %d", ErrCorrupt, name, lo, hi)
	}
	for p := uint64(1); p < checkProbes; p++ {
		k, v := c.Seek(seqKey(lo + (hi-lo)/checkProbes*p))
		if k == nil {
			return fmt.Errorf("%w: %s: probe %d found nothing before the last key", ErrCorrupt, name, p)
		}
		if err := verify(k, v); err != nil {
			return err
		}
	}
	return nil
}

// damagedPath is the marker left when a running store meets damage: the
// next Open checks every record instead of sampling.
func damagedPath(path string) string { return path + ".damaged" }

// damaged leaves the marker for the next Open and says so, loudly, once.
func (s *Store) damaged(err error) {
	if !s.damageOnce.CompareAndSwap(false, true) {
		return
	}
	s.log.Error("store: DAMAGE in the database file; the next start checks it in full and moves it aside if needed",
		"path", s.path, "err", err)
	if werr := os.WriteFile(damagedPath(s.path), []byte(err.Error()+"\n"), 0o600); werr != nil {
		s.log.Error("store: cannot leave the damage marker", "path", damagedPath(s.path), "err", werr)
	}
}

// hintPath is the sidecar holding the seq hint.
func hintPath(path string) string { return path + ".seq" }

func readHint(path string) (uint64, error) {
	b, err := os.ReadFile(hintPath(path))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("store: seq hint %s: %w", hintPath(path), err)
	}
	return n, nil
}

// raiseHint makes the sidecar cover ceiling, with room for hintStep more,
// durably (write, fsync, rename, fsync the directory) before the ceiling is
// committed. A failure is logged: the hint only matters if the database is
// later lost.
func (s *Store) raiseHint(ceiling uint64) {
	v := (ceiling/hintStep + 2) * hintStep
	if err := writeHint(s.path, v); err != nil {
		s.log.Error("store: cannot write the seq hint; a lost database could then reuse seqs", "path", hintPath(s.path), "err", err)
		return
	}
	s.hint = v
}

func writeHint(path string, v uint64) error {
	tmp := hintPath(path) + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strconv.FormatUint(v, 10) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, hintPath(path))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		err = d.Sync()
		d.Close()
		return err
	}
	return nil
}
