package agent

import (
	"bytes"
	"math"
	"net/http"
	"runtime"
	"runtime/metrics"
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

// one writes a family of a single unlabelled sample.
func (e *expo) one(name, typ, help string, v float64) {
	e.family(name, typ, help)
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

	e.family("floorhub_info", "gauge", "The agent's version and gateway id; always 1.")
	e.sample("floorhub_info", 1, "version", a.opts.Version, "gateway_id", a.cfg.GatewayID)
	e.one("floorhub_uptime_seconds", "gauge", "Seconds since the agent started.", a.now().Sub(a.started).Seconds())
	e.one("floorhub_healthy", "gauge", "1 when /healthz answers 200, 0 when it answers 503.", b2f(len(judge(h)) == 0))

	st := h.Store
	e.one("floorhub_store_commits_total", "counter", "Store transactions committed since the agent started (one fsync each).", float64(st.Commits))
	e.one("floorhub_store_bytes", "gauge", "Bytes in use in the store's file.", float64(st.Bytes))
	e.one("floorhub_store_records", "gauge", "Records stored.", float64(st.Records))
	e.one("floorhub_store_evicted_records_total", "counter", "Records evicted by store.max_bytes or store.max_age since the file was created.", float64(st.Evicted))
	e.one("floorhub_store_last_seq", "gauge", "Highest seq assigned.", float64(st.LastSeq))
	e.one("floorhub_store_committed_seq", "gauge", "Highest seq durably committed.", float64(st.CommittedSeq))
	e.one("floorhub_store_pending_records", "gauge", "Records appended and waiting for their commit.", float64(st.Pending))
	e.one("floorhub_store_commit_failing", "gauge", "1 while the store's commits fail (disk full, I/O errors).", b2f(st.Failing))
	e.one("floorhub_store_last_commit_age_seconds", "gauge", "Seconds since the last commit (since the start if none).", h.SinceCommit.Seconds())
	if !st.OldestTS.IsZero() {
		e.one("floorhub_store_oldest_record_age_seconds", "gauge", "Age of the oldest stored record, by its timestamp.", max(a.now().Sub(st.OldestTS), 0).Seconds())
	}

	hs := a.hub.Stats()
	e.one("floorhub_hub_connections", "gauge", "Open hub connections (all WebSocket endpoints).", float64(hs.Open))
	e.one("floorhub_hub_connections_accepted_total", "counter", "Hub connections accepted.", float64(hs.Accepted))
	e.one("floorhub_hub_connections_refused_total", "counter", "Hub connections refused by a limit (origin, connections, new connections per minute).", float64(hs.Refused))
	e.one("floorhub_hub_messages_sent_total", "counter", "Messages delivered to hub clients.", float64(hs.Sent))
	e.one("floorhub_hub_messages_coalesced_total", "counter", "Messages dropped for a newer one of the same kind because their client fell behind.", float64(hs.Coalesced))
	e.one("floorhub_hub_slow_consumer_disconnects_total", "counter", "Clients disconnected because their send queue overflowed (close 1013; they resume with since).", float64(hs.Overflows))
	e.one("floorhub_hub_inbox_dropped_total", "counter", "Live events the hub dropped because it fell behind (clients resume from the store).", float64(hs.InboxDropped))

	e.family("floorhub_uplink_connected", "gauge", "1 while the uplink is connected.")
	for _, u := range h.Uplinks {
		e.sample("floorhub_uplink_connected", b2f(u.Connected), "uplink", u.Name)
	}
	e.family("floorhub_uplink_backlog_records", "gauge", "Records the uplink has not had acknowledged yet.")
	for _, u := range h.Uplinks {
		e.sample("floorhub_uplink_backlog_records", float64(u.Backlog), "uplink", u.Name)
	}
	e.family("floorhub_uplink_oldest_unsent_age_seconds", "gauge", "Age of the oldest record the uplink has not had acknowledged; 0 when none.")
	for _, u := range h.Uplinks {
		e.sample("floorhub_uplink_oldest_unsent_age_seconds", u.OldestUnsent.Seconds(), "uplink", u.Name)
	}
	e.family("floorhub_uplink_acked_seq", "gauge", "Highest seq acknowledged by the central side (the uplink's durable cursor).")
	for _, u := range h.Uplinks {
		e.sample("floorhub_uplink_acked_seq", float64(u.AckedSeq), "uplink", u.Name)
	}
	e.family("floorhub_uplink_down_seconds", "gauge", "Seconds the uplink has been disconnected; 0 while connected.")
	for _, u := range h.Uplinks {
		e.sample("floorhub_uplink_down_seconds", u.DownFor.Seconds(), "uplink", u.Name)
	}

	e.family("floorhub_device_status", "gauge", "1 for the device's current status (online, warning, offline), 0 for the others.")
	for _, d := range h.Devices {
		id := strconv.Itoa(d.ID)
		for _, s := range []string{store.StatusOnline, store.StatusWarning, store.StatusOffline} {
			e.sample("floorhub_device_status", b2f(d.Status == s), "device_id", id, "name", d.Name, "status", s)
		}
	}
	e.family("floorhub_device_last_reading_age_seconds", "gauge", "Seconds since the device's last good reading (devices that have read once).")
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

// runtimeMetrics are the Go runtime's figures /metrics exposes, from
// runtime/metrics.
var runtimeMetrics = []struct {
	name, typ, help, key string
}{
	{"go_goroutines", "gauge", "Goroutines that exist now.", "/sched/goroutines:goroutines"},
	{"go_gomaxprocs", "gauge", "GOMAXPROCS: threads running Go code at once.", "/sched/gomaxprocs:threads"},
	{"go_memory_total_bytes", "gauge", "Memory mapped by the Go runtime (its whole footprint).", "/memory/classes/total:bytes"},
	{"go_heap_objects_bytes", "gauge", "Heap memory occupied by live objects and dead ones not yet swept.", "/memory/classes/heap/objects:bytes"},
	{"go_heap_objects", "gauge", "Heap objects, live or not yet swept.", "/gc/heap/objects:objects"},
	{"go_heap_allocs_bytes_total", "counter", "Bytes allocated on the heap since the start.", "/gc/heap/allocs:bytes"},
	{"go_gc_heap_goal_bytes", "gauge", "Heap size the next GC cycle aims at.", "/gc/heap/goal:bytes"},
	{"go_gc_cycles_total", "counter", "GC cycles completed.", "/gc/cycles/total:gc-cycles"},
}

func writeRuntime(e *expo) {
	samples := make([]metrics.Sample, len(runtimeMetrics))
	for i, m := range runtimeMetrics {
		samples[i].Name = m.key
	}
	metrics.Read(samples)
	e.family("go_info", "gauge", "The Go version the agent was built with; always 1.")
	e.sample("go_info", 1, "version", runtime.Version())
	for i, m := range runtimeMetrics {
		var v float64
		switch samples[i].Value.Kind() {
		case metrics.KindUint64:
			v = float64(samples[i].Value.Uint64())
		case metrics.KindFloat64:
			v = samples[i].Value.Float64()
		default:
			continue // not in this Go version
		}
		e.one(m.name, m.typ, m.help, v)
	}
	var pauses float64
	samples = []metrics.Sample{{Name: "/sched/pauses/total/gc:seconds"}}
	metrics.Read(samples)
	if samples[0].Value.Kind() == metrics.KindFloat64Histogram {
		// The histogram's buckets are the runtime's; the sum is estimated
		// from their bounds, enough to see pauses grow.
		hist := samples[0].Value.Float64Histogram()
		for i, n := range hist.Counts {
			lo, hi := hist.Buckets[i], hist.Buckets[i+1]
			if math.IsInf(lo, -1) {
				lo = 0
			}
			if math.IsInf(hi, 1) {
				hi = lo
			}
			pauses += float64(n) * (lo + hi) / 2
		}
		e.one("go_gc_pauses_seconds_total", "counter", "Time the world was stopped for GC, estimated from the runtime's pause histogram.", pauses)
	}
}
