package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/floorhub/floorhub/store"
)

// What /healthz tolerates before it answers 503 (docs/operations.md).
const (
	// storeStallMin is the least time without a commit, while records
	// wait, that makes the store unhealthy; five commit intervals if
	// longer.
	storeStallMin = 10 * time.Second
	// uplinkDownLimit is how long an uplink may stay disconnected.
	uplinkDownLimit = 5 * time.Minute
	// uplinkBehindLimit is the age of the oldest record an uplink has not
	// had acknowledged yet, while connected, beyond which it is behind.
	uplinkBehindLimit = 15 * time.Minute
)

// healthState is what /healthz judges and /metrics exposes, measured at
// one instant.
type healthState struct {
	Store          store.Stats
	SinceCommit    time.Duration // since the last commit, or since the start if none
	CommitInterval time.Duration
	Uplinks        []uplinkState
	Devices        []deviceSnapshot
	Alerts         []ruleAlerts // active alerts per rule
}

// uplinkState is one uplink's part of a healthState.
type uplinkState struct {
	Name         string        `json:"name"`
	Connected    bool          `json:"connected"`
	DownFor      time.Duration `json:"-"`         // disconnected this long; 0 while connected
	Backlog      int           `json:"backlog"`   // records not acknowledged yet
	OldestUnsent time.Duration `json:"-"`         // age of the oldest of them; 0 when none
	AckedSeq     uint64        `json:"acked_seq"` // the lowest of its cursors
	LastAck      time.Time     `json:"-"`         // when AckedSeq last advanced; zero: not since start
	Missed       uint64        `json:"-"`         // records evicted ahead of its cursor
	// DownFor and OldestUnsent in seconds, for /healthz.
	DownSeconds   float64 `json:"down_seconds"`
	OldestSeconds float64 `json:"oldest_unsent_age_seconds"`
}

// judge lists why the gateway is unhealthy; none: healthy. A pure function
// of the state, so its rules are table-tested.
func judge(h *healthState) []string {
	var out []string
	stall := max(storeStallMin, 5*h.CommitInterval)
	if h.Store.Pending > 0 && (h.SinceCommit > stall || h.Store.Failing && h.SinceCommit > h.CommitInterval) {
		out = append(out, fmt.Sprintf("store: %d records wait for a commit and none succeeded for %v (is the disk full or failing?)",
			h.Store.Pending, h.SinceCommit.Round(time.Second)))
	}
	for _, u := range h.Uplinks {
		switch {
		case !u.Connected && u.DownFor > uplinkDownLimit:
			out = append(out, fmt.Sprintf("uplink %s: disconnected for %v; %d records wait", u.Name, u.DownFor.Round(time.Second), u.Backlog))
		case u.Connected && u.Backlog > 0 && u.OldestUnsent > uplinkBehindLimit:
			out = append(out, fmt.Sprintf("uplink %s: behind: %d records unacknowledged, the oldest %v old", u.Name, u.Backlog, u.OldestUnsent.Round(time.Second)))
		}
	}
	for _, d := range h.Devices {
		// A device not read yet is starting; one that never reads turns
		// offline after its offline_after.
		if d.Status == store.StatusOffline && !d.Unread {
			out = append(out, fmt.Sprintf("device %d (%s): offline: %s", d.ID, d.Name, d.Reason))
		}
	}
	return out
}

// measure takes the healthState now.
func (a *Agent) measure() *healthState {
	now := a.now()
	h := &healthState{Store: a.store.Stats(), Devices: a.snapshot(), CommitInterval: a.cfg.Store.CommitInterval}
	if h.CommitInterval == 0 {
		h.CommitInterval = store.DefaultCommitInterval
	}
	since := a.started
	if ns := a.lastCommit.Load(); ns != 0 {
		since = time.Unix(0, ns)
	}
	h.SinceCommit = max(now.Sub(since), 0)
	h.Uplinks = a.uplinkStates(now, h.Store.FirstSeq)
	a.mu.Lock()
	h.Alerts = a.rules.active()
	a.mu.Unlock()
	return h
}

// uplinkStates measures each uplink now; first is the store's oldest
// stored seq (Stats.FirstSeq).
func (a *Agent) uplinkStates(now time.Time, first uint64) []uplinkState {
	a.upMu.Lock()
	ups := append([]*uplinkRun(nil), a.uplinks...)
	a.upMu.Unlock()
	out := make([]uplinkState, 0, len(ups))
	for _, u := range ups {
		us := uplinkState{Name: u.name, Connected: u.connected()}
		if !us.Connected {
			if ds := u.downSince.Load(); ds != 0 {
				us.DownFor = max(now.Sub(time.Unix(0, ds)), 0)
			}
		}
		if la := u.lastAck.Load(); la != 0 {
			us.LastAck = time.Unix(0, la).UTC()
		}
		if low, ok := a.lowCursor(u); ok {
			us.AckedSeq = low
			if first > low+1 {
				us.Missed = first - low - 1
			}
			if n, oldest, err := a.store.Backlog(low); err == nil {
				us.Backlog = n
				if n > 0 && !oldest.IsZero() {
					us.OldestUnsent = max(now.Sub(oldest), 0)
				}
			}
		}
		out = append(out, us)
	}
	return out
}

// lowCursor is the lowest of u's cursors: what it has had acknowledged.
func (a *Agent) lowCursor(u *uplinkRun) (uint64, bool) {
	low := ^uint64(0)
	for _, c := range u.cursors {
		if v, err := a.store.Cursor(c); err == nil {
			low = min(low, v)
		}
	}
	return low, low != ^uint64(0)
}

// trackUplinks notes when each uplink went down and when its cursor last
// advanced; the housekeeping loop calls it every second.
func (a *Agent) trackUplinks() {
	now := a.now().UnixNano()
	a.upMu.Lock()
	ups := append([]*uplinkRun(nil), a.uplinks...)
	a.upMu.Unlock()
	for _, u := range ups {
		if u.connected() {
			u.downSince.Store(0)
		} else {
			u.downSince.CompareAndSwap(0, now)
		}
		// The first look only learns the cursor: an ack is an advance.
		if low, ok := a.lowCursor(u); ok {
			if prev := u.acked.Swap(low + 1); prev != 0 && low+1 > prev {
				u.lastAck.Store(now)
			}
		}
	}
}

// serveHealth answers GET /healthz: 200 when healthy, 503 with the reasons
// when not, and the figures behind the verdict either way. (Maps, not
// tagged structs: the type descriptors would cost more of the 8 MiB.)
func (a *Agent) serveHealth(w http.ResponseWriter, r *http.Request) {
	h := a.measure()
	reasons := judge(h)
	status := "ok"
	if len(reasons) > 0 {
		status = "unhealthy"
	} else {
		reasons = []string{}
	}
	uplinks := make([]map[string]any, 0, len(h.Uplinks))
	for _, u := range h.Uplinks {
		uplinks = append(uplinks, map[string]any{"name": u.Name, "connected": u.Connected, "down_seconds": u.DownFor.Seconds(),
			"backlog": u.Backlog, "oldest_unsent_age_seconds": u.OldestUnsent.Seconds(), "acked_seq": u.AckedSeq})
	}
	devices := make([]map[string]any, 0, len(h.Devices))
	for _, d := range h.Devices {
		devices = append(devices, map[string]any{"device_id": d.ID, "name": d.Name, "status": d.Status, "reason": d.Reason})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if status != "ok" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"ok": status == "ok", "status": status, "reasons": reasons, "gateway_id": a.cfg.GatewayID, "version": a.opts.Version,
		"uptime_seconds": a.now().Sub(a.started).Seconds(),
		"store": map[string]any{"last_seq": h.Store.LastSeq, "committed_seq": h.Store.CommittedSeq, "pending": h.Store.Pending,
			"failing": h.Store.Failing, "last_commit_age_seconds": h.SinceCommit.Seconds()},
		"uplinks": uplinks, "devices": devices,
	})
}
