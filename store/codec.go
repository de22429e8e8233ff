package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// formatV1 is the first byte of every stored record value. A reader that
// meets another version refuses the record instead of misreading it.
const formatV1 = 1

// maxRecordBytes bounds one encoded record: a record is one read or one
// event, and an unbounded one would defeat the byte cap.
const maxRecordBytes = 64 << 10

// Offsets of the fixed header of an encoded record, so that Backlog,
// eviction and kind filters read them without decoding the rest.
const (
	offVersion = 0
	offKind    = 1
	offTS      = 2  // int64 big-endian Unix nanoseconds; zeroTime for the zero time
	offFlags   = 10 // flagSynced
	headerLen  = 11
)

const (
	flagSynced    = 1 << 0
	flagRestamped = 1 << 1 // TS recomputed from Mono once the clock was synced
)

// zeroTime encodes time.Time{}, whose UnixNano is not representable.
const zeroTime = math.MinInt64

// minTS and maxTS are the wall-clock times UnixNano can represent.
var (
	minTS = time.Unix(0, math.MinInt64+1)
	maxTS = time.Unix(0, math.MaxInt64)
)

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

func u64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

func encodeTime(t time.Time) int64 {
	if t.IsZero() {
		return zeroTime
	}
	return t.UnixNano()
}

func decodeTime(n int64) time.Time {
	if n == zeroTime {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func checkTime(what string, t time.Time) error {
	if t.IsZero() || (!t.Before(minTS) && !t.After(maxTS)) {
		return nil
	}
	return fmt.Errorf("%w: %s %v outside 1678..2262", ErrInvalid, what, t)
}

// validate reports bad input before a seq is spent on it.
func validate(r *Record) error {
	switch r.Kind {
	case KindTelemetry:
	case KindAlert:
		if r.Alert == nil {
			return fmt.Errorf("%w: alert record without Alert", ErrInvalid)
		}
		switch r.Alert.State {
		case AlertActive:
		case AlertCleared:
			if r.Alert.ID == 0 {
				return fmt.Errorf("%w: clearing alert record without the ID of the alert it clears", ErrInvalid)
			}
		default:
			return fmt.Errorf("%w: alert state %q, want %q or %q", ErrInvalid, r.Alert.State, AlertActive, AlertCleared)
		}
	case KindAlertAck:
		switch {
		case r.Alert == nil || r.Ack == nil:
			return fmt.Errorf("%w: alert_ack record without Alert and Ack", ErrInvalid)
		case r.Alert.ID == 0:
			return fmt.Errorf("%w: alert_ack record without the ID of the alert it acknowledges", ErrInvalid)
		case r.Ack.By == "":
			return fmt.Errorf("%w: alert_ack record without By", ErrInvalid)
		}
		if err := checkTime("Ack.Raised", r.Ack.Raised); err != nil {
			return err
		}
	case KindDeviceStatus:
		if r.Status == nil {
			return fmt.Errorf("%w: device status record without Status", ErrInvalid)
		}
		if err := checkTime("Status.LastSeen", r.Status.LastSeen); err != nil {
			return err
		}
	case KindChat:
		switch {
		case r.Chat == nil:
			return fmt.Errorf("%w: chat record without Chat", ErrInvalid)
		case r.Chat.ChatID == 0:
			return fmt.Errorf("%w: chat record without ChatID", ErrInvalid)
		case r.Chat.Text == "":
			return fmt.Errorf("%w: chat record with no text", ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: unknown kind %d", ErrInvalid, r.Kind)
	}
	return checkTime("TS", r.TS)
}

// appendString stores free text inline: uvarint(len<<1), then the bytes.
func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s))<<1)
	return append(b, s...)
}

// appendShort stores a string that repeats as uvarint(id<<1 | 1), a
// dictionary entry, or inline if the dictionary has no room for it.
func (d *dict) appendShort(b []byte, s string) []byte {
	if id, ok := d.id(s); ok {
		return binary.AppendUvarint(b, uint64(id)<<1|1)
	}
	return appendString(b, s)
}

func appendFloat(b []byte, f float64) []byte {
	return binary.BigEndian.AppendUint64(b, math.Float64bits(f))
}

// encode appends the stored form of r (everything but Seq, which is the
// key) to b, adding the short strings it uses to d. r must have passed
// validate.
func (d *dict) encode(b []byte, r *Record) ([]byte, error) {
	start := len(b)
	b = append(b, formatV1, byte(r.Kind))
	b = binary.BigEndian.AppendUint64(b, uint64(encodeTime(r.TS)))
	var flags byte
	if r.ClockSynced {
		flags |= flagSynced
	}
	if r.Restamped {
		flags |= flagRestamped
	}
	b = append(b, flags)
	b = binary.AppendVarint(b, int64(r.DeviceID))
	b = d.appendShort(b, r.BootID)
	b = binary.AppendVarint(b, r.Mono)
	switch r.Kind {
	case KindTelemetry:
		b = binary.AppendUvarint(b, uint64(len(r.Metrics)))
		for _, m := range r.Metrics {
			b = d.appendShort(b, m.Name)
			b = appendFloat(b, m.Value)
			b = d.appendShort(b, m.Unit)
		}
	case KindAlert:
		b = d.appendAlert(b, r.Alert)
	case KindAlertAck:
		b = d.appendAlert(b, r.Alert)
		b = d.appendShort(b, r.Ack.By)
		b = appendString(b, r.Ack.Note)
		b = binary.BigEndian.AppendUint64(b, uint64(encodeTime(r.Ack.Raised)))
	case KindDeviceStatus:
		st := r.Status
		b = d.appendShort(b, st.Old)
		b = d.appendShort(b, st.New)
		b = appendString(b, st.Reason)
		b = binary.BigEndian.AppendUint64(b, uint64(encodeTime(st.LastSeen)))
	case KindChat:
		c := r.Chat
		b = binary.AppendUvarint(b, c.ChatID)
		b = binary.AppendVarint(b, c.From)
		b = d.appendShort(b, c.FromName)
		b = binary.AppendVarint(b, c.To)
		b = appendString(b, c.Text)
	}
	if len(b)-start > maxRecordBytes {
		return b[:start], fmt.Errorf("%w: record encodes to %d bytes, more than %d", ErrInvalid, len(b)-start, maxRecordBytes)
	}
	return b, nil
}

func (d *dict) appendAlert(b []byte, a *Alert) []byte {
	b = binary.AppendUvarint(b, a.ID)
	b = d.appendShort(b, a.Rule)
	b = d.appendShort(b, a.Severity)
	b = appendString(b, a.Title)
	b = appendString(b, a.Message)
	b = d.appendShort(b, a.State)
	b = d.appendShort(b, a.Metric)
	b = appendFloat(b, a.Threshold)
	return appendFloat(b, a.Actual)
}

// decoder reads an encoded record; the first error sticks.
type decoder struct {
	b    []byte
	strs []string // the dictionary
	err  error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errShort
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) u64() uint64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) str() string {
	x := d.uvarint()
	if x&1 == 1 {
		if x>>1 >= uint64(len(d.strs)) {
			if d.err == nil {
				d.err = fmt.Errorf("dictionary entry %d of %d", x>>1, len(d.strs))
			}
			d.b = nil
			return ""
		}
		return d.strs[x>>1]
	}
	n := x >> 1
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// skipStr moves past a string as str reads it, without copying it.
func (d *decoder) skipStr() {
	x := d.uvarint()
	switch {
	case x&1 == 1:
		if x>>1 >= uint64(len(d.strs)) {
			d.fail()
		}
	case x>>1 > uint64(len(d.b)):
		d.fail()
	default:
		d.b = d.b[x>>1:]
	}
}

func (d *decoder) float() float64 { return math.Float64frombits(d.u64()) }

func (d *decoder) alert() *Alert {
	a := &Alert{ID: d.uvarint()}
	a.Rule, a.Severity, a.Title, a.Message, a.State, a.Metric = d.str(), d.str(), d.str(), d.str(), d.str(), d.str()
	a.Threshold, a.Actual = d.float(), d.float()
	return a
}

var errShort = errors.New("truncated")

// decode rebuilds the record stored under seq, with the dictionary strs.
// It copies everything out of v, which bbolt owns only for the life of the
// transaction.
func decode(strs []string, seq uint64, v []byte) (Record, error) {
	if len(v) < headerLen {
		return Record{}, fmt.Errorf("%w: record %d: %v", ErrCorrupt, seq, errShort)
	}
	if v[offVersion] != formatV1 {
		return Record{}, fmt.Errorf("%w: record %d: format version %d, want %d", ErrCorrupt, seq, v[offVersion], formatV1)
	}
	r := Record{
		Seq:         seq,
		Kind:        Kind(v[offKind]),
		TS:          decodeTime(int64(u64(v[offTS:]))),
		ClockSynced: v[offFlags]&flagSynced != 0,
		Restamped:   v[offFlags]&flagRestamped != 0,
	}
	d := decoder{b: v[headerLen:], strs: strs}
	r.DeviceID = int(d.varint())
	r.BootID = d.str()
	r.Mono = d.varint()
	switch r.Kind {
	case KindTelemetry:
		n := d.uvarint()
		// Each metric takes at least 10 bytes: never trust n for the allocation.
		if n > uint64(len(d.b)/10) {
			d.fail()
			break
		}
		if n > 0 {
			r.Metrics = make([]Metric, n)
		}
		for i := range r.Metrics {
			r.Metrics[i] = Metric{Name: d.str(), Value: d.float(), Unit: d.str()}
		}
	case KindAlert:
		r.Alert = d.alert()
	case KindAlertAck:
		r.Alert = d.alert()
		r.Ack = &AlertAck{By: d.str(), Note: d.str(), At: r.TS}
		r.Ack.Raised = decodeTime(int64(d.u64()))
	case KindDeviceStatus:
		st := &DeviceStatus{Old: d.str(), New: d.str(), Reason: d.str()}
		st.LastSeen = decodeTime(int64(d.u64()))
		r.Status = st
	case KindChat:
		c := &ChatMessage{ChatID: d.uvarint(), From: d.varint()}
		c.FromName = d.str()
		c.To = d.varint()
		c.Text = d.str()
		r.Chat = c
	default:
		return Record{}, fmt.Errorf("%w: record %d: unknown kind %d", ErrCorrupt, seq, r.Kind)
	}
	if d.err != nil {
		return Record{}, fmt.Errorf("%w: record %d: %v", ErrCorrupt, seq, d.err)
	}
	if len(d.b) != 0 {
		return Record{}, fmt.Errorf("%w: record %d: %d trailing bytes", ErrCorrupt, seq, len(d.b))
	}
	return r, nil
}

// chatSender reads the sender of an encoded chat record without copying
// its strings out: counting a user's unread messages looks at every
// message after their seen mark, and decoding each text for it cost about
// five times as much. ok is false wherever decode would fail (the caller
// decodes such a record in full, which logs and skips it).
func chatSender(strs []string, v []byte) (from int64, ok bool) {
	if len(v) < headerLen || v[offVersion] != formatV1 || Kind(v[offKind]) != KindChat {
		return 0, false
	}
	d := decoder{b: v[headerLen:], strs: strs}
	d.varint()  // device
	d.skipStr() // boot
	d.varint()  // mono
	d.uvarint() // chat
	from = d.varint()
	d.skipStr() // the sender's name
	d.varint()  // to
	d.skipStr() // text
	return from, d.err == nil && len(d.b) == 0
}

// headerTS returns the TS of an encoded record from its fixed header.
func headerTS(v []byte) (time.Time, bool) {
	if len(v) < headerLen || v[offVersion] != formatV1 {
		return time.Time{}, false
	}
	return decodeTime(int64(u64(v[offTS:]))), true
}
