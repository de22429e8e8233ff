package hub

import (
	"maps"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/floorhub/floorhub/store"
)

// agentState is a StateSource with what the agent keeps: device names and
// the active alerts, updated before each record is published.
type agentState struct {
	mu     sync.Mutex
	devs   []DeviceState
	active map[uint64]store.Record
}

func (s *agentState) Devices() []DeviceState { return s.devs }
func (s *agentState) System() System         { return System{} }

func (s *agentState) Device(id int) (DeviceInfo, bool) {
	for _, d := range s.devs {
		if d.DeviceID == id {
			return d.DeviceInfo, true
		}
	}
	return DeviceInfo{}, false
}

func (s *agentState) ActiveAlerts() []store.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Collect(maps.Values(s.active))
	slices.SortFunc(out, func(a, b store.Record) int { return int(a.Seq) - int(b.Seq) })
	return out
}

// publish does what the agent does with an alert record: the state first,
// then the hub.
func (s *agentState) publish(h *Hub, r store.Record) {
	s.mu.Lock()
	if s.active == nil {
		s.active = map[uint64]store.Record{}
	}
	if r.Alert.State == store.AlertActive {
		s.active[r.Alert.ID] = r
	} else {
		delete(s.active, r.Alert.ID)
	}
	s.mu.Unlock()
	h.Publish(r)
}

func clearing(seq uint64, dev int, id uint64) store.Record {
	r := alert(seq, dev, "critical", "temp_high")
	r.Alert.ID, r.Alert.State = id, store.AlertCleared
	return r
}

var oven = DeviceInfo{Name: "oven probe", Driver: "sim-hot", Units: map[string]string{"temperature": "°C"}}

// Device status updates, initial and live, carry the device's name, driver
// and units.
func TestDeviceNames(t *testing.T) {
	st := &agentState{devs: []DeviceState{{DeviceID: 2, DeviceInfo: oven, Status: "online"}, {DeviceID: 3, Status: "offline"}}}
	th := newTestHub(t, func(o *Options) { o.State = st })
	c := th.login(t, "/ws", "alice")
	c.send(map[string]any{"type": "subscribe", "channel": "devices"})
	c.readType("subscribed")
	check := func(m map[string]any) {
		t.Helper()
		u, _ := m["units"].(map[string]any)
		if m["name"] != "oven probe" || m["driver"] != "sim-hot" || len(u) != 1 || u["temperature"] != "°C" {
			t.Fatalf("device 2: %v", m)
		}
	}
	m := c.readType("device_status_update")
	check(m)
	if m["initial"] != true {
		t.Fatalf("snapshot: %v", m)
	}
	// A device the agent has no name for: no name field at all.
	if m := c.readType("device_status_update"); m["device_id"] != 3.0 || m["name"] != nil || m["units"] != nil {
		t.Fatalf("device 3: %v", m)
	}
	th.Publish(status(1, 2, "online", "offline"))
	m = c.readType("device_status_update")
	check(m)
	if seqOf(m) != 1 || m["new_status"] != "offline" {
		t.Fatalf("change: %v", m)
	}
}

// A replayed device status record carries the name too.
func TestDeviceNamesReplayed(t *testing.T) {
	s := openStore(t)
	st := &agentState{devs: []DeviceState{{DeviceID: 2, DeviceInfo: oven, Status: "online"}}}
	th := newTestHub(t, func(o *Options) { o.State = st; o.Replay = s })
	seq := appendPublish(t, s, th.Hub, status(0, 2, "online", "offline"))
	c := th.login(t, "/ws", "alice")
	c.send(map[string]any{"type": "subscribe", "channel": "devices", "since": 0})
	c.readType("subscribed")
	c.readType("device_status_update") // initial
	m := c.readType("device_status_update")
	if seqOf(m) != seq || m["name"] != "oven probe" {
		t.Fatalf("replayed: %v", m)
	}
}

// A new alerts subscriber first gets the active alerts its filters match,
// marked initial and without seq, then live alerts.
func TestAlertSnapshot(t *testing.T) {
	st := &agentState{}
	th := newTestHub(t, func(o *Options) { o.State = st })
	st.publish(th.Hub, alert(1, 1, "critical", "temp_high"))
	st.publish(th.Hub, alert(2, 2, "warning", "temp_high"))
	st.publish(th.Hub, alert(3, 1, "critical", "humidity_high"))
	st.publish(th.Hub, clearing(4, 1, 3))
	eventually(t, "the fan-out of seq 4", func() bool { return th.lastSeq.Load() == 4 })

	c := th.login(t, "/ws", "alice")
	c.send(map[string]any{"type": "subscribe", "channel": "alerts"})
	c.readType("subscribed")
	for _, id := range []float64{1, 2} {
		m := c.readType("alert")
		if m["alert_id"] != id || m["initial"] != true || m["state"] != "active" || m["seq"] != nil || m["timestamp"] == "" {
			t.Fatalf("snapshot: %v, want alert %v", m, id)
		}
	}
	st.publish(th.Hub, alert(5, 2, "critical", "temp_high"))
	if m := c.readType("alert"); seqOf(m) != 5 || m["initial"] != nil {
		t.Fatalf("live: %v", m)
	}

	// Filters apply to the snapshot.
	c = th.login(t, "/ws", "bob")
	c.send(map[string]any{"type": "subscribe", "channel": "alerts", "filters": map[string]any{"severity": "critical", "device_id": 2}})
	c.readType("subscribed")
	if m := c.readType("alert"); m["alert_id"] != 5.0 || m["initial"] != true {
		t.Fatalf("filtered snapshot: %v", m)
	}
	c.send(map[string]any{"type": "ping"})
	c.readType("pong") // nothing else
	// And on the channel endpoint.
	c = th.dial(t, "/ws/alerts?severity=warning&token="+token(t, "carol"), nil)
	c.readType("auth_response")
	c.readType("subscribed")
	if m := c.readType("alert"); m["alert_id"] != 2.0 || m["initial"] != true {
		t.Fatalf("endpoint snapshot: %v", m)
	}
}

// racingAlerts returns its alerts and runs during (once) before returning,
// as if the alert were cleared just after the state was read.
type racingAlerts struct {
	agentState
	during func()
	once   sync.Once
}

func (s *racingAlerts) ActiveAlerts() []store.Record {
	out := s.agentState.ActiveAlerts()
	s.once.Do(s.during)
	return out
}

// A clear that races the snapshot is not lost: it follows the snapshot.
func TestAlertSnapshotRace(t *testing.T) {
	var th *testHub
	st := &racingAlerts{}
	th = newTestHub(t, func(o *Options) { o.State = st })
	st.publish(th.Hub, alert(1, 1, "critical", "temp_high"))
	eventually(t, "the fan-out of seq 1", func() bool { return th.lastSeq.Load() == 1 })
	st.during = func() {
		st.publish(th.Hub, clearing(2, 1, 1))
		eventually(t, "the fan-out of seq 2 to start", func() bool { return th.lastSeq.Load() == 2 })
	}
	c := th.login(t, "/ws", "alice")
	c.send(map[string]any{"type": "subscribe", "channel": "alerts"})
	c.readType("subscribed")
	if m := c.readType("alert"); m["initial"] != true || m["alert_id"] != 1.0 || m["state"] != "active" {
		t.Fatalf("snapshot: %v", m)
	}
	if m := c.readType("alert"); m["state"] != "cleared" || seqOf(m) != 2 {
		t.Fatalf("after the snapshot: %v, want the clear", m)
	}
}

// Clients that subscribe while alerts are raised and cleared end with
// exactly the active alerts: snapshot plus live changes lose nothing,
// whatever the interleaving. The subscribes are spread over the run.
func TestAlertSnapshotUnderLoad(t *testing.T) {
	st := &agentState{}
	th := newTestHub(t, limitless, func(o *Options) { o.State = st; o.Conn.QueueLen = 4096 })
	const total, clients = 3000, 8
	cs := make([]*tclient, clients)
	for i := range cs {
		cs[i] = th.login(t, "/ws", "alice")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var open []uint64
		for seq := uint64(1); seq <= total; seq++ {
			if len(open) > 5 || (len(open) > 0 && seq%3 == 0) {
				id := open[int(seq)%len(open)]
				open = slices.DeleteFunc(open, func(x uint64) bool { return x == id })
				st.publish(th.Hub, clearing(seq, 1, id))
			} else {
				open = append(open, seq)
				st.publish(th.Hub, alert(seq, 1, "critical", "temp_high"))
			}
			runtime.Gosched()
		}
	}()
	for i, c := range cs {
		eventually(t, "the fan-out to reach the next subscribe", func() bool { return th.lastSeq.Load() >= uint64(i*total/clients) })
		c.send(map[string]any{"type": "subscribe", "channel": "alerts"})
	}
	for _, c := range cs {
		c.readType("subscribed") // then the end marker reaches it live
	}
	<-done
	const last = total + 1
	st.publish(th.Hub, alert(last, 1, "critical", "temp_high")) // the end marker
	for i, c := range cs {
		seen := map[uint64]bool{}
		for {
			m := c.readType("alert")
			id := uint64(m["alert_id"].(float64))
			if m["state"] == "active" {
				seen[id] = true
			} else {
				delete(seen, id)
			}
			if seqOf(m) == last {
				break
			}
		}
		want := map[uint64]bool{}
		for _, r := range st.ActiveAlerts() {
			want[r.Alert.ID] = true
		}
		if !maps.Equal(seen, want) {
			t.Fatalf("client %d ends with active alerts %v, want %v", i, slices.Sorted(maps.Keys(seen)), slices.Sorted(maps.Keys(want)))
		}
	}
}

// system_status_update carries each uplink's health beside the metrics,
// whatever the metrics filter.
func TestSystemUplinks(t *testing.T) {
	th := newTestHub(t)
	c := th.login(t, "/ws", "alice")
	c.send(map[string]any{"type": "subscribe", "channel": "system", "filters": map[string]any{"metrics": []string{"backlog"}}})
	c.readType("subscribed")
	th.PublishSystem(System{Backlog: 7, Timestamp: t0, Uplinks: []UplinkStatus{
		{Name: "mqtt", Connected: true, LastAck: t0.Add(-time.Second), AckedSeq: 40, Backlog: 7, OldestUnsentAge: 1.5, Evictions: 3},
		{Name: "websocket", Backlog: 12, OldestUnsentAge: 600, Evictions: 3, Missed: 2},
	}})
	m := c.readType("system_status_update")
	if met := m["metrics"].(map[string]any); len(met) != 1 || met["backlog"] != 7.0 {
		t.Fatalf("metrics: %v", m)
	}
	ups, _ := m["uplinks"].([]any)
	if len(ups) != 2 {
		t.Fatalf("uplinks: %v", m)
	}
	want := []map[string]any{
		{"name": "mqtt", "connected": true, "last_ack": "2026-01-02T03:04:04Z", "acked_seq": 40.0, "backlog": 7.0,
			"oldest_unsent_age_seconds": 1.5, "evictions": 3.0, "missed": 0.0},
		{"name": "websocket", "connected": false, "last_ack": nil, "acked_seq": 0.0, "backlog": 12.0,
			"oldest_unsent_age_seconds": 600.0, "evictions": 3.0, "missed": 2.0},
	}
	for i, u := range ups {
		if !maps.Equal(u.(map[string]any), want[i]) {
			t.Fatalf("uplink %d: %v, want %v", i, u, want[i])
		}
	}
	// Without uplinks (a hub that is told none): no uplinks field. The
	// status above may come twice: the subscription's snapshot is read after
	// "subscribed" went out, so it can hold the status published meanwhile,
	// which the fan-out then delivers too. Read on to the new one.
	th.PublishSystem(System{Backlog: 8, Timestamp: t0})
	for {
		m := c.readType("system_status_update")
		if m["metrics"].(map[string]any)["backlog"] != 8.0 {
			continue
		}
		if m["uplinks"] != nil {
			t.Fatalf("no uplinks: %v", m)
		}
		break
	}
}
