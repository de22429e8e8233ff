package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func chatMsg(chat uint64, from, to int64, text string) Record {
	return Record{Kind: KindChat, TS: t0, ClockSynced: true,
		Chat: &ChatMessage{ChatID: chat, From: from, FromName: fmt.Sprintf("user%d", from), To: to, Text: text}}
}

func mustPost(t testing.TB, s *Store, r Record) Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := s.AppendChat(ctx, r)
	if err != nil {
		t.Fatalf("AppendChat: %v", err)
	}
	return r
}

// Chats, messages, unread counts and seen marks survive a clean restart
// and a kill -9 (abandon: no final commit); a posted message is durable
// when AppendChat returns, and is also a log record of kind chat.
func TestChatRoundTripAndRestart(t *testing.T) {
	for _, kill := range []bool{false, true} {
		t.Run(fmt.Sprintf("kill=%v", kill), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "db")
			s, err := Open(path, &Options{CommitInterval: time.Hour, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			c, created, err := s.CreateChat([]int64{2, 1}, t0)
			if err != nil || !created || c.ID != 1 || len(c.Members) != 2 || c.Members[0] != 1 {
				t.Fatalf("CreateChat: %+v %v %v", c, created, err)
			}
			if again, created, err := s.CreateChat([]int64{1, 2, 2}, t0); err != nil || created || again.ID != c.ID {
				t.Fatalf("CreateChat again: %+v %v %v", again, created, err)
			}
			mustAppend(t, s, tele(1, 1)) // telemetry waits for the hour's commit
			m1 := mustPost(t, s, chatMsg(c.ID, 1, 2, "hello"))
			m2 := mustPost(t, s, chatMsg(c.ID, 1, 2, "are you there?"))
			if err := s.MarkSeen(c.ID, 2, m1.Seq); err != nil {
				t.Fatal(err)
			}
			if kill {
				s.abandon()
			} else if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openT(t, path, &Options{Logger: quiet})
			msgs, err := s.ChatMessages(c.ID, 10)
			if err != nil || len(msgs) != 2 || msgs[0].Chat.Text != "hello" || msgs[1].Seq != m2.Seq || msgs[1].Chat.FromName != "user1" {
				t.Fatalf("ChatMessages: %+v %v", msgs, err)
			}
			log, err := s.Read(0, 10, KindChat)
			if err != nil || len(log) != 2 || log[0].Seq != m1.Seq || log[0].Kind.String() != "chat" {
				t.Fatalf("Read chat: %+v %v", log, err)
			}
			sum, err := s.UserChats(2)
			if err != nil || len(sum) != 1 || sum[0].Unread != 1 || sum[0].Last == nil || sum[0].Last.Seq != m2.Seq {
				t.Fatalf("UserChats(2): %+v %v", sum, err)
			}
			if sum, _ := s.UserChats(1); len(sum) != 1 || sum[0].Unread != 0 {
				t.Fatalf("UserChats(1): %+v", sum)
			}
			if err := s.MarkSeen(c.ID, 2, 0); err != nil {
				t.Fatal(err)
			}
			if sum, _ := s.UserChats(2); sum[0].Unread != 0 {
				t.Fatalf("after MarkSeen: %+v", sum)
			}
			st := s.Stats()
			if st.Chats != 1 || st.ChatMessages != 2 || st.ChatBytes <= 0 {
				t.Fatalf("Stats: %+v", st)
			}
		})
	}
}

func TestChatRefusals(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "db"), &Options{ChatMaxChats: 2})
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		members []int64
		want    error
	}{
		{"one member", []int64{1, 1}, ErrInvalid},
		{"first", []int64{1, 2}, nil},
		{"second", []int64{1, 3}, nil},
		{"full", []int64{1, 4}, ErrChatFull},
		{"existing while full", []int64{2, 1}, nil},
	} {
		if _, _, err := s.CreateChat(tc.members, t0); !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
			t.Errorf("%s: CreateChat(%v) = %v, want %v", tc.name, tc.members, err, tc.want)
		}
	}
	for _, tc := range []struct {
		name string
		r    Record
		want error
	}{
		{"no chat", chatMsg(9, 1, 2, "x"), ErrNotFound},
		{"not a member", chatMsg(1, 3, 2, "x"), ErrNotMember},
		{"empty text", chatMsg(1, 1, 2, ""), ErrInvalid},
		{"central user", chatMsg(1, -1, 0, "from the control room"), nil},
	} {
		if _, err := s.AppendChat(ctx, tc.r); !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
			t.Errorf("%s: AppendChat = %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := s.MarkSeen(1, 3, 0); !errors.Is(err, ErrNotMember) {
		t.Errorf("MarkSeen by a stranger: %v", err)
	}
}

// The chat caps evict the oldest messages, counted; telemetry past the
// store's byte cap evicts telemetry and the log's copies, never a message
// from its chat.
func TestChatCapAndTelemetryPressure(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "db"), &Options{MaxBytes: 256 << 10, MaxBatch: 512, CommitInterval: time.Hour, ChatMaxMessages: 50})
	c, _, err := s.CreateChat([]int64{1, 2}, t0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		mustPost(t, s, chatMsg(c.ID, 1, 2, fmt.Sprintf("message %d", i)))
	}
	st := s.Stats()
	if st.ChatMessages != 50 || st.ChatEvicted != 10 {
		t.Fatalf("after 60 messages with a cap of 50: %+v", st)
	}
	msgs, _ := s.ChatMessages(c.ID, 100)
	if len(msgs) != 50 || msgs[0].Chat.Text != "message 10" {
		t.Fatalf("kept %d, first %q", len(msgs), msgs[0].Chat.Text)
	}
	for i := range 40000 {
		mustAppend(t, s, tele(i%16, float64(i)))
	}
	flush(t, s)
	st = s.Stats()
	if st.Evicted == 0 {
		t.Fatalf("no telemetry evicted: %+v", st)
	}
	if msgs, _ := s.ChatMessages(c.ID, 100); len(msgs) != 50 || st.ChatMessages != 50 || st.ChatEvicted != 10 {
		t.Fatalf("telemetry pressure touched the chat: %d messages, %+v", len(msgs), st)
	}
}

// A message posted before the clock was synced is re-stamped in the log
// and under its chat alike.
func TestChatRestamp(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "db"), nil)
	c, _, err := s.CreateChat([]int64{1, 2}, t0)
	if err != nil {
		t.Fatal(err)
	}
	r := chatMsg(c.ID, 1, 2, "before sync")
	r.TS, r.ClockSynced, r.BootID, r.Mono = time.Unix(5, 0), false, "boot-1", int64(5*time.Second)
	mustPost(t, s, r)
	offset := t0.UnixNano()
	if n, err := s.Restamp(context.Background(), "boot-1", offset); err != nil || n != 1 {
		t.Fatalf("Restamp: %d %v", n, err)
	}
	want := time.Unix(0, offset+int64(5*time.Second)).UTC()
	log, _ := s.Read(0, 10, KindChat)
	msgs, _ := s.ChatMessages(c.ID, 10)
	if len(log) != 1 || len(msgs) != 1 || !log[0].TS.Equal(want) || !msgs[0].TS.Equal(want) || !msgs[0].Restamped {
		t.Fatalf("log %+v, chat %+v, want TS %v", log, msgs, want)
	}
}

// A file of layout 1 (before the chat: no chat buckets) opens with its
// records, is raised to layout 2, and takes chats.
func TestChatOpensLayout1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s := openT(t, path, nil)
	r := mustAppend(t, s, tele(1, 20))
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bChats, bChatUser, bChatMsgs, bChatSeq, bChatSeen} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bMeta).Put(mLayout, []byte{1})
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s = openT(t, path, nil)
	if got, _ := s.Read(0, 10); len(got) != 1 || got[0].Seq != r.Seq {
		t.Fatalf("records of the layout 1 file: %+v", got)
	}
	c, _, err := s.CreateChat([]int64{1, 2}, t0)
	if err != nil {
		t.Fatal(err)
	}
	mustPost(t, s, chatMsg(c.ID, 1, 2, "hello"))
	var v []byte
	s.view(func(tx *bolt.Tx) error { v = append(v, tx.Bucket(bMeta).Get(mLayout)...); return nil })
	if len(v) != 1 || v[0] != layoutVersion {
		t.Fatalf("layout %v, want %d", v, layoutVersion)
	}
}

// A seen mark that does not move and a chat that exists already commit
// nothing: seen_message and create_chat come from clients, up to the
// chat's events_per_second on each connection, and every commit is a
// write and a sync of the gateway's storage.
func TestChatNoOpWritesNothing(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "db"), &Options{CommitInterval: time.Hour, Logger: quiet})
	c, _, err := s.CreateChat([]int64{1, 2}, t0)
	if err != nil {
		t.Fatal(err)
	}
	m := mustPost(t, s, chatMsg(c.ID, 1, 2, "x"))
	if err := s.MarkSeen(c.ID, 2, 0); err != nil {
		t.Fatal(err)
	}
	writes := func() int64 { st := s.db.Stats(); return st.TxStats.GetWrite() }
	before := writes()
	for range 10 {
		if err := s.MarkSeen(c.ID, 2, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkSeen(c.ID, 2, m.Seq-1); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkSeen(c.ID, 3, 0); !errors.Is(err, ErrNotMember) {
			t.Fatalf("MarkSeen by a stranger: %v", err)
		}
		if again, created, err := s.CreateChat([]int64{2, 1}, t0); err != nil || created || again.ID != c.ID {
			t.Fatalf("CreateChat again: %+v %v %v", again, created, err)
		}
	}
	if n := writes() - before; n != 0 {
		t.Fatalf("%d writes for seen marks and chats that did not change", n)
	}
	if sum, _ := s.UserChats(2); sum[0].Unread != 0 {
		t.Fatalf("%+v", sum)
	}
}

// WaitCommitted returns once the record is committed, without asking for
// a commit itself; after Close it says so.
func TestWaitCommitted(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"), &Options{CommitInterval: time.Hour, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	r := mustAppend(t, s, tele(1, 1)) // telemetry waits for the hour's commit
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.WaitCommitted(cancelled, r.Seq); !errors.Is(err, context.Canceled) {
		t.Fatalf("before its commit: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.WaitCommitted(context.Background(), r.Seq) }()
	flush(t, s)
	if err := <-done; err != nil {
		t.Fatalf("after its commit: %v", err)
	}
	if err := s.WaitCommitted(cancelled, r.Seq); err != nil {
		t.Fatalf("committed already: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitCommitted(context.Background(), r.Seq+100); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}
