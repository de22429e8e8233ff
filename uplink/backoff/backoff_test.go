package backoff

import (
	"context"
	"testing"
	"time"
)

func maxRand(n int64) int64 { return n - 1 }

func TestGrowsToCapWithFullJitter(t *testing.T) {
	b := New(Options{Rand: maxRand})
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for i, w := range want {
		if got := b.Next(); got != w*time.Second {
			t.Fatalf("attempt %d: got %v, want %v", i, got, w*time.Second)
		}
	}
	zero := New(Options{Rand: func(int64) int64 { return 0 }})
	if d := zero.Next(); d != 0 {
		t.Fatalf("full jitter must allow 0, got %v", d)
	}
}

func TestNeverGivesUpAndNeverOverflows(t *testing.T) {
	b := New(Options{Rand: maxRand})
	for i := 0; i < 10000; i++ {
		if d := b.Next(); d < 0 || d > time.Minute {
			t.Fatalf("attempt %d: delay %v out of [0, 60s]", i, d)
		}
	}
}

func TestResetsAfterStableConnection(t *testing.T) {
	now := time.Unix(1000, 0)
	b := New(Options{Rand: maxRand, Now: func() time.Time { return now }})
	for i := 0; i < 5; i++ {
		b.Next()
	}
	b.Connected()
	now = now.Add(30 * time.Second) // dropped before a stable minute
	if d := b.Next(); d != 32*time.Second {
		t.Fatalf("short connection must not reset: got %v", d)
	}
	b.Connected()
	now = now.Add(61 * time.Second)
	if d := b.Next(); d != time.Second {
		t.Fatalf("stable connection must reset: got %v", d)
	}
}

func TestWaitStopsOnCancel(t *testing.T) {
	never := make(chan time.Time)
	b := New(Options{After: func(time.Duration) <-chan time.Time { return never }})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Wait(ctx); err != context.Canceled {
		t.Fatalf("Wait after cancel: %v", err)
	}
	fired := make(chan time.Time, 1)
	fired <- time.Time{}
	b = New(Options{After: func(time.Duration) <-chan time.Time { return fired }})
	if err := b.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}
