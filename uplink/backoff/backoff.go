// Package backoff computes reconnect delays: exponential growth with full
// jitter, a cap, and a reset once a connection has held long enough.
//
// One Backoff serves one transport; it is not safe for concurrent use. Time
// is injected so that tests never sleep.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Options configures a Backoff. The zero value of each field means its default.
type Options struct {
	// Initial is the ceiling of the first delay. Default 1 s.
	Initial time.Duration
	// Max caps every delay. Default 60 s.
	Max time.Duration
	// StableAfter is how long a connection must hold for the next failure
	// to start again from Initial. Default 1 min.
	StableAfter time.Duration
	// Rand returns a number in [0, n); default math/rand/v2.Int64N.
	Rand func(n int64) int64
	// Now is the clock; default time.Now.
	Now func() time.Time
	// After is the timer; default time.After.
	After func(time.Duration) <-chan time.Time
}

// Backoff hands out delays for successive failed attempts.
type Backoff struct {
	o         Options
	attempt   int
	connected time.Time
}

// New returns a Backoff.
func New(o Options) *Backoff {
	if o.Initial <= 0 {
		o.Initial = time.Second
	}
	if o.Max <= 0 {
		o.Max = time.Minute
	}
	if o.Max < o.Initial {
		o.Max = o.Initial
	}
	if o.StableAfter <= 0 {
		o.StableAfter = time.Minute
	}
	if o.Rand == nil {
		o.Rand = rand.Int64N
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	return &Backoff{o: o}
}

// Connected records that an attempt succeeded. If the connection then holds
// for StableAfter, the next Failed starts from Initial again.
func (b *Backoff) Connected() { b.connected = b.o.Now() }

// Next returns the delay before the next attempt and counts the attempt:
// a random duration in [0, min(Max, Initial*2^attempt)] (full jitter).
func (b *Backoff) Next() time.Duration {
	if !b.connected.IsZero() {
		if b.o.Now().Sub(b.connected) >= b.o.StableAfter {
			b.attempt = 0
		}
		b.connected = time.Time{}
	}
	ceil := b.o.Max
	if b.attempt < 32 {
		if c := b.o.Initial << b.attempt; c > 0 && c < b.o.Max {
			ceil = c
		}
	}
	b.attempt++
	return time.Duration(b.o.Rand(int64(ceil) + 1))
}

// Attempt returns how many delays were handed out since the last reset.
func (b *Backoff) Attempt() int { return b.attempt }

// Wait sleeps for Next() or until ctx ends, whichever is first. It returns
// ctx.Err() when ctx ended.
func (b *Backoff) Wait(ctx context.Context) error {
	d := b.Next()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-b.o.After(d):
		return nil
	}
}
