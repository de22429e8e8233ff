package hub

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/floorhub/floorhub/hub/wsconn"
	"github.com/floorhub/floorhub/store"
)

// Timestamps on the wire: RFC 3339 in UTC, with the sub-second digits
// that are not zero.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// number is a float that encodes NaN and ±Inf (which JSON lacks) as null.
type number float64

func (n number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(f)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Every value encoded here is built from plain fields; an error
		// is a programming mistake, reported to the client as one.
		b, _ = json.Marshal(errorMsg{Type: "error", Error: codeInternalError, Message: "hub: encoding failed: " + err.Error()})
	}
	return b
}

type errorMsg struct {
	Type    string `json:"type"`
	Error   string `json:"error"`
	Message string `json:"message"`
	Request string `json:"request,omitempty"`
}

type authResponse struct {
	Type    string `json:"type"`
	Success bool   `json:"success"`
	Message string `json:"message"`
	Error   string `json:"error,omitempty"`
	User    string `json:"user,omitempty"`
	Role    string `json:"role,omitempty"`
}

// commandResult answers a command that ran.
type commandResult struct {
	Type      string          `json:"type"` // command_result
	Command   string          `json:"command"`
	RequestID json.RawMessage `json:"request_id,omitempty"`
	Result    any             `json:"result"`
}

type pongMsg struct {
	Type       string          `json:"type"`
	Timestamp  json.RawMessage `json:"timestamp,omitempty"`
	ServerTime string          `json:"server_time"`
}

type filterJSON struct {
	DeviceID    []int    `json:"device_id,omitempty"`
	Metrics     []string `json:"metrics,omitempty"`
	Severity    []string `json:"severity,omitempty"`
	AlertType   []string `json:"alert_type,omitempty"`
	StatusTypes []string `json:"status_types,omitempty"`
	Frequency   string   `json:"frequency,omitempty"` // telemetry and system only
}

type subscribedMsg struct {
	Type    string     `json:"type"`
	Channel string     `json:"channel"`
	Filters filterJSON `json:"filters"`
	Since   *uint64    `json:"since,omitempty"`
}

type unsubscribedMsg struct {
	Type     string `json:"type"`
	Channel  string `json:"channel"`
	DeviceID []int  `json:"device_id,omitempty"`
}

func (f filter) json(ch channel) filterJSON {
	out := filterJSON{DeviceID: f.devices, Metrics: f.metrics, Severity: f.severities,
		AlertType: f.alertTypes, StatusTypes: f.statuses, Frequency: "real-time"}
	if f.period > 0 {
		out.Frequency = f.period.String()
	}
	if ch != chTelemetry && ch != chSystem {
		out.Frequency = ""
	}
	return out
}

// metricValue is one entry of telemetry_update's "telemetry" object.
type metricValue struct {
	Value     number `json:"value"`
	Unit      string `json:"unit"`
	Timestamp string `json:"timestamp"`
}

// metricSet keeps the metrics of a telemetry_update in the order the
// sensor returned them.
type metricSet []namedMetric

type namedMetric struct {
	name string
	v    metricValue
}

func (m metricSet) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, e := range m {
		if i > 0 {
			b = append(b, ',')
		}
		k, err := json.Marshal(e.name)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(e.v)
		if err != nil {
			return nil, err
		}
		b = append(append(append(b, k...), ':'), v...)
	}
	return append(b, '}'), nil
}

// telemetryUpdate is the telemetry_update message. It is also the Merger
// that coalesces a slow client's telemetry: the newest value of each
// metric wins, and the newest seq is kept.
type telemetryUpdate struct {
	Type        string    `json:"type"`
	Channel     string    `json:"channel"`
	DeviceID    int       `json:"device_id"`
	Telemetry   metricSet `json:"telemetry"`
	Seq         uint64    `json:"seq,omitempty"`
	ClockSynced bool      `json:"clock_synced"`
}

func newTelemetry(r *store.Record, metrics []string) *telemetryUpdate {
	u := &telemetryUpdate{Type: "telemetry_update", Channel: "telemetry", DeviceID: r.DeviceID,
		Seq: r.Seq, ClockSynced: r.ClockSynced}
	ts := stamp(r.TS)
	for _, m := range r.Metrics {
		if metrics != nil && !slices.Contains(metrics, m.Name) {
			continue
		}
		u.Telemetry = append(u.Telemetry, namedMetric{m.Name, metricValue{number(m.Value), m.Unit, ts}})
	}
	return u
}

// merge returns newer with the metrics of older that newer lacks.
func (u *telemetryUpdate) merge(older *telemetryUpdate) *telemetryUpdate {
	out := *u
	out.Telemetry = slices.Clone(u.Telemetry)
	for _, om := range older.Telemetry {
		if !slices.ContainsFunc(out.Telemetry, func(n namedMetric) bool { return n.name == om.name }) {
			out.Telemetry = append(out.Telemetry, om)
		}
	}
	if older.Seq > out.Seq {
		out.Seq = older.Seq
	}
	return &out
}

// MergeOlder implements wsconn.Merger. The merged update is encoded by
// the writer, once, rather than at every merge.
func (u *telemetryUpdate) MergeOlder(older, newer wsconn.Message) wsconn.Message {
	o, ok := older.Merge.(*telemetryUpdate)
	if !ok {
		return newer
	}
	m := u.merge(o)
	return wsconn.Message{Key: telemetryKey(m.DeviceID), Seq: m.Seq, Merge: m}
}

// Encode implements wsconn.Merger.
func (u *telemetryUpdate) Encode() []byte { return mustJSON(u) }

// telemetryKey is the coalescing key of a device's telemetry; other
// messages that coalesce use keys outside this range.
func telemetryKey(device int) uint64 { return 1<<32 | uint64(uint32(device)) }

const systemKey = 2 << 32

// message is the fan-out message of a pending frequency-limited update.
func (u *telemetryUpdate) message(at time.Time) wsconn.Message {
	return wsconn.Message{Data: mustJSON(u), Key: telemetryKey(u.DeviceID), Seq: u.Seq, Merge: u, Delay: true, At: at}
}

type alertMsg struct {
	Type      string        `json:"type"`
	Channel   string        `json:"channel"`
	AlertID   uint64        `json:"alert_id"`
	DeviceID  int           `json:"device_id"`
	Severity  string        `json:"severity"`
	Title     string        `json:"title"`
	Message   string        `json:"message"`
	Timestamp string        `json:"timestamp"`
	Metadata  alertMetadata `json:"metadata"`
	AlertType string        `json:"alert_type"`
	State     string        `json:"state"`
	Seq       uint64        `json:"seq,omitempty"`
	Synced    bool          `json:"clock_synced"`
	// Initial marks an alert active when the subscription began (sent
	// before live alerts, without seq).
	Initial bool `json:"initial,omitempty"`
	// The acknowledgement, once there is one: on the alert_ack record's
	// message (whose seq is the ack's) and on later initial messages.
	Acknowledged   bool   `json:"acknowledged,omitempty"`
	AcknowledgedBy string `json:"acknowledged_by,omitempty"`
	AcknowledgedAt string `json:"acknowledged_at,omitempty"`
	AckNote        string `json:"ack_note,omitempty"`
}

// ackAlertResponse answers an ack_alert that was accepted.
type ackAlertResponse struct {
	Type           string `json:"type"` // ack_alert_response
	Success        bool   `json:"success"`
	AlertID        uint64 `json:"alert_id"`
	AcknowledgedBy string `json:"acknowledged_by"`
	AcknowledgedAt string `json:"acknowledged_at"`
	Note           string `json:"note"`
	Seq            uint64 `json:"seq"`
}

type alertMetadata struct {
	Threshold number `json:"threshold_value"`
	Actual    number `json:"actual_value"`
	Metric    string `json:"metric,omitempty"`
}

func encodeAlert(r *store.Record) []byte { return encodeAlertMsg(r, false) }

// encodeAlertMsg encodes an alert record; initial: as the state of a new
// subscription, without its seq (the seq of a raise long past is no
// position to resume from).
func encodeAlertMsg(r *store.Record, initial bool) []byte {
	a := r.Alert
	if a == nil {
		a = &store.Alert{}
	}
	id := a.ID
	if id == 0 {
		id = r.Seq // a raising record's ID is its own seq
	}
	m := alertMsg{Type: "alert", Channel: "alerts", AlertID: id, DeviceID: r.DeviceID,
		Severity: a.Severity, Title: a.Title, Message: a.Message, Timestamp: stamp(r.TS),
		Metadata:  alertMetadata{Threshold: number(a.Threshold), Actual: number(a.Actual), Metric: a.Metric},
		AlertType: a.Rule, State: a.State, Seq: r.Seq, Synced: r.ClockSynced}
	if k := r.Ack; k != nil {
		at := k.At
		if r.Kind == store.KindAlertAck {
			// The alert as raised, then acknowledged at this record's TS.
			at, m.Timestamp = r.TS, stamp(k.Raised)
		}
		m.Acknowledged, m.AcknowledgedBy, m.AcknowledgedAt, m.AckNote = true, k.By, stamp(at), k.Note
	}
	if initial {
		m.Seq, m.Initial = 0, true
	}
	return mustJSON(m)
}

type deviceStatusMsg struct {
	Type      string         `json:"type"`
	Channel   string         `json:"channel"`
	DeviceID  int            `json:"device_id"`
	OldStatus string         `json:"old_status"`
	NewStatus string         `json:"new_status"`
	Timestamp string         `json:"timestamp"`
	Reason    string         `json:"reason"`
	Metadata  deviceMetadata `json:"metadata"`
	// Name, Driver and Units say what the device is (DeviceInfo), when
	// the agent knows.
	Name   string            `json:"name,omitempty"`
	Driver string            `json:"driver,omitempty"`
	Units  map[string]string `json:"units,omitempty"`
	Seq    uint64            `json:"seq,omitempty"`
	// Initial marks the current state sent to a new subscriber (no change
	// happened: old_status equals new_status).
	Initial bool `json:"initial,omitempty"`
}

type deviceMetadata struct {
	LastSeen string `json:"last_seen,omitempty"`
}

func encodeDeviceStatus(r *store.Record, info DeviceInfo) []byte {
	s := r.Status
	if s == nil {
		s = &store.DeviceStatus{}
	}
	return mustJSON(deviceStatusMsg{Type: "device_status_update", Channel: "devices", DeviceID: r.DeviceID,
		OldStatus: s.Old, NewStatus: s.New, Timestamp: stamp(r.TS), Reason: s.Reason,
		Metadata: deviceMetadata{LastSeen: stamp(s.LastSeen)}, Name: info.Name, Driver: info.Driver,
		Units: info.Units, Seq: r.Seq})
}

func encodeDeviceState(d DeviceState, now time.Time) []byte {
	return mustJSON(deviceStatusMsg{Type: "device_status_update", Channel: "devices", DeviceID: d.DeviceID,
		OldStatus: d.Status, NewStatus: d.Status, Timestamp: stamp(now), Reason: d.Reason,
		Metadata: deviceMetadata{LastSeen: stamp(d.LastSeen)}, Name: d.Name, Driver: d.Driver,
		Units: d.Units, Initial: true})
}

// encodeSystem encodes system_status_update, keeping only the metrics
// named (all when nil).
func encodeSystem(s System, metrics []string) []byte {
	all := map[string]any{
		"cpu_usage":          number(s.CPUUsage),
		"memory_usage":       number(s.MemoryUsage),
		"disk_usage":         number(s.DiskUsage),
		"active_connections": s.ActiveConnections,
		"uptime_seconds":     number(s.UptimeSeconds),
		"backlog":            s.Backlog,
		"evicted":            s.Evicted,
		"last_seq":           s.LastSeq,
		"clock_synced":       s.ClockSynced,
	}
	b := []byte(`{"type":"system_status_update","channel":"system","metrics":{`)
	first := true
	for _, k := range systemKeys {
		if metrics != nil && !slices.Contains(metrics, k) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = strconv.AppendQuote(b, k) // the keys are plain ASCII
		b = append(b, ':')
		b = append(b, mustJSON(all[k])...)
	}
	b = append(b, `},"timestamp":`...)
	b = append(b, mustJSON(stamp(s.Timestamp))...)
	if s.Uplinks != nil {
		b = append(b, `,"uplinks":[`...)
		for i, u := range s.Uplinks {
			if i > 0 {
				b = append(b, ',')
			}
			e := mustJSON(u) // its fields, then last_ack
			b = append(b, e[:len(e)-1]...)
			b = append(b, `,"last_ack":`...)
			if u.LastAck.IsZero() {
				b = append(b, "null"...)
			} else {
				b = append(b, mustJSON(stamp(u.LastAck))...)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}
