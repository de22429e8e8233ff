// Package store keeps floorhub's records durably in a bbolt file: the
// readings log with its sequence numbers, the delivery cursors of the
// uplinks, and the index of active alerts.
//
// # Durability
//
// Append assigns a seq and queues the record; it does not wait for the
// disk. A single writer goroutine commits queued records in one bbolt
// transaction (one fsync) per Options.CommitInterval (10 s by default), at
// once when an alert or a device status is appended, or as soon as
// Options.MaxBatch records are pending. A record is durable once the commit
// that holds it returns: Flush waits for that, and the channel from
// Committed is closed at every commit. Read, Backlog and ActiveAlerts see
// only committed records, so telemetry reaches the uplinks up to
// CommitInterval after it was read, and an event within milliseconds.
// SetCursor writes nothing of its own: the cursor rides the next commit
// (Flush and Close wait for it). NoSync is never used.
//
// What a crash loses: telemetry appended since the last commit (at most
// CommitInterval of it; never acknowledged, since the uplinks only send
// committed records; its seqs are announced as skipped, see below), and
// cursor moves since the last commit (those records are sent again, never
// lost). Nothing that a commit returned for.
//
// # Writes: the SD card
//
// The card wears by the bytes written, and a bbolt commit writes whole
// pages of 4 KiB (copy on write): the last leaf of the telemetry tree (and
// a new one when it fills; about 60 records fit in one), the branch pages
// above it, the root page holding the small buckets inline (meta, cursors,
// the alert index, the dictionary while they are under 1 KiB), the
// freelist, and the meta page: 5 to 7 pages, whatever the number of
// records in the batch, against a floor of one. Bytes per minute are
// therefore set by the commits per minute. Measured with cmd/diskwear
// (BENCHMARKS.md), at 10 readings a second: 1 s commits wrote 1.3 MB a
// minute, 10 s commits about 0.17 MB. The choices:
//
//   - CommitInterval 10 s: about a sixth of the pages of 1 s commits, for
//     up to 10 s of telemetry lost by a crash and 10 s of delay to the
//     uplinks. Live screens do not wait (the hub publishes at Append), a
//     hub resume commits at once (Flush; the hub forces at most one such
//     commit a second, whatever its clients do), and events commit at
//     once.
//   - Events at once: an alert or status change costs a commit of its own
//     (about 5 pages); alert rules' hysteresis and hold times bound how
//     often a flapping sensor does it.
//   - Cursors in the group commit: a separate transaction per cursor write
//     cost the root, freelist and meta pages every second per uplink
//     stream, more than the readings themselves.
//   - The seq ceiling is a key in meta (the root page, written anyway); the
//     sidecar hint file is rewritten once per 2^20 seqs, not per commit.
//   - A telemetry-only commit touches the telemetry bucket and meta; the
//     events bucket is touched only by batches with events.
//   - NoFreelistSync is not used: it saves the freelist page (one of 5 to
//     7), but then every Open rebuilds the freelist by walking every page
//     of the file, reading all of a 256 MiB file from the card at every
//     start (tens of seconds on a slow card), where the integrity check
//     reads a few hundred pages.
//   - Pages stay 4 KiB, the kernel's page: smaller bbolt pages would still
//     dirty whole 4 KiB pages of the page cache, larger ones write more per
//     commit.
//   - Linux may cache a file in large folios (ext4 on recent kernels, seen
//     on 6.18); a 4 KiB write then dirties, and counts in write_bytes as,
//     the whole folio. bbolt creates the file with one 16 KiB write, so
//     every commit's meta page counted 16 KiB. Open drops the file's clean
//     cached pages before bbolt maps it (and reopens a file it just
//     created), so that they come back one page at a time.
//   - The interval does not adapt to the uplink: the uplinks send only
//     committed records, so a connected uplink needs the commits, and
//     stretching them while offline would trade durability for bytes, a
//     choice left to store.commit_interval.
//
// # Sequence numbers
//
// One sequence per gateway, strictly increasing, never reused, not even
// after kill -9 or a power cut. Every commit persists a ceiling: the last
// assigned seq plus a reserve R = 8 x MaxBatch (32768 by default), and
// Append never assigns past the persisted ceiling (it waits for the next
// commit, which the writer starts at once). Open continues after
// max(last committed, ceiling). Numbers between the last committed seq and
// the ceiling of a run that died were perhaps handed out (the hub fans
// records out before they commit) but never stored: Open records that range
// durably and Skipped returns the last 100 such ranges, so that receivers
// can be told those numbers will never come. Close persists the ceiling as
// the last assigned seq, so a clean restart skips nothing.
//
// Alert IDs: a raising alert record appended with a zero Alert.ID gets its
// own seq as ID; the clearing record carries the same ID.
//
// A sidecar file "<path>.seq" holds a number at or above every ceiling ever
// committed (rewritten with fsync about once per million records). If the
// database is corrupt or missing, the new one continues after that number.
//
// # Eviction
//
// The data is capped by Options.MaxBytes (bytes really in use: the file's
// pages less its free pages) and optionally Options.MaxAge. When over the
// cap, the writer evicts in its own transaction, in bounded chunks (about
// 1 MiB, or twice the batch, per commit; down to a little under the cap so
// that not every commit evicts): the oldest telemetry first; alerts and device status only once no telemetry
// is left; never the raising record of an active alert. By age, records
// older than MaxAge go, oldest first (a record stamped before the clock was
// synced goes with the first synced expired record after it). Every
// eviction is counted durably (Stats.Evicted) and logged as a summary line
// at most once a minute. Delivery cursors do not hold records back: the cap
// is a hard limit, and a consumer whose records were evicted sees them
// missing from Read and counted in Stats.Evicted.
//
// # Open
//
// Open waits at most Options.OpenTimeout for the file lock (ErrTimeout),
// runs a bounded integrity check (file size against the pages in use, meta,
// the ends of each bucket, 64 probes through each tree, the dictionary,
// cursors, the alert index: about 2 ms on a full 256 MiB file, where bbolt's
// full tx.Check reads everything) and turns a panic or memory fault in
// bbolt into a corrupt verdict. A corrupt file is renamed to
// "<path>.corrupt-<unix time>", logged with slog.Error, and replaced. A
// file from a newer layout version is refused and left alone.
//
// # Failures at run time
//
// Every bbolt call runs with panics and memory faults turned into
// ErrCorrupt. Damage met at run time (a panic, a record that does not
// decode) is logged once and leaves "<path>.damaged": the next Open then
// decodes every record, and moves the file aside if one fails. Read skips
// (and logs) a record it cannot decode, so one bad record never wedges a
// consumer. A failed commit keeps its records queued and is retried every
// CommitInterval; meanwhile Flush returns the error, and Append returns it
// instead of blocking once the queue is full, so that a dead disk never
// stalls the sensors.
//
// # Chat
//
// The floor chat keeps chats, members, messages and seen marks here. A
// message is a KindChat record of the log (one seq, in the events bucket,
// so the uplinks forward it) and, in the same transaction, a copy under
// its chat. AppendChat commits at once, like an event, and returns only
// once the message is durable: the chat acknowledges it to the sender
// then. Creating a chat and a seen mark commit in their own small
// transaction before they return (human-paced, and acknowledged too).
// Telemetry pressure evicts at most the log's copy (as it evicts events):
// the chat's copies obey only their own caps, Options.ChatMaxMessages and
// ChatMaxBytes (oldest message first, counted in Stats.ChatEvicted), and
// chats are never evicted (Options.ChatMaxChats refuses new ones).
//
// # On-disk layout (layout version 2, in meta "layout"; Open raises a version 1 file, which lacks the chat)
//
//	telemetry      seq (8 bytes big-endian) -> record   telemetry records
//	events         seq (8 bytes big-endian) -> record   alerts and device status
//	active_alerts  alert ID (8 bytes) -> raising seq (8 bytes)
//	cursors        consumer name -> seq (8 bytes)
//	strings        id (4 bytes) -> string               the dictionary
//	chats          chat ID -> created (8 bytes), members (varints)
//	chat_users     user ID, chat ID (8 bytes each) -> nothing
//	chat_msgs      chat ID, seq (8 bytes each) -> record (kind chat)
//	chat_order     seq -> chat ID: the chat cap evicts from its start
//	chat_seen      chat ID, user ID -> seq seen
//	meta           layout (1 byte), last, ceiling, evicted, count_t, count_e,
//	               chat_next, chats, chat_count, chat_bytes, chat_evicted
//	               (8 bytes each), skipped (16 bytes per range)
//
// A record value starts with a format version byte (1), then the kind (1
// byte), TS (8 bytes, Unix ns, big-endian; math.MinInt64 for the zero
// time) and flags (1 byte: clock synced), so that eviction and Backlog read
// them without decoding; then varint device ID, boot ID, varint monotonic
// ns, and the kind's payload (metrics as name, float64 bits, unit; the
// alert's and the status's fields). A string is a uvarint x: if x is odd,
// x>>1 is an entry of the strings dictionary (boot IDs, metric names and
// units, rules, severities, states: the strings that repeat); if even, x>>1
// bytes follow inline (free text, long strings, or once the dictionary
// holds its 16384 entries). A dictionary entry is committed with the first
// record that uses it. A typical two-metric telemetry record takes 37
// bytes. A reader refuses a format version it does not know.
package store
