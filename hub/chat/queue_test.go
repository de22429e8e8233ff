package chat

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/store"
)

// fillChat writes n messages of text by user 1 into a new chat of users 1
// and 2, and returns the chat.
func fillChat(t *testing.T, st *store.Store, n int, text string) store.Chat {
	t.Helper()
	c, _, err := st.CreateChat([]int64{1, 2}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := st.Append(store.Record{Kind: store.KindChat, TS: time.Now(), ClockSynced: true,
			Chat: &store.ChatMessage{ChatID: c.ID, From: 1, FromName: "alice", To: 2, Text: text}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// A client that never polls and keeps asking for a chat's history (500
// messages of quotes, each escaped to 2 bytes: 2 MB per answer, sent
// twice with an ack) is closed once what waits for it passes the
// engine's bound, with the default options. It held 4 MB more for every
// event while the session lived (12 MB with control characters, which
// messages could have then: 746 MB after 60 events).
func TestHistoryToAClientThatDoesNotRead(t *testing.T) {
	s, st := newService(t, Options{})
	fillChat(t, st, 500, strings.Repeat(`"`, 2048))
	srv := serve(t, s)
	tok, err := auth.Mint(secret, "alice", time.Hour, auth.Claims{UserID: 1})
	if err != nil {
		t.Fatal(err)
	}
	p := connectToken(t, srv, tok)
	for i := range 8 { // within the default rate limit's burst
		if s.Online() == 0 {
			break
		}
		p.post(`42` + string(rune('0'+i)) + `["chat_messages",{"chat_id":1}]`)
	}
	testkit.Eventually(t, "the session closed", 10*time.Second, func() bool { return s.Online() == 0 })
}

// One chat_messages answer holds at most historyBytes of text, the
// newest messages: with a large max_message_bytes, 500 messages would
// be far more than a session may have waiting.
func TestHistoryBytes(t *testing.T) {
	const size, n = 50000, 30
	s, st := newService(t, Options{MaxMessageBytes: 65536})
	fillChat(t, st, n, strings.Repeat("m", size))
	_, body, err := s.chatMessages(&user{ident: auth.Identity{ID: 2, User: "bob"}}, payload(t, `{"chat_id":1}`))
	if err != nil {
		t.Fatal(err)
	}
	msgs := body.([]*Message)
	if len(msgs) != historyBytes/size || msgs[len(msgs)-1].ID != n {
		t.Fatalf("%d messages, the last %d; want the newest %d", len(msgs), msgs[len(msgs)-1].ID, historyBytes/size)
	}
}

// A message the store cannot hold (a record is at most 64 KiB) is a bad
// request, not "try again": trying again never stores it. The config
// allowed max_message_bytes up to 65536, which the store refused.
func TestMessageTooLargeToStore(t *testing.T) {
	s, st := newService(t, Options{MaxMessageBytes: 65536})
	fillChat(t, st, 0, "")
	_, _, err := s.createMessage(&user{ident: auth.Identity{ID: 1, User: "alice"}},
		map[string]any{"chat_id": "1", "receiver_id": "2", "message": strings.Repeat("m", 65536)})
	if !errors.Is(err, ErrBadRequest) {
		t.Fatalf("%v, want a bad request", err)
	}
	// The config's largest chat.max_message_bytes (agent) fits.
	if _, _, err := s.createMessage(&user{ident: auth.Identity{ID: 1, User: "alice"}},
		map[string]any{"chat_id": "1", "receiver_id": "2", "message": strings.Repeat("m", 63<<10)}); err != nil {
		t.Fatalf("63 KiB: %v", err)
	}
}

// A user's CONNECTs are rate limited (MaxConnsPerUser a second, as many
// at once), so that leaving and joining again does not start a fresh
// event bucket each time: a client sent "41", "40" and 20 more events,
// again and again in one session, past events_per_second without bound,
// and each CONNECT read the user's chats for updated_chat_list.
func TestConnectRate(t *testing.T) {
	var clock struct {
		sync.Mutex
		t time.Time
	}
	clock.t = time.Now()
	now := func() time.Time { clock.Lock(); defer clock.Unlock(); return clock.t }
	s, _ := newService(t, Options{MaxConnsPerUser: 2, Now: now})
	srv := serve(t, s)
	tok, err := auth.Mint(secret, "alice", time.Hour, auth.Claims{UserID: 1})
	if err != nil {
		t.Fatal(err)
	}
	p := connectToken(t, srv, tok)
	answer := func() string {
		var got string
		testkit.Eventually(t, "the CONNECT answer", 10*time.Second, func() bool {
			got += p.get()
			return strings.Contains(got, "40{") || strings.Contains(got, "44{")
		})
		return got
	}
	p.post("41")
	p.post("40")
	if got := answer(); !strings.Contains(got, `40{"sid":`) {
		t.Fatalf("second CONNECT: %q", got)
	}
	p.post("41")
	p.post("40")
	if got := answer(); !strings.Contains(got, `44{"message":"too many connections for user 1: at most 2 a second"}`) {
		t.Fatalf("third CONNECT within a second: %q", got)
	}
	clock.Lock()
	clock.t = clock.t.Add(time.Second)
	clock.Unlock()
	p.post("40")
	if got := answer(); !strings.Contains(got, `40{"sid":`) {
		t.Fatalf("a second later: %q", got)
	}
	// The bucket goes once full again: as a new one would start.
	clock.Lock()
	clock.t = clock.t.Add(time.Second)
	clock.Unlock()
	s.expire()
	s.mu.Lock()
	n := len(s.joins)
	s.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d buckets kept", n)
	}
}

// slowCommit is a store whose AppendChat gives up waiting for the commit
// once, as on a card that stalls past the chat's Timeout: the message is
// appended (and here committed), but the post is told it is not on disk.
type slowCommit struct {
	*store.Store
	once sync.Once
}

func (s *slowCommit) AppendChat(ctx context.Context, r store.Record) (store.Record, error) {
	r, err := s.Store.AppendChat(ctx, r)
	s.once.Do(func() {
		if err == nil {
			err = context.DeadlineExceeded
		}
	})
	return r, err
}

// A message whose commit the post stopped waiting for is not "try again"
// (it is in the store: sent again it would be there twice): the sender is
// told so, and the members get it once it is committed.
func TestMessageCommittedLate(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "db"), &store.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, _, err := st.CreateChat([]int64{1, 2}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Store: &slowCommit{Store: st}, Verifier: newVerifier(t, auth.VerifierOptions{}), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, s)
	tok, err := auth.Mint(secret, "bob", time.Hour, auth.Claims{UserID: 2})
	if err != nil {
		t.Fatal(err)
	}
	bob := connectToken(t, srv, tok)

	alice := &user{ident: auth.Identity{ID: 1, User: "alice"}}
	_, _, err = s.createMessage(alice, map[string]any{"chat_id": "1", "receiver_id": "2", "message": "valve 4 is open"})
	if !errors.Is(err, ErrPending) || !strings.Contains(err.Error(), "do not send it again") {
		t.Fatalf("createMessage: %v, want ErrPending", err)
	}
	var got string
	testkit.Eventually(t, "the message delivered to bob", 10*time.Second, func() bool {
		got += bob.get()
		return strings.Contains(got, "valve 4 is open")
	})
	if !strings.Contains(got, `"response_message"`) {
		t.Fatalf("bob got %q", got)
	}
	if msgs, err := st.ChatMessages(c.ID, 10); err != nil || len(msgs) != 1 {
		t.Fatalf("stored: %d messages, %v", len(msgs), err)
	}
}
