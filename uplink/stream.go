package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/floorhub/floorhub/store"
)

// StreamOptions configures a Stream. The zero value of each field means its
// default, except Consumer, which is required.
type StreamOptions struct {
	// Consumer names the store's delivery cursor, e.g. "mqtt.telemetry".
	Consumer string
	// Kinds selects the records the stream carries; none means all kinds.
	Kinds []store.Kind
	// GatewayID is written into every message.
	GatewayID string
	// BatchSize is the most records in one message. Default 500.
	BatchSize int
	// MaxInFlight is the most messages sent and not yet acknowledged; it
	// paces a backlog drain to the peer's speed. Default 8.
	MaxInFlight int
	// MaxRate caps the records sent per second. Default 0: no cap beyond
	// MaxInFlight.
	MaxRate float64
	// Poll is how often the stream looks for new records if no commit was
	// signalled (a safety net; Committed normally wakes it). Default 1 s.
	Poll time.Duration
	// CursorInterval is the shortest time between two cursor updates
	// (Source.SetCursor; the store commits them with its next group
	// commit). Acknowledged records whose cursor is not yet committed are
	// sent again after a crash (never lost). Default 1 s.
	CursorInterval time.Duration
	// ShutdownGrace is how long Run waits for outstanding acknowledgements
	// once its context ends. Default 2 s.
	ShutdownGrace time.Duration
	// Logger receives the stream's log lines. Default slog.Default().
	Logger *slog.Logger
}

// Stream forwards the records of one delivery cursor: it reads from the
// cursor, batches records of one kind per message, sends them through a
// Sender and advances the cursor to the highest point up to which every
// message was acknowledged. A Stream lives across connections: each
// connection calls Run once, and Run resumes from the last acknowledged
// record, so what was in flight when a connection dropped is sent again.
type Stream struct {
	src Source
	o   StreamOptions

	mu      sync.Mutex
	loaded  bool
	acked   uint64 // every record up to here is acknowledged
	written uint64 // the cursor last handed to the store (committed with its next group commit)
	sent    uint64 // records sent since the stream was made
	behind  bool   // the last read filled a batch: more records wait (or no read yet on this connection)
	// The batch is BatchSize >> shrink. A connection that dies before
	// acknowledging anything halves it: a broker that drops clients for
	// packets over its limit (AWS IoT: 128 KB) must not make the uplink
	// resend the same too-large message forever. It doubles again after
	// growAfter acknowledged messages.
	shrink  int
	ackedAt int // messages acknowledged since shrink last changed
}

const growAfter = 10000

// NewStream returns a Stream reading from src.
func NewStream(src Source, o StreamOptions) (*Stream, error) {
	if src == nil {
		return nil, errors.New("uplink: NewStream: nil Source")
	}
	if o.Consumer == "" {
		return nil, errors.New("uplink: StreamOptions.Consumer is required")
	}
	for _, k := range o.Kinds {
		if k.String() == "unknown" {
			return nil, fmt.Errorf("uplink: StreamOptions.Kinds: unknown kind %d", k)
		}
	}
	if o.BatchSize < 0 || o.MaxInFlight < 0 || o.MaxRate < 0 || o.Poll < 0 || o.CursorInterval < 0 || o.ShutdownGrace < 0 {
		return nil, errors.New("uplink: StreamOptions: negative BatchSize, MaxInFlight, MaxRate, Poll, CursorInterval or ShutdownGrace")
	}
	if o.BatchSize == 0 {
		o.BatchSize = 500
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = 8
	}
	if o.Poll == 0 {
		o.Poll = time.Second
	}
	if o.CursorInterval == 0 {
		o.CursorInterval = time.Second
	}
	if o.ShutdownGrace == 0 {
		o.ShutdownGrace = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Stream{src: src, o: o}, nil
}

// Acked returns the seq up to which every record of the stream was
// acknowledged: the store's cursor (committed or not yet) until Run has
// sent something.
func (s *Stream) Acked() uint64 {
	_ = s.load() // on error, 0; Run reports it
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked
}

// Sent returns how many records the stream has sent since it was made,
// resends included.
func (s *Stream) Sent() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

// Behind reports whether the stream is draining a backlog: its last read
// filled a whole batch, so a record stored now waits behind more messages
// (true, too, between connections and before a connection's first read,
// since what was in flight is sent again). A stream that is caught up
// sends a new record at the next commit.
func (s *Stream) Behind() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.behind
}

func (s *Stream) setBehind(b bool) {
	s.mu.Lock()
	s.behind = b
	s.mu.Unlock()
}

// pending is one sent message, or a point the cursor may move to once
// everything before it is acknowledged (ack nil).
type pending struct {
	ack  Ack
	upto uint64
	buf  []byte // the payload, reused once acknowledged
}

// Run sends records over one connection until ctx ends or a message is not
// acknowledged. Calls of Run must not overlap. onCaughtUp, if not nil, is called once, when the stream has
// sent everything committed at the time (so a caller can let one stream go
// before another). After ctx ends Run waits up to ShutdownGrace for the
// outstanding acknowledgements, writes the cursor, and returns nil. A
// failed acknowledgement returns an error wrapping ErrNotAcked.
func (s *Stream) Run(ctx context.Context, snd Sender, onCaughtUp func()) error {
	if err := s.load(); err != nil {
		return err
	}
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	ackCtx, stopAcking := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAcking()

	slots := make(chan struct{}, s.o.MaxInFlight)
	queue := make(chan pending, s.o.MaxInFlight)
	advanced := make(chan struct{}, 1)
	// Payload buffers come back once acknowledged: a drain then allocates
	// (and the GC clears) almost nothing.
	free := make(chan []byte, s.o.MaxInFlight)
	var ackErr error // written by the acker before it exits

	ackerDone := make(chan struct{})
	go func() {
		defer close(ackerDone)
		ackErr = s.ackLoop(ackCtx, queue, slots, free, advanced)
		if ackErr != nil {
			stopSending()
		}
	}()
	writerStop := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		s.writeLoop(writerStop, advanced)
	}()

	s.mu.Lock()
	sentBefore, ackedBefore := s.sent, s.acked
	s.mu.Unlock()
	readErr := s.sendLoop(sendCtx, snd, queue, slots, free, onCaughtUp)
	close(queue)
	grace := time.NewTimer(s.o.ShutdownGrace)
	select {
	case <-ackerDone:
	case <-grace.C:
		stopAcking()
		<-ackerDone
	}
	grace.Stop()
	close(writerStop)
	<-writerDone
	if ackErr != nil {
		s.mu.Lock()
		if s.sent > sentBefore && s.acked == ackedBefore && s.batchSizeLocked() > 1 {
			s.shrink++
			s.ackedAt = 0
			s.o.Logger.Warn("uplink: connection failed before any message was acknowledged; halving the batch (a broker packet size limit?)",
				"consumer", s.o.Consumer, "batch_size", s.batchSizeLocked())
		}
		s.mu.Unlock()
		return ackErr
	}
	return readErr
}

// BatchSize returns the most records the stream now puts in one message:
// StreamOptions.BatchSize, halved for each connection that failed before
// acknowledging anything, down to 1.
func (s *Stream) BatchSize() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.batchSizeLocked()
}

func (s *Stream) batchSizeLocked() int { return max(1, s.o.BatchSize>>s.shrink) }

func (s *Stream) load() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loaded {
		return nil
	}
	c, err := s.src.Cursor(s.o.Consumer)
	if err != nil {
		return fmt.Errorf("uplink: reading cursor %q: %w", s.o.Consumer, err)
	}
	s.acked, s.written, s.loaded = c, c, true
	return nil
}

// sendLoop reads, batches and sends until ctx ends. It returns nil when ctx
// ended; a failing Source is logged and retried after Poll, never fatal.
func (s *Stream) sendLoop(ctx context.Context, snd Sender, queue chan<- pending, slots chan struct{}, free <-chan []byte, onCaughtUp func()) error {
	after := s.Acked()
	s.setBehind(true)
	defer s.setBehind(true) // what is in flight will be sent again
	poll := time.NewTimer(s.o.Poll)
	defer poll.Stop()
	var (
		paceStart time.Time
		paced     float64
	)
	// push queues p once a window slot is free.
	push := func(p pending) bool {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return false
		}
		queue <- p // never blocks: a slot bounds the queue
		return true
	}
	wait := func(ch <-chan struct{}) bool {
		poll.Reset(s.o.Poll)
		select {
		case <-ch:
		case <-poll.C:
		case <-ctx.Done():
			return false
		}
		return true
	}
	lastSize := 0
	var readWarned time.Time
	for ctx.Err() == nil {
		committed := s.src.Committed() // before Read: no commit is missed
		bound := s.src.Stats().CommittedSeq
		batch := s.BatchSize()
		recs, err := s.src.Read(after, batch, s.o.Kinds...)
		if err != nil {
			// Rate-limited: a store that stays broken logs once a minute.
			if time.Since(readWarned) >= time.Minute {
				s.o.Logger.Warn("uplink: reading records failed; retrying", "consumer", s.o.Consumer, "err", err)
				readWarned = time.Now()
			}
			if !wait(nil) {
				return nil
			}
			continue
		}
		readWarned = time.Time{}
		got := len(recs)
		s.setBehind(got >= batch)
		for len(recs) > 0 {
			// One message holds records of one kind (one topic).
			n := 1
			for n < len(recs) && recs[n].Kind == recs[0].Kind {
				n++
			}
			run := recs[:n]
			recs = recs[n:]
			if s.o.MaxRate > 0 {
				if paceStart.IsZero() {
					paceStart = time.Now()
				}
				due := paceStart.Add(time.Duration(paced / s.o.MaxRate * float64(time.Second)))
				if d := time.Until(due); d > 0 {
					t := time.NewTimer(d)
					select {
					case <-t.C:
					case <-ctx.Done():
						t.Stop()
						return nil
					}
				}
				paced += float64(len(run))
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			last := run[len(run)-1].Seq
			if rs, ok := snd.(RecordSender); ok {
				acks := rs.SendRecords(run)
				// One window slot per message; only the last moves
				// the cursor past the run.
				for i, a := range acks {
					if i > 0 && !push(pending{ack: a}) {
						return nil
					}
					if i == 0 {
						queue <- pending{ack: a}
					}
				}
				if len(acks) == 0 {
					<-slots
				}
				if !push(pending{upto: last}) {
					return nil
				}
				after = last
				s.mu.Lock()
				s.sent += uint64(len(run))
				s.mu.Unlock()
				continue
			}
			// The transport holds the payload until the acknowledgement
			// (mqttwire writes it without a copy): only an acknowledged
			// buffer is reused.
			var buf []byte
			select {
			case buf = <-free:
			default:
				buf = make([]byte, 0, lastSize+lastSize/8)
			}
			buf = AppendBatch(buf, s.o.GatewayID, run)
			lastSize = len(buf)
			queue <- pending{ack: snd.Send(run[0].Kind, buf), upto: last, buf: buf}
			after = last
			s.mu.Lock()
			s.sent += uint64(len(run))
			s.mu.Unlock()
		}
		if got < batch {
			// Read returned every matching record committed up to bound:
			// records of other kinds up to bound need no second look.
			if bound > after {
				if !push(pending{upto: bound}) {
					return nil
				}
				after = bound
			}
			if onCaughtUp != nil {
				onCaughtUp()
				onCaughtUp = nil
			}
			paceStart, paced = time.Time{}, 0
			if got == 0 && !wait(committed) {
				return nil
			}
		}
	}
	return nil
}

// ackLoop waits for the acknowledgements in the order the messages were
// sent, so the cursor only ever moves to a point up to which everything is
// acknowledged, however the acknowledgements arrive. It returns when queue
// is closed and empty, when ctx ends, or at the first failed message.
func (s *Stream) ackLoop(ctx context.Context, queue <-chan pending, slots <-chan struct{}, free chan<- []byte, advanced chan<- struct{}) error {
	for {
		var p pending
		var ok bool
		select {
		case p, ok = <-queue:
			if !ok {
				return nil
			}
		case <-ctx.Done():
			return nil
		}
		if p.ack != nil {
			select {
			case <-p.ack.Done():
			case <-ctx.Done():
				return nil
			}
			if err := p.ack.Error(); err != nil {
				return fmt.Errorf("%w: %w", ErrNotAcked, err)
			}
			select {
			case free <- p.buf[:0]:
			default:
			}
		}
		s.mu.Lock()
		if p.upto > s.acked {
			s.acked = p.upto
		}
		if p.ack != nil && s.shrink > 0 {
			if s.ackedAt++; s.ackedAt >= growAfter {
				s.shrink--
				s.ackedAt = 0
			}
		}
		s.mu.Unlock()
		select {
		case advanced <- struct{}{}:
		default: // a signal is already waiting
		}
		<-slots
	}
}

// writeLoop hands the acknowledged point to the store, at most once per
// CursorInterval, and a last time when stop is closed. The store makes it
// durable with its next commit: no fsync per message, nor per cursor.
func (s *Stream) writeLoop(stop <-chan struct{}, advanced <-chan struct{}) {
	var last time.Time
	for {
		select {
		case <-advanced:
		case <-stop:
			s.writeCursor()
			return
		}
		if d := s.o.CursorInterval - time.Since(last); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-stop:
				t.Stop()
				s.writeCursor()
				return
			}
		}
		s.writeCursor()
		last = time.Now()
	}
}

func (s *Stream) writeCursor() {
	s.mu.Lock()
	acked, written := s.acked, s.written
	s.mu.Unlock()
	if acked <= written {
		return
	}
	if err := s.src.SetCursor(s.o.Consumer, acked); err != nil {
		// The next write retries; until then a crash only means resending.
		s.o.Logger.Warn("uplink: writing cursor failed", "consumer", s.o.Consumer, "seq", acked, "err", err)
		return
	}
	s.mu.Lock()
	if acked > s.written {
		s.written = acked
	}
	s.mu.Unlock()
}

// Written returns the cursor last handed to the store by the stream; the
// store commits it with its next group commit.
func (s *Stream) Written() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written
}
