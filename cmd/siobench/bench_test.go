package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/hub/chat"
	"github.com/floorhub/floorhub/store"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

// chatServer serves the real floor chat on a real store, in process.
func chatServer(t *testing.T) *httptest.Server {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(filepath.Join(t.TempDir(), "db"), &store.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.VerifierOptions{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	s, err := chat.New(chat.Options{Store: st, Verifier: v, Logger: quiet, MaxConnsPerUser: 8, EventsPerSecond: 1000})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		ts.Close()
		st.Close()
	})
	return ts
}

func token(t *testing.T, user string, uid int64) string {
	t.Helper()
	tok, err := auth.Mint(secret, user, time.Hour, auth.Claims{UserID: uid})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// A tiny run against the in-process chat: every message reaches every
// client, and the figures are filled in.
func TestRunSmoke(t *testing.T) {
	ts := chatServer(t)
	r, err := Run(context.Background(), Config{
		URL: ts.URL, Clients: 5, Rate: 50, Warmup: 100 * time.Millisecond, Duration: 300 * time.Millisecond,
		Sender: 1, Receiver: 2, SenderToken: token(t, "alice", 1), ReceiverToken: token(t, "bob", 2),
		PID: os.Getpid(), Size: 64,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Posted == 0 || r.Delivered != int64(r.Posted)*5 || r.Exceptions != 0 {
		t.Errorf("posted %d, delivered %d (want 5 each), %d exceptions", r.Posted, r.Delivered, r.Exceptions)
	}
	if r.P50 <= 0 || r.P99 < r.P50 || r.Max < r.P99 {
		t.Errorf("latencies p50 %v p99 %v max %v", r.P50, r.P99, r.Max)
	}
	if r.RSSBefore <= 0 || r.RSSEnd <= 0 {
		t.Errorf("RSS before %d, end %d: /proc not read", r.RSSBefore, r.RSSEnd)
	}
}

// A client the server refuses makes Run fail with the connect_error.
func TestRunRefused(t *testing.T) {
	ts := chatServer(t)
	_, err := Run(context.Background(), Config{
		URL: ts.URL, Clients: 2, Rate: 10, Duration: 100 * time.Millisecond,
		Sender: 1, Receiver: 2, SenderToken: token(t, "alice", 1), ReceiverToken: token(t, "bob", 3), // not user 2
	})
	if !errors.Is(err, errRefused) {
		t.Fatalf("err = %v, want a connect_error", err)
	}
}

func TestText(t *testing.T) {
	now := time.Unix(1_700_000_000, 123456789)
	s := text(1, now, 64)
	if len(s) != 64 {
		t.Errorf("len %d, want 64", len(s))
	}
	p, at, ok := parseText(s)
	if !ok || p != 1 || !at.Equal(now) {
		t.Errorf("parseText(%q) = %d, %v, %v", s, p, at, ok)
	}
	for _, bad := range []string{"", "hello", "siobench x 1", "siobench 1 y"} {
		if _, _, ok := parseText(bad); ok {
			t.Errorf("parseText(%q) ok", bad)
		}
	}
}
