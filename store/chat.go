package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The floor chat (see doc.go, "Chat"): chats and their members, messages,
// and what each member has seen. A message is a KindChat record of the
// log, so that the uplinks forward it, and a copy under its chat, which
// only the chat caps evict.
var (
	bChats    = []byte("chats")      // chat ID -> chat
	bChatUser = []byte("chat_users") // user ID, chat ID -> nothing
	bChatMsgs = []byte("chat_msgs")  // chat ID, seq -> record
	bChatSeq  = []byte("chat_order") // seq -> chat ID: the oldest message first
	bChatSeen = []byte("chat_seen")  // chat ID, user ID -> seq seen

	mChatNext    = []byte("chat_next")    // 8 bytes: the last chat ID given
	mChats       = []byte("chats")        // 8 bytes: chats stored
	mChatCount   = []byte("chat_count")   // 8 bytes: messages stored under their chats
	mChatBytes   = []byte("chat_bytes")   // 8 bytes: their bytes (key, value, leaf overhead)
	mChatEvicted = []byte("chat_evicted") // 8 bytes: messages evicted by the chat caps
)

// Defaults of the chat caps (Options).
const (
	defaultChatMaxMessages = 20000
	defaultChatMaxBytes    = 8 << 20
	defaultChatMaxChats    = 1000
)

// ChatMessage is the payload of a KindChat record: one message posted
// into a chat.
type ChatMessage struct {
	ChatID uint64
	// From is the sender's numeric user ID (negative for central users,
	// see the chat_post command); FromName the sender's name.
	From     int64
	FromName string
	// To is the receiver the sender named (the seed's receiver_id); 0 when
	// the message is for every member.
	To   int64
	Text string
}

// Chat is a conversation between its members.
type Chat struct {
	ID      uint64
	Members []int64 // user IDs, ascending
	Created time.Time
}

// ChatSummary is a chat as one member sees it.
type ChatSummary struct {
	Chat
	// Unread counts the messages of others after the last one the member
	// marked seen.
	Unread int
	// Last is the newest message, if any.
	Last *Record
}

// chatCounts are the chat figures kept in meta.
type chatCounts struct {
	msgs, bytes int64
	evicted     uint64
}

func userChatKey(a int64, b uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(a))
	binary.BigEndian.PutUint64(k[8:], b)
	return k
}

func chatKey(chat, b uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, chat)
	binary.BigEndian.PutUint64(k[8:], b)
	return k
}

func encodeChat(c *Chat) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(encodeTime(c.Created)))
	b = binary.AppendUvarint(b, uint64(len(c.Members)))
	for _, m := range c.Members {
		b = binary.AppendVarint(b, m)
	}
	return b
}

func decodeChat(id uint64, v []byte) (Chat, error) {
	d := decoder{b: v}
	c := Chat{ID: id, Created: decodeTime(int64(d.u64()))}
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		c.Members = append(c.Members, d.varint())
	}
	if d.err != nil || len(d.b) != 0 {
		return Chat{}, fmt.Errorf("%w: chat %d", ErrCorrupt, id)
	}
	return c, nil
}

// getChat reads chat id in tx; found is false when it does not exist.
func getChat(tx *bolt.Tx, id uint64) (c Chat, found bool, err error) {
	v := tx.Bucket(bChats).Get(seqKey(id))
	if v == nil {
		return Chat{}, false, nil
	}
	c, err = decodeChat(id, v)
	return c, err == nil, err
}

// update runs fn in its own write transaction, committed (fsync) before
// it returns: the chat's own changes (a new chat, a seen mark), which are
// rare, human-paced and acknowledged to the user.
func (s *Store) update(fn func(tx *bolt.Tx) error) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	err := guard(func() error { return s.db.Update(fn) })
	if err == bolt.ErrDatabaseNotOpen {
		return ErrClosed
	}
	return err
}

// CreateChat returns the chat whose members are exactly members (at least
// two distinct users), creating it if there is none; created tells which.
// A new chat is durable when CreateChat returns. Past Options.ChatMaxChats
// chats it fails with ErrChatFull.
func (s *Store) CreateChat(members []int64, now time.Time) (c Chat, created bool, err error) {
	ms := slices.Clone(members)
	slices.Sort(ms)
	ms = slices.Compact(ms)
	if len(ms) < 2 {
		return Chat{}, false, fmt.Errorf("%w: a chat needs two different members", ErrInvalid)
	}
	if err := checkTime("created", now); err != nil {
		return Chat{}, false, err
	}
	// Looked up first without a write transaction: asking again for an
	// existing chat (each create_chat does) commits, and syncs, nothing.
	found := false
	if err := s.view(func(tx *bolt.Tx) (err error) { c, found, err = findChat(tx, ms); return err }); err != nil || found {
		return c, false, err
	}
	err = s.update(func(tx *bolt.Tx) (err error) {
		if c, found, err = findChat(tx, ms); err != nil || found {
			return err
		}
		mb := tx.Bucket(bMeta)
		n := metaU64(mb, mChats)
		if n >= uint64(s.o.ChatMaxChats) {
			return fmt.Errorf("%w: %d chats", ErrChatFull, n)
		}
		id := metaU64(mb, mChatNext) + 1
		c = Chat{ID: id, Members: ms, Created: now.UTC()}
		if err := tx.Bucket(bChats).Put(seqKey(id), encodeChat(&c)); err != nil {
			return err
		}
		for _, m := range ms {
			if err := tx.Bucket(bChatUser).Put(userChatKey(m, id), nil); err != nil {
				return err
			}
		}
		for _, kv := range [...]struct {
			k []byte
			v uint64
		}{{mChatNext, id}, {mChats, n + 1}} {
			if err := mb.Put(kv.k, seqKey(kv.v)); err != nil {
				return err
			}
		}
		created = true
		return nil
	})
	if err != nil {
		return Chat{}, false, err
	}
	if created {
		s.mu.Lock()
		s.chats++
		s.mu.Unlock()
	}
	return c, created, nil
}

// findChat looks for the chat whose members are exactly ms (sorted,
// distinct), among the chats of the first.
func findChat(tx *bolt.Tx, ms []int64) (Chat, bool, error) {
	cur := tx.Bucket(bChatUser).Cursor()
	prefix := seqKey(uint64(ms[0]))
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		c, ok, err := getChat(tx, u64(k[8:]))
		if err != nil {
			return Chat{}, false, err
		}
		if ok && slices.Equal(c.Members, ms) {
			return c, true, nil
		}
	}
	return Chat{}, false, nil
}

func metaU64(mb *bolt.Bucket, k []byte) uint64 {
	if v := mb.Get(k); len(v) == 8 {
		return u64(v)
	}
	return 0
}

// GetChat returns chat id, or an error wrapping ErrNotFound.
func (s *Store) GetChat(id uint64) (Chat, error) {
	var c Chat
	err := s.view(func(tx *bolt.Tx) error {
		var ok bool
		var err error
		c, ok, err = getChat(tx, id)
		if err == nil && !ok {
			err = fmt.Errorf("%w: chat %d", ErrNotFound, id)
		}
		return err
	})
	return c, err
}

// AppendChat appends a KindChat record like Append and waits until it is
// durable (committed): a chat message is acknowledged to its sender only
// then. The chat must exist and the sender must be a member, or a
// negative (central) user. It returns ctx's error if ctx ends first; the
// record is then still committed with the next commit.
func (s *Store) AppendChat(ctx context.Context, r Record) (Record, error) {
	if r.Kind != KindChat || r.Chat == nil {
		return r, fmt.Errorf("%w: AppendChat takes a chat record", ErrInvalid)
	}
	c, err := s.GetChat(r.Chat.ChatID)
	if err != nil {
		return r, err
	}
	if r.Chat.From >= 0 && !slices.Contains(c.Members, r.Chat.From) {
		return r, fmt.Errorf("%w: user %d is not a member of chat %d", ErrNotMember, r.Chat.From, c.ID)
	}
	r, err = s.Append(r)
	if err != nil {
		return r, err
	}
	// The chat record asked for a commit at once (as an event does);
	// Flush waits for it.
	return r, s.Flush(ctx)
}

// UserChats returns the chats user is a member of, newest message first
// (chats without messages last, newest chat first), with unread counts.
func (s *Store) UserChats(user int64) ([]ChatSummary, error) {
	var out []ChatSummary
	strs := s.dict.snapshot()
	err := s.view(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bChatUser).Cursor()
		prefix := seqKey(uint64(user))
		for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
			c, ok, err := getChat(tx, u64(k[8:]))
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			sum := ChatSummary{Chat: c}
			seen := uint64(0)
			if v := tx.Bucket(bChatSeen).Get(userChatKey(int64(c.ID), uint64(user))); len(v) == 8 {
				seen = u64(v)
			}
			mc := tx.Bucket(bChatMsgs).Cursor()
			cp := seqKey(c.ID)
			for k, v := mc.Seek(chatKey(c.ID, seen+1)); k != nil && bytes.HasPrefix(k, cp); k, v = mc.Next() {
				from, ok := chatSender(strs, v)
				if !ok {
					var r Record
					if r, ok = s.decodeOrSkip(strs, k[8:], v); ok {
						from = r.Chat.From
					}
				}
				if ok && from != user {
					sum.Unread++
				}
			}
			if k, v := lastWithPrefix(mc, cp); k != nil {
				if r, ok := s.decodeOrSkip(strs, k[8:], v); ok {
					sum.Last = &r
				}
			}
			out = append(out, sum)
		}
		return nil
	})
	// sort.Slice, not a generic sort: it is in the binary already.
	sort.Slice(out, func(i, j int) bool {
		li, lj := lastSeq(&out[i]), lastSeq(&out[j])
		if li != lj {
			return li > lj
		}
		return out[i].ID > out[j].ID
	})
	return out, err
}

func lastSeq(c *ChatSummary) uint64 {
	if c.Last == nil {
		return 0
	}
	return c.Last.Seq
}

// lastWithPrefix positions c on the last key with prefix (8 bytes).
func lastWithPrefix(c *bolt.Cursor, prefix []byte) ([]byte, []byte) {
	next := u64(prefix) + 1
	var k, v []byte
	if next == 0 {
		k, v = c.Last()
	} else if k, v = c.Seek(seqKey(next)); k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return nil, nil
	}
	return k, v
}

// ChatMessages returns the newest max committed messages of chat, oldest
// first.
func (s *Store) ChatMessages(chat uint64, max int) ([]Record, error) {
	if max <= 0 {
		return nil, fmt.Errorf("%w: ChatMessages max %d, want > 0", ErrInvalid, max)
	}
	var out []Record
	strs := s.dict.snapshot()
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bChatMsgs).Cursor()
		prefix := seqKey(chat)
		for k, v := lastWithPrefix(c, prefix); k != nil && bytes.HasPrefix(k, prefix) && len(out) < max; k, v = c.Prev() {
			if r, ok := s.decodeOrSkip(strs, k[8:], v); ok {
				out = append(out, r)
			}
		}
		return nil
	})
	slices.Reverse(out)
	return out, err
}

// MarkSeen records that user has seen chat's messages up to seq (its
// newest committed message when seq is 0); it never moves back. It is
// durable when it returns.
func (s *Store) MarkSeen(chat uint64, user int64, seq uint64) error {
	// Checked first without a write transaction: a mark that does not
	// move (a client's seen_message again) commits, and syncs, nothing.
	var to uint64
	if err := s.view(func(tx *bolt.Tx) (err error) { to, err = seenTo(tx, chat, user, seq); return err }); err != nil || to == 0 {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		to, err := seenTo(tx, chat, user, seq)
		if err != nil || to == 0 {
			return err
		}
		return tx.Bucket(bChatSeen).Put(userChatKey(int64(chat), uint64(user)), seqKey(to))
	})
}

// seenTo returns where MarkSeen(chat, user, seq) moves user's seen mark
// of chat, or 0 if it stays.
func seenTo(tx *bolt.Tx, chat uint64, user int64, seq uint64) (uint64, error) {
	c, ok, err := getChat(tx, chat)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("%w: chat %d", ErrNotFound, chat)
	}
	if !slices.Contains(c.Members, user) {
		return 0, fmt.Errorf("%w: user %d is not a member of chat %d", ErrNotMember, user, chat)
	}
	if seq == 0 {
		k, _ := lastWithPrefix(tx.Bucket(bChatMsgs).Cursor(), seqKey(chat))
		if k == nil {
			return 0, nil
		}
		seq = u64(k[8:])
	}
	if v := tx.Bucket(bChatSeen).Get(userChatKey(int64(chat), uint64(user))); len(v) == 8 && u64(v) >= seq {
		return 0, nil
	}
	return seq, nil
}

// putChatMessages stores the batch's chat messages under their chats and
// evicts the oldest ones beyond the chat caps, in the commit's
// transaction. cc is updated; the caller keeps it only if the transaction
// commits.
func (s *Store) putChatMessages(tx *bolt.Tx, batch []pending, cc *chatCounts) error {
	mb, ob := tx.Bucket(bChatMsgs), tx.Bucket(bChatSeq)
	any := false
	for i := range batch {
		p := &batch[i]
		if p.kind != KindChat {
			continue
		}
		any = true
		k := chatKey(p.chat, p.seq)
		if mb.Get(k) == nil { // a retried batch may have reached the disk
			cc.msgs++
			cc.bytes += int64(len(k) + len(p.enc) + leafOverhead)
		}
		if err := mb.Put(k, p.enc); err != nil {
			return err
		}
		if err := ob.Put(seqKey(p.seq), seqKey(p.chat)); err != nil {
			return err
		}
	}
	if !any {
		return nil
	}
	c := ob.Cursor()
	for k, v := c.First(); k != nil && (cc.msgs > int64(s.o.ChatMaxMessages) || cc.bytes > s.o.ChatMaxBytes); k, v = c.First() {
		mk := chatKey(u64(v), u64(k))
		if old := mb.Get(mk); old != nil {
			cc.msgs--
			cc.bytes -= int64(len(mk) + len(old) + leafOverhead)
			cc.evicted++
			if err := mb.Delete(mk); err != nil {
				return err
			}
		}
		if err := c.Delete(); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bMeta)
	for _, kv := range [...]struct {
		k []byte
		v uint64
	}{{mChatCount, uint64(cc.msgs)}, {mChatBytes, uint64(cc.bytes)}, {mChatEvicted, cc.evicted}} {
		if err := meta.Put(kv.k, seqKey(kv.v)); err != nil {
			return err
		}
	}
	return nil
}
