package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkIngest compares, in one run, the durable ingest paths:
//
//	store:            Append from 4 goroutines (sensors), group commit, then Flush
//	bbolt-batched:    the same encoded records, one bbolt Update per 4096
//	bbolt-per-record: one bbolt Update (one fsync) per record
//
// Each reports records/s. Goals: store >= 0.5 x bbolt-batched, and
// store >= 100 x bbolt-per-record. BenchmarkIngestRatio measures the
// ratios with the paths interleaved, which a shared machine needs.
func BenchmarkIngest(b *testing.B) {
	b.Run("store", func(b *testing.B) {
		b.ReportAllocs()
		d, commits := storeIngest(b, b.TempDir(), b.N, b.ResetTimer)
		b.ReportMetric(float64(b.N)/d.Seconds(), "records/s")
		b.ReportMetric(float64(commits), "commits")
	})
	b.Run("bbolt-batched", func(b *testing.B) {
		b.ReportAllocs()
		d := rawIngest(b, b.TempDir(), b.N, 4096, b.ResetTimer)
		b.ReportMetric(float64(b.N)/d.Seconds(), "records/s")
	})
	b.Run("bbolt-per-record", func(b *testing.B) {
		b.ReportAllocs()
		d := rawIngest(b, b.TempDir(), b.N, 1, b.ResetTimer)
		b.ReportMetric(float64(b.N)/d.Seconds(), "records/s")
	})
}

// BenchmarkIngestRatio runs the three paths in turn, b.N rounds of 200,000
// records (2,000 for the per-record path), and reports each rate and the
// two ratios the store must meet.
func BenchmarkIngestRatio(b *testing.B) {
	const n, nSlow = 200000, 2000
	var ds, db, dp time.Duration
	for i := 0; i < b.N; i++ {
		d, _ := storeIngest(b, b.TempDir(), n, func() {})
		ds += d
		db += rawIngest(b, b.TempDir(), n, 4096, func() {})
		dp += rawIngest(b, b.TempDir(), nSlow, 1, func() {})
	}
	rs := float64(b.N*n) / ds.Seconds()
	rb := float64(b.N*n) / db.Seconds()
	rp := float64(b.N*nSlow) / dp.Seconds()
	b.ReportMetric(rs, "store-rec/s")
	b.ReportMetric(rb, "batched-rec/s")
	b.ReportMetric(rp, "per-record-rec/s")
	b.ReportMetric(rs/rb, "store/batched")
	b.ReportMetric(rs/rp, "store/per-record")
}

// storeIngest appends n records from 4 goroutines and flushes; start is
// called once the store is open. It returns the time and the commits.
func storeIngest(b *testing.B, dir string, n int, start func()) (time.Duration, uint64) {
	s, err := Open(filepath.Join(dir, "db"), &Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const writers = 4
	start()
	t := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += writers {
				if _, err := s.Append(tele(i%16, float64(i))); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := s.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	return time.Since(t), s.Stats().Commits
}

// rawIngest writes n encoded records straight to bbolt, batch per Update.
func rawIngest(b *testing.B, dir string, n, batch int, start func()) time.Duration {
	db, err := bolt.Open(filepath.Join(dir, "db"), 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bTelemetry); return err }); err != nil {
		b.Fatal(err)
	}
	d := newDict()
	start()
	t := time.Now()
	for i := 0; i < n; i += batch {
		err := db.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket(bTelemetry)
			bk.FillPercent = 1.0
			for j := i; j < min(i+batch, n); j++ {
				r := tele(j%16, float64(j))
				// Encoding is part of the work the store does too.
				enc, err := d.encode(nil, &r)
				if err != nil {
					return err
				}
				if err := bk.Put(seqKey(uint64(j+1)), enc); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(t)
}

// BenchmarkRead measures Read of committed records in pages of 500.
func BenchmarkRead(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "db"), &Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const n = 100000
	for i := 0; i < n; i++ {
		s.Append(tele(i%16, float64(i)))
	}
	s.Flush(context.Background())
	end := s.Stats().CommittedSeq
	b.ReportAllocs()
	b.ResetTimer()
	var after uint64
	read := 0
	for i := 0; i < b.N; i++ {
		recs, err := s.Read(after, 500)
		if err != nil {
			b.Fatal(err)
		}
		if len(recs) == 0 {
			b.Fatalf("Read(%d, 500): no records", after)
		}
		read += len(recs)
		// Start over at the end, so that no Read finds nothing to read.
		if after = recs[len(recs)-1].Seq; after >= end {
			after = 0
		}
	}
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "records/s")
}

// bigStore builds, once per benchmark, a store filled to about its default
// 256 MiB cap with realistic records (a UUID boot ID, three metrics).
func bigStore(b *testing.B) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "db")
	s, err := Open(path, &Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	r := tele(3, 21.5)
	r.BootID = "0b5e7d4c-3f7a-4b8e-9c1d-2a6f8e4b7c90"
	r.Metrics = append(r.Metrics, Metric{Name: "pressure", Value: 1013.2, Unit: "hPa"})
	for i := 0; ; i++ {
		if _, err := s.Append(r); err != nil {
			b.Fatal(err)
		}
		if i%100000 == 99999 {
			s.Flush(context.Background())
			if s.Stats().Bytes >= 250<<20 {
				break
			}
		}
	}
	st := s.Stats()
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("built %d records, %d MiB in use", st.Records, st.Bytes>>20)
	return path
}

// BenchmarkOpenLarge measures Open (lock, bounded integrity check, meta)
// and Close of a full 256 MiB store, a cold Backlog(0) that counts every
// key, and for comparison bbolt's full tx.Check.
func BenchmarkOpenLarge(b *testing.B) {
	path := bigStore(b)
	b.Run("open-close", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			s, err := Open(path, &Options{Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			s.Close()
		}
	})
	b.Run("backlog-cold", func(b *testing.B) {
		s, err := Open(path, &Options{Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			s.bl.mu.Lock()
			s.bl.valid = false // forget the remembered answer: count every key
			s.bl.mu.Unlock()
			if _, _, err := s.Backlog(uint64(i % 2)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("backlog-warm", func(b *testing.B) {
		s, err := Open(path, &Options{Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		s.Backlog(0)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, _, err := s.Backlog(uint64(i % 100)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bbolt-full-check", func(b *testing.B) {
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			err := db.View(func(tx *bolt.Tx) error {
				for err := range tx.Check() {
					return err
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkIngestAtCap ingests into a store already at its 256 MiB cap, so
// every commit also evicts: records/s, the longest Flush of a 4096-record
// batch (a commit with its eviction), and the file size against the cap.
func BenchmarkIngestAtCap(b *testing.B) {
	path := bigStore(b)
	s, err := Open(path, &Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	r := tele(3, 21.5)
	b.ResetTimer()
	start := time.Now()
	var worst time.Duration
	for i := 0; i < b.N; i++ {
		if _, err := s.Append(r); err != nil {
			b.Fatal(err)
		}
		if i%4096 == 4095 || i == b.N-1 {
			t := time.Now()
			if err := s.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
			worst = max(worst, time.Since(t))
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
	b.ReportMetric(float64(worst.Milliseconds()), "worst-commit-ms")
	st := s.Stats()
	fi, _ := os.Stat(path)
	b.ReportMetric(float64(fi.Size())/float64(256<<20), "file/cap")
	b.ReportMetric(float64(st.Bytes)/float64(256<<20), "inuse/cap")
	b.ReportMetric(float64(st.Evicted), "evicted")
}

// BenchmarkUnread counts a user's unread messages: one chat with 20,000
// messages after their seen mark (the default chat cap), as get_chats and
// every chat connect do. "UserChats" is the store's call; "decode-each"
// the same count by decoding every message, as it was done before
// chatSender, measured in the same run for the ratio.
func BenchmarkUnread(b *testing.B) {
	s := openT(b, filepath.Join(b.TempDir(), "db"), &Options{CommitInterval: time.Hour, MaxBatch: 4096, Logger: quiet})
	c, _, err := s.CreateChat([]int64{1, 2}, t0)
	if err != nil {
		b.Fatal(err)
	}
	const n = 20000
	for i := range n {
		mustAppend(b, s, chatMsg(c.ID, 1, 2, strings.Repeat("m", 40+i%80)))
	}
	flush(b, s)
	b.Run("UserChats", func(b *testing.B) {
		for b.Loop() {
			sum, err := s.UserChats(2)
			if err != nil || len(sum) != 1 || sum[0].Unread != n {
				b.Fatalf("UserChats: %+v %v", sum, err)
			}
		}
	})
	b.Run("decode-each", func(b *testing.B) {
		strs := s.dict.snapshot()
		for b.Loop() {
			unread := 0
			err := s.view(func(tx *bolt.Tx) error {
				cp := seqKey(c.ID)
				mc := tx.Bucket(bChatMsgs).Cursor()
				for k, v := mc.Seek(chatKey(c.ID, 1)); k != nil && bytes.HasPrefix(k, cp); k, v = mc.Next() {
					if r, ok := s.decodeOrSkip(strs, k[8:], v); ok && r.Chat.From != 2 {
						unread++
					}
				}
				return nil
			})
			if err != nil || unread != n {
				b.Fatalf("decode-each: %d %v", unread, err)
			}
		}
	})
}
