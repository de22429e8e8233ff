package agent

import (
	"bytes"
	"math"
	"net/http"
	"runtime"
	"strconv"
	"strings"

	"github.com/floorhub/floorhub/store"
)

// expo writes the Prometheus text exposition format (version 0.0.4): a
// family's HELP and TYPE lines, then its samples. Written here, not with a
// client library: a dozen lines against a dependency of a few hundred KB.
type expo struct{ b bytes.Buffer }

// family starts a metric family; typ is counter or gauge.
func (e *expo) family(name, typ, help string) {
	e.b.WriteString("# HELP " + name + " " + strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(help) + "\n")
	e.b.WriteString("# TYPE " + name + " " + typ + "\n")
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// sample writes one sample; labels are name, value pairs.
func (e *expo) sample(name string, v float64, labels ...string) {
	e.b.WriteString(name)
	if len(labels) > 0 {
		e.b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				e.b.WriteByte(',')
			}
			e.b.WriteString(labels[i] + `="` + labelEscaper.Replace(labels[i+1]) + `"`)
		}
		e.b.WriteByte('}')
	}
	e.b.WriteByte(' ')
	switch {
	case math.IsInf(v, 1):
		e.b.WriteString("+Inf")
	case math.IsInf(v, -1):
		e.b.WriteString("-Inf")
	case math.IsNaN(v):
		e.b.WriteString("NaN")
	default:
		e.b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	}
	e.b.WriteByte('\n')
}

// gauge and counter write a family of one unlabelled sample.
func (e *expo) gauge(name, help string, v float64) {
	e.family(name, "gauge", help)
	e.sample(name, v)
}

func (e *expo) counter(name, help string, v float64) {
	e.family(name, "counter", help)
	e.sample(name, v)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// serveMetrics answers GET /metrics in the Prometheus text format
// (docs/operations.md lists every metric).
func (a *Agent) serveMetrics(w http.ResponseWriter, r *http.Request) {
	h := a.measure()
	var e expo

	e.family("floorhub_info", "gauge", "Version and gateway id; always 1.")
	e.sample("floorhub_info", 1, "version", a.opts.Version, "gateway_id", a.cfg.GatewayID)
	e.gauge("floorhub_uptime_seconds", "Since the agent started.", a.now().Sub(a.started).Seconds())
	e.gauge("floorhub_healthy", "1 when /healthz answers 200.", b2f(len(judge(h)) == 0))

	st := h.Store
	e.counter("floorhub_store_commits_total", "Store commits (one fsync each) since start.", float64(st.Commits))
	e.gauge("floorhub_store_bytes", "Bytes in use in the store.", float64(st.Bytes))
	e.gauge("floorhub_store_records", "Records stored.", float64(st.Records))
	e.counter("floorhub_store_evicted_records_total", "Records evicted by the store's caps.", float64(st.Evicted))
	e.gauge("floorhub_store_last_seq", "Highest seq assigned.", float64(st.LastSeq))
	e.gauge("floorhub_store_committed_seq", "Highest seq durably committed.", float64(st.CommittedSeq))
	e.gauge("floorhub_store_pending_records", "Records waiting for their commit.", float64(st.Pending))
	e.gauge("floorhub_store_commit_failing", "1 while commits fail.", b2f(st.Failing))
	e.gauge("floorhub_store_last_commit_age_seconds", "Since the last commit.", h.SinceCommit.Seconds())
	if !st.OldestTS.IsZero() {
		e.gauge("floorhub_store_oldest_record_age_seconds", "Age of the oldest record stored.", max(a.now().Sub(st.OldestTS), 0).Seconds())
	}

	e.gauge("floorhub_chat_chats", "Floor chats stored.", float64(st.Chats))
	e.gauge("floorhub_chat_messages", "Chat messages stored (chat.max_messages caps them).", float64(st.ChatMessages))
	e.gauge("floorhub_chat_bytes", "Bytes of the chat messages stored (chat.max_bytes caps them).", float64(st.ChatBytes))
	e.counter("floorhub_chat_evicted_messages_total", "Chat messages evicted by the chat's caps.", float64(st.ChatEvicted))
	if a.chat != nil {
		e.gauge("floorhub_chat_users_online", "Chat users connected.", float64(a.chat.Online()))
	}

	hs := a.hub.Stats()
	e.gauge("floorhub_hub_connections", "Open hub connections.", float64(hs.Open))
	e.counter("floorhub_hub_connections_accepted_total", "Hub connections accepted.", float64(hs.Accepted))
	e.counter("floorhub_hub_connections_refused_total", "Hub connections refused by a limit.", float64(hs.Refused))
	e.counter("floorhub_hub_messages_sent_total", "Messages delivered to hub clients.", float64(hs.Sent))
	e.counter("floorhub_hub_messages_coalesced_total", "Messages replaced by newer ones for a slow client.", float64(hs.Coalesced))
	e.counter("floorhub_hub_slow_consumer_disconnects_total", "Clients closed for a full queue (1013).", float64(hs.Overflows))
	e.counter("floorhub_hub_inbox_dropped_total", "Live events the hub dropped.", float64(hs.InboxDropped))

	for i, f := range [...]struct{ name, help string }{
		{"floorhub_uplink_connected", "1 while connected."},
		{"floorhub_uplink_backlog_records", "Records not acknowledged yet."},
		{"floorhub_uplink_oldest_unsent_age_seconds", "Age of the oldest record not acknowledged."},
		{"floorhub_uplink_acked_seq", "The uplink's cursor: seq acknowledged."},
		{"floorhub_uplink_down_seconds", "Disconnected this long; 0 when connected."},
	} {
		e.family(f.name, "gauge", f.help)
		for _, u := range h.Uplinks {
			v := [...]float64{b2f(u.Connected), float64(u.Backlog), u.OldestUnsent.Seconds(), float64(u.AckedSeq), u.DownFor.Seconds()}
			e.sample(f.name, v[i], "uplink", u.Name)
		}
	}

	e.family("floorhub_device_status", "gauge", "1 for the device's status.")
	for _, d := range h.Devices {
		id := strconv.Itoa(d.ID)
		for _, s := range []string{store.StatusOnline, store.StatusWarning, store.StatusOffline} {
			e.sample("floorhub_device_status", b2f(d.Status == s), "device_id", id, "name", d.Name, "status", s)
		}
	}
	e.family("floorhub_device_last_reading_age_seconds", "gauge", "Since the device's last good reading.")
	for _, d := range h.Devices {
		if !d.LastSeen.IsZero() {
			e.sample("floorhub_device_last_reading_age_seconds", max(a.now().Sub(d.LastSeen), 0).Seconds(), "device_id", strconv.Itoa(d.ID), "name", d.Name)
		}
	}

	e.family("floorhub_alerts_active", "gauge", "Active alerts of each rule.")
	for _, r := range h.Alerts {
		e.sample("floorhub_alerts_active", float64(r.Active), "rule", r.Rule, "severity", r.Severity)
	}

	writeRuntime(&e)

	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(e.b.Bytes())
}

// writeRuntime writes the Go runtime's figures. runtime.ReadMemStats, not
// runtime/metrics: the latter links the runtime's whole metrics table,
// about 25 KB on arm64, which the 8 MiB limit cannot spare; these figures
// are the same ones. Its brief stop of the world is nothing at scrape
// intervals.
func writeRuntime(e *expo) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	e.family("go_info", "gauge", "Go version; always 1.")
	e.sample("go_info", 1, "version", runtime.Version())
	e.gauge("go_goroutines", "Goroutines.", float64(runtime.NumGoroutine()))
	e.gauge("go_gomaxprocs", "GOMAXPROCS.", float64(runtime.GOMAXPROCS(0)))
	e.gauge("go_memory_total_bytes", "Memory obtained from the OS.", float64(ms.Sys))
	e.gauge("go_heap_objects_bytes", "Heap bytes in objects.", float64(ms.HeapAlloc))
	e.gauge("go_heap_objects", "Heap objects.", float64(ms.HeapObjects))
	e.counter("go_heap_allocs_bytes_total", "Heap bytes allocated since start.", float64(ms.TotalAlloc))
	e.gauge("go_gc_heap_goal_bytes", "Heap goal of the next GC.", float64(ms.NextGC))
	e.counter("go_gc_cycles_total", "GC cycles completed.", float64(ms.NumGC))
	e.counter("go_gc_pauses_seconds_total", "Stop-the-world time for GC.", float64(ms.PauseTotalNs)/1e9)
}
