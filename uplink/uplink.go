// Package uplink holds the transport-neutral parts of forwarding floorhub's
// records to the central side: what the uplinks need from the store
// (Source), the JSON encoding of records, and Stream, the drain loop that
// reads from a delivery cursor, batches, sends, and advances the cursor only
// on acknowledgement. The commands the uplinks carry are package command's.
//
// A transport (uplink/mqtt, the WebSocket uplink) owns the connection and
// provides a Sender per connection; Stream does the rest.
package uplink

import (
	"errors"
	"time"

	"github.com/floorhub/floorhub/store"
)

// Sentinel errors. (The commands' own errors are in package command.)
var (
	// ErrNotAcked is returned by Stream.Run when the transport reports that
	// a message was not acknowledged (typically: the connection dropped).
	ErrNotAcked = errors.New("uplink: message not acknowledged")
)

// Clock tells an uplink whether the gateway's wall clock is synced and, once
// it is, the wall clock minus the monotonic clock of this boot, in ns. The
// uplinks send both in their status and heartbeat messages, so that a
// receiver can date records taken (and sent) before the sync: ts = mono_ns
// + mono_offset_ns, for records of the same boot_id.
type Clock func() (synced bool, monoOffsetNS int64)

// ClockFields returns what status and heartbeat messages carry of c: the
// synced flag and, when synced, the offset (nil otherwise). A nil c means
// a clock that is synced with no offset known.
func ClockFields(c Clock) (synced bool, monoOffsetNS *int64) {
	if c == nil {
		return true, nil
	}
	synced, off := c()
	if !synced {
		return false, nil
	}
	return true, &off
}

// Source is what an uplink reads from. *store.Store satisfies it; see
// store/store.go for the exact semantics of each method.
type Source interface {
	Read(after uint64, max int, kinds ...store.Kind) ([]store.Record, error)
	Cursor(consumer string) (uint64, error)
	SetCursor(consumer string, seq uint64) error
	Committed() <-chan struct{}
	Backlog(after uint64) (n int, oldest time.Time, err error)
	Skipped() [][2]uint64
	Stats() store.Stats
}

// Ack reports the fate of one sent message. A *mqttwire.Token satisfies it.
type Ack interface {
	// Done is closed when the message was acknowledged or failed.
	Done() <-chan struct{}
	// Error is nil once Done is closed if the peer acknowledged the message.
	Error() error
}

// Sender sends messages over one connection of a transport.
type Sender interface {
	// Send starts sending one message holding a batch of records of one
	// kind (see AppendBatch). It may block for back-pressure, but must not
	// wait for the acknowledgement: the returned Ack reports it.
	Send(kind store.Kind, payload []byte) Ack
}

// RecordSender is a Sender that encodes records itself, in its own format
// (Sparkplug B: one message per device, a sequence number given as each
// is published). A Stream hands such a sender each run of records of one
// kind, in seq order, instead of a JSON batch. SendRecords may publish any
// number of messages for the run, none included, and returns one Ack per
// message; the cursor passes the run once all of them are acknowledged.
type RecordSender interface {
	Sender
	SendRecords(recs []store.Record) []Ack
}
