package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Restamp corrects the wall-clock time of the records of boot bootID that
// were taken before the clock was synced (ClockSynced false): their TS
// becomes time.Unix(0, offset+Mono), where offset is the wall clock minus
// the monotonic time, learned once the clock is synced. They keep
// ClockSynced false and get Restamped true, so a reader can tell. It first
// commits what is queued, so call it once every new record is stamped as
// synced; it returns how many records it changed.
//
// Records of one boot are contiguous at the end of the log, so Restamp
// walks back from the newest record and stops at another boot's.
func (s *Store) Restamp(ctx context.Context, bootID string, offset int64) (int, error) {
	if bootID == "" {
		return 0, fmt.Errorf("%w: Restamp without a boot id", ErrInvalid)
	}
	if err := s.Flush(ctx); err != nil {
		return 0, err
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return 0, ErrClosed
	}
	strs := s.dict.snapshot()
	n := 0
	err := guard(func() error {
		return s.db.Update(func(tx *bolt.Tx) error {
			n = 0
			for _, name := range [][]byte{bTelemetry, bEvents} {
				b := tx.Bucket(name)
				c := b.Cursor()
				type fix struct {
					k    []byte
					v    []byte
					chat uint64 // a chat message: its copy under the chat too
				}
				var fixes []fix
				for k, v := c.Last(); k != nil; k, v = c.Prev() {
					r, err := decode(strs, u64(k), v)
					if err != nil {
						continue // logged by readers; not ours to judge here
					}
					if r.BootID != bootID {
						break
					}
					if r.ClockSynced || r.Restamped {
						continue
					}
					nv := append([]byte(nil), v...)
					ts := time.Unix(0, offset+r.Mono)
					binary.BigEndian.PutUint64(nv[offTS:], uint64(encodeTime(ts)))
					nv[offFlags] |= flagRestamped
					f := fix{k: append([]byte(nil), k...), v: nv}
					if r.Chat != nil {
						f.chat = r.Chat.ChatID
					}
					fixes = append(fixes, f)
				}
				// Modifying a bucket while its cursor walks is not allowed.
				for _, f := range fixes {
					if err := b.Put(f.k, f.v); err != nil {
						return err
					}
					if ck := chatKey(f.chat, u64(f.k)); f.chat != 0 && tx.Bucket(bChatMsgs).Get(ck) != nil {
						if err := tx.Bucket(bChatMsgs).Put(ck, f.v); err != nil {
							return err
						}
					}
				}
				n += len(fixes)
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("store: restamp: %w", err)
	}
	return n, nil
}
