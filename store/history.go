package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"
)

// MaxBuckets bounds HistoryQuery.Buckets.
const MaxBuckets = 10000

// historySlack is how far out of order a record's TS may be (a clock
// stepped back by NTP, two sensors stamping a hair apart) and still be
// found at the window's edges: the scan starts this much before From and
// stops at the first record this much after To.
const historySlack = time.Minute

// historyCheckEvery is how many records History scans between looks at
// its context: 65,536 records are a few milliseconds of a Pi's core, and
// ctx.Err takes a lock. A test lowers it.
var historyCheckEvery = 1 << 16

// maxHistoryWindow keeps a window's nanoseconds far from overflow.
const maxHistoryWindow = 100 * 365 * 24 * time.Hour

// HistoryQuery asks for one metric of one device, downsampled.
type HistoryQuery struct {
	DeviceID int
	Metric   string
	// From and To bound the window [From, To) of record TS.
	From, To time.Time
	// Buckets splits the window into this many equal buckets, 1 to
	// MaxBuckets.
	Buckets int
}

// Bucket aggregates the values of one time bucket.
type Bucket struct {
	Start         time.Time
	Min, Max, Sum float64
	// Count is the number of finite values (NaN and ±Inf are left out).
	Count int
}

// History is the answer to a HistoryQuery.
type History struct {
	// Buckets holds the buckets that have at least one value, in time
	// order.
	Buckets []Bucket
	// Step is the width of a bucket.
	Step time.Duration
	// Unit is the metric's unit in the newest record that had it.
	Unit string
	// Scanned counts the records looked at; Matched those of the device
	// that carried the metric in the window.
	Scanned, Matched int
}

// History downsamples one metric of one device over a time window from
// the committed telemetry (what a chart needs: min, mean and max per
// bucket).
//
// Records are kept in seq order, and their TS is almost monotonic, so the
// scan starts at the first record stamped From (less a minute of slack,
// found by a binary search over seqs) and stops at the first one stamped a
// minute after To: a 24 h window reads about 24 h of records, whatever the
// retention. Other devices' records cost the read of their header and
// device id; the wanted device's are not decoded beyond the metric asked
// for. Records taken before the clock was synced and never re-stamped
// (Restamp) carry a 1970 TS and are not found; a clock stepped back by
// more than a minute can hide records at the window's edges.
//
// The scan stops, returning ctx.Err(), once ctx is done (looked at every
// 65,536 records), so a client that goes away does not keep a long
// window's read going.
func (s *Store) History(ctx context.Context, q HistoryQuery) (History, error) {
	switch {
	case q.Buckets < 1 || q.Buckets > MaxBuckets:
		return History{}, fmt.Errorf("%w: History buckets %d, want 1 to %d", ErrInvalid, q.Buckets, MaxBuckets)
	case !q.To.After(q.From):
		return History{}, fmt.Errorf("%w: History window %v to %v is empty", ErrInvalid, q.From, q.To)
	case q.To.Sub(q.From) > maxHistoryWindow:
		return History{}, fmt.Errorf("%w: History window %v to %v longer than %v", ErrInvalid, q.From, q.To, maxHistoryWindow)
	case q.From.Before(minTS) || q.To.After(maxTS):
		return History{}, fmt.Errorf("%w: History window %v to %v outside 1678..2262", ErrInvalid, q.From, q.To)
	}
	from, to := q.From.UnixNano(), q.To.UnixNano()
	step := (to - from + int64(q.Buckets) - 1) / int64(q.Buckets) // the last bucket reaches To
	h := History{Step: time.Duration(step)}
	strs := s.dict.snapshot()
	m := newMetricMatcher(strs, q.Metric)
	buckets := make([]Bucket, q.Buckets)
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bTelemetry).Cursor()
		lo := from - int64(historySlack)
		if lo > from { // overflow near 1678
			lo = math.MinInt64 + 1
		}
		hi := to + int64(historySlack)
		if hi < to {
			hi = math.MaxInt64
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		for k, v := seekTS(c, lo); k != nil; k, v = c.Next() {
			h.Scanned++
			if h.Scanned%historyCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if len(v) < headerLen || v[offVersion] != formatV1 {
				continue
			}
			ts := int64(u64(v[offTS:]))
			if ts >= hi {
				break
			}
			if ts < from || ts >= to {
				continue
			}
			val, unit, ok := m.value(v[headerLen:], int64(q.DeviceID))
			if !ok {
				continue
			}
			h.Matched++
			if unit != "" || h.Unit == "" {
				h.Unit = unit
			}
			if math.IsNaN(val) || math.IsInf(val, 0) {
				continue
			}
			b := &buckets[(ts-from)/step]
			if b.Count == 0 || val < b.Min {
				b.Min = val
			}
			if b.Count == 0 || val > b.Max {
				b.Max = val
			}
			b.Sum += val
			b.Count++
		}
		return nil
	})
	if err != nil {
		return History{}, err
	}
	for i := range buckets {
		if buckets[i].Count > 0 {
			buckets[i].Start = time.Unix(0, from+int64(i)*step).UTC()
			h.Buckets = append(h.Buckets, buckets[i])
		}
	}
	return h, nil
}

// seekTS positions c at the first record whose TS is at least ts,
// assuming TS grows with seq: a binary search over the seqs, each probe a
// cursor seek. A record whose header cannot be read counts as older.
func seekTS(c *bolt.Cursor, ts int64) ([]byte, []byte) {
	first, _ := c.First()
	last, _ := c.Last()
	if first == nil {
		return nil, nil
	}
	lo, hi := u64(first), u64(last)+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		k, v := c.Seek(seqKey(mid))
		if k == nil {
			hi = mid
			continue
		}
		if len(v) < headerLen || int64(u64(v[offTS:])) < ts {
			lo = u64(k) + 1
		} else {
			hi = mid
		}
	}
	return c.Seek(seqKey(lo))
}

// metricMatcher finds one metric in encoded telemetry records without
// decoding the rest: the name is compared as its dictionary id or as
// inline bytes, never turned into a string.
type metricMatcher struct {
	strs []string
	name []byte
	id   uint64 // the name's dictionary reference (id<<1|1); 0: not in the dictionary
}

func newMetricMatcher(strs []string, name string) *metricMatcher {
	m := &metricMatcher{strs: strs, name: []byte(name)}
	for i, s := range strs {
		if s == name {
			m.id = uint64(i)<<1 | 1
			break
		}
	}
	return m
}

// value returns the metric's value and unit in the record body b (what
// follows the fixed header) if the record is device's and carries the
// metric.
func (m *metricMatcher) value(b []byte, device int64) (float64, string, bool) {
	id, n := binary.Varint(b)
	if n <= 0 || id != device {
		return 0, "", false
	}
	b = b[n:]
	if b = skipStr(b); b == nil { // boot id
		return 0, "", false
	}
	if _, n = binary.Varint(b); n <= 0 { // mono
		return 0, "", false
	}
	b = b[n:]
	count, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, "", false
	}
	b = b[n:]
	for range count {
		ref, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, "", false
		}
		b = b[n:]
		match := false
		if ref&1 == 1 {
			match = m.id != 0 && ref == m.id
		} else {
			l := ref >> 1
			if l > uint64(len(b)) {
				return 0, "", false
			}
			match = bytes.Equal(b[:l], m.name)
			b = b[l:]
		}
		if len(b) < 8 {
			return 0, "", false
		}
		val := math.Float64frombits(binary.BigEndian.Uint64(b))
		b = b[8:]
		if !match {
			if b = skipStr(b); b == nil {
				return 0, "", false
			}
			continue
		}
		d := decoder{b: b, strs: m.strs}
		unit := d.str()
		if d.err != nil {
			return 0, "", false
		}
		return val, unit, true
	}
	return 0, "", false
}

// skipStr returns b after one encoded string (a dictionary reference or
// inline bytes), nil if b is too short.
func skipStr(b []byte) []byte {
	x, n := binary.Uvarint(b)
	if n <= 0 {
		return nil
	}
	b = b[n:]
	if x&1 == 1 {
		return b
	}
	if x>>1 > uint64(len(b)) {
		return nil
	}
	return b[x>>1:]
}
