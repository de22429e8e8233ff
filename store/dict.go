package store

import (
	"encoding/binary"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// The dictionary replaces the short strings that repeat in almost every
// record (boot ID, metric names and units, alert rule, severity, state,
// device statuses) by small numbers: a telemetry record shrinks by about
// half. Entries are only added, never changed or removed; an entry is
// committed in the same transaction as (or before) the first record that
// uses it, so a committed record never names a missing entry.
//
// Bounds: at most maxDict entries of at most maxDictString bytes. Longer
// strings, and every string once the dictionary is full, are stored inline.
const (
	maxDict       = 1 << 14
	maxDictString = 64
)

// bStrings holds the dictionary: id (4 bytes big-endian) -> string.
var bStrings = []byte("strings")

type dict struct {
	mu        sync.RWMutex
	ids       map[string]uint32
	strs      []string // by id; append-only, so a reader may keep a prefix
	persisted int      // strs[:persisted] are committed
}

func newDict() *dict { return &dict{ids: make(map[string]uint32)} }

// id returns the entry for s, adding one if there is room.
func (d *dict) id(s string) (uint32, bool) {
	if len(s) > maxDictString {
		return 0, false
	}
	d.mu.RLock()
	id, ok := d.ids[s]
	d.mu.RUnlock()
	if ok {
		return id, true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if id, ok := d.ids[s]; ok {
		return id, true
	}
	if len(d.strs) >= maxDict {
		return 0, false
	}
	id = uint32(len(d.strs))
	d.strs = append(d.strs, s)
	d.ids[s] = id
	return id, true
}

// snapshot returns the entries so far, for decoding. Entries never change,
// so the slice stays valid while others are added.
func (d *dict) snapshot() []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.strs
}

// unpersisted returns the entries not yet committed and the new persisted
// mark to pass to done once they are.
func (d *dict) unpersisted() ([]string, int, int) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.strs[d.persisted:], d.persisted, len(d.strs)
}

func (d *dict) done(upTo int) {
	d.mu.Lock()
	d.persisted = max(d.persisted, upTo)
	d.mu.Unlock()
}

// put writes entries first.. to b.
func putDict(b *bolt.Bucket, first int, strs []string) error {
	for i, s := range strs {
		var k [4]byte
		binary.BigEndian.PutUint32(k[:], uint32(first+i))
		if err := b.Put(k[:], []byte(s)); err != nil {
			return err
		}
	}
	return nil
}

// loadDict reads the dictionary; ids must be dense from 0.
func loadDict(b *bolt.Bucket) (*dict, error) {
	d := newDict()
	if b == nil {
		return d, nil
	}
	err := b.ForEach(func(k, v []byte) error {
		if len(k) != 4 || binary.BigEndian.Uint32(k) != uint32(len(d.strs)) || len(d.strs) >= maxDict {
			return fmt.Errorf("%w: dictionary key %x out of sequence at %d", ErrCorrupt, k, len(d.strs))
		}
		s := string(v)
		d.ids[s] = uint32(len(d.strs))
		d.strs = append(d.strs, s)
		return nil
	})
	d.persisted = len(d.strs)
	return d, err
}
