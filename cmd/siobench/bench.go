package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/floorhub/floorhub/internal/procstat"
)

// Config is one benchmark run against one server.
type Config struct {
	// URL is the server's base, http://host:port (the tool adds
	// /socket.io/).
	URL string
	// Clients is the number of Socket.IO clients in the chat: the
	// sender's one connection and Clients-1 connections of the receiver.
	// The seed delivers each message to the sender and to every socket of
	// the receiver, so each message makes Clients deliveries.
	Clients int
	// Rate is the messages posted per second.
	Rate float64
	// Warmup is how long messages are posted before the measured phase.
	Warmup time.Duration
	// Duration is the measured phase.
	Duration time.Duration
	// Sender and Receiver are the two users' numbers (the handshake's
	// userId); SenderToken and ReceiverToken their tokens (floorhub needs
	// them; the reference server ignores them).
	Sender, Receiver           int64
	SenderToken, ReceiverToken string
	// PID is the server's process id, for its CPU and RSS from /proc; 0:
	// not measured.
	PID int
	// Size is the message text's length, in bytes (at least what the
	// timestamp needs).
	Size int
	// Dials is how many clients connect at once.
	Dials int
	// Log receives progress lines; nil: none.
	Log io.Writer
}

// Result is what one run measured.
type Result struct {
	Clients   int
	Posted    int           // messages posted in the measured phase
	Delivered int64         // their response_message deliveries
	Elapsed   time.Duration // from the phase's first post to its last delivery (or the drain timeout)
	P50, P99  time.Duration // post to delivery
	P999, Max time.Duration
	// Exceptions counts the exception events the clients got.
	Exceptions int64
	// CPU is the server's user+system time over Elapsed (PID set).
	CPU time.Duration
	// RSS in bytes: before any client connected, once all had connected,
	// and at the end of the phase (PID set).
	RSSBefore, RSSConnected, RSSEnd int64
}

// CPUPerDelivery is the server's CPU time per delivery.
func (r *Result) CPUPerDelivery() time.Duration {
	if r.Delivered == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Delivered)
}

// RSSPerConn is the server's RSS growth per connection at the phase's end,
// in bytes.
func (r *Result) RSSPerConn() int64 { return (r.RSSEnd - r.RSSBefore) / int64(r.Clients) }

// member is one client's share of the measurement.
type member struct {
	c    *client
	mu   sync.Mutex
	lat  []time.Duration // of the measured phase's messages
	done chan error      // the reader's end
}

// text is a message's text: the tag, the phase, the posting time in Unix
// nanoseconds, then padding to size.
func text(phase int, t time.Time, size int) string {
	s := "siobench " + strconv.Itoa(phase) + " " + strconv.FormatInt(t.UnixNano(), 10) + " "
	if len(s) < size {
		s += strings.Repeat("x", size-len(s))
	}
	return s
}

// parseText reads back text's phase and time.
func parseText(s string) (phase int, t time.Time, ok bool) {
	f := strings.Fields(s)
	if len(f) < 3 || f[0] != "siobench" {
		return 0, t, false
	}
	p, err1 := strconv.Atoi(f[1])
	ns, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, t, false
	}
	return p, time.Unix(0, ns), true
}

// Run connects the clients, creates the chat, posts through the warm-up and
// the measured phase, and measures.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Clients < 2 || cfg.Rate <= 0 || cfg.Duration <= 0 {
		return nil, errors.New("siobench: want at least 2 clients, a positive rate and duration")
	}
	if cfg.Dials <= 0 {
		cfg.Dials = 20
	}
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", args...)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := &Result{Clients: cfg.Clients}
	if cfg.PID > 0 {
		res.RSSBefore = procstat.RSS(cfg.PID)
	}

	// The sender first: it creates the chat (or finds it again).
	sender, err := dial(ctx, cfg.URL, 0, cfg.Sender, cfg.SenderToken)
	if err != nil {
		return nil, fmt.Errorf("siobench: the sender: %w", err)
	}
	members := make([]*member, cfg.Clients)
	members[0] = &member{c: sender, done: make(chan error, 1)}
	defer func() {
		for _, m := range members {
			if m != nil {
				m.c.Close()
			}
		}
	}()
	var wg sync.WaitGroup
	slots := make(chan struct{}, cfg.Dials)
	errs := make([]error, cfg.Clients)
	for i := 1; i < cfg.Clients; i++ {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			c, err := dial(ctx, cfg.URL, i, cfg.Receiver, cfg.ReceiverToken)
			if err != nil {
				errs[i] = fmt.Errorf("siobench: receiver client %d: %w", i, err)
				cancel() // the others stop dialling
				return
			}
			members[i] = &member{c: c, done: make(chan error, 1)}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err // the first; the others followed from it
		}
	}
	logf("%d clients connected", cfg.Clients)

	var delivered, exceptions atomic.Int64
	chatID := make(chan int64, 1)
	for i, m := range members {
		go func() {
			m.done <- m.c.events(func(name string, arg json.RawMessage) {
				switch name {
				case "response_message":
					var msg struct {
						Message string `json:"message"`
					}
					if json.Unmarshal(arg, &msg) != nil {
						return
					}
					phase, t, ok := parseText(msg.Message)
					if !ok || phase != 1 {
						return
					}
					d := time.Since(t)
					m.mu.Lock()
					m.lat = append(m.lat, d)
					m.mu.Unlock()
					delivered.Add(1)
				case "chat_created":
					var c struct {
						ID int64 `json:"id"`
					}
					if i == 0 && json.Unmarshal(arg, &c) == nil {
						select {
						case chatID <- c.ID:
						default:
						}
					}
				case "exception":
					exceptions.Add(1)
					logf("exception: %s", arg)
				}
			})
		}()
	}
	if err := sender.emit("create_chat", map[string]any{"receiver_id": cfg.Receiver}); err != nil {
		return nil, err
	}
	var chat int64
	select {
	case chat = <-chatID:
	case err := <-members[0].done:
		return nil, fmt.Errorf("siobench: the sender, before chat_created: %v", err)
	case <-time.After(10 * time.Second):
		return nil, errors.New("siobench: no chat_created within 10 s")
	}
	if cfg.PID > 0 {
		res.RSSConnected = procstat.RSS(cfg.PID)
	}
	logf("chat %d; warm-up %v", chat, cfg.Warmup)

	post := func(phase int, d time.Duration) (int, error) {
		every := time.Duration(float64(time.Second) / cfg.Rate)
		tick := time.NewTicker(every)
		defer tick.Stop()
		end := time.Now().Add(d)
		n := 0
		for now := time.Now(); now.Before(end); now = <-tick.C {
			err := sender.emit("create_message", map[string]any{"chat_id": chat, "receiver_id": cfg.Receiver, "message": text(phase, time.Now(), cfg.Size)})
			if err != nil {
				return n, err
			}
			n++
		}
		return n, nil
	}
	if cfg.Warmup > 0 {
		if _, err := post(0, cfg.Warmup); err != nil {
			return nil, err
		}
	}
	cpu0 := time.Duration(0)
	if cfg.PID > 0 {
		cpu0 = procstat.CPU(cfg.PID)
	}
	start := time.Now()
	n, err := post(1, cfg.Duration)
	if err != nil {
		return nil, err
	}
	res.Posted = n
	want := int64(n) * int64(cfg.Clients)
	// Drain: every delivery, or 5 s after the last post.
	drain := time.Now().Add(5 * time.Second)
	for delivered.Load() < want && time.Now().Before(drain) {
		time.Sleep(10 * time.Millisecond) // polling a counter that the readers move
	}
	res.Elapsed = time.Since(start)
	if cfg.PID > 0 {
		res.CPU = procstat.CPU(cfg.PID) - cpu0
		res.RSSEnd = procstat.RSS(cfg.PID)
	}
	res.Delivered = delivered.Load()
	res.Exceptions = exceptions.Load()
	var all []time.Duration
	for _, m := range members {
		m.mu.Lock()
		all = append(all, m.lat...)
		m.mu.Unlock()
	}
	slices.Sort(all)
	q := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(p*float64(len(all))))]
	}
	res.P50, res.P99, res.P999 = q(0.50), q(0.99), q(0.999)
	if len(all) > 0 {
		res.Max = all[len(all)-1]
	}
	return res, nil
}
