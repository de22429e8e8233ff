package store

import "time"

// Kind tells what a Record carries.
type Kind uint8

// The kinds of record. The numbers are stored on disk: never renumber.
const (
	KindTelemetry    Kind = 1 // one read of one device: Metrics
	KindAlert        Kind = 2 // an alert raised or cleared: Alert
	KindDeviceStatus Kind = 3 // a device changed status: Status
	KindChat         Kind = 4 // a floor chat message: Chat
	KindAlertAck     Kind = 5 // an operator acknowledged an active alert: Alert and Ack
)

// kindLimit is one more than the highest kind number.
const kindLimit = 6

// String returns the kind's name as used on the wire.
func (k Kind) String() string {
	switch k {
	case KindTelemetry:
		return "telemetry"
	case KindAlert:
		return "alert"
	case KindDeviceStatus:
		return "device_status"
	case KindChat:
		return "chat"
	case KindAlertAck:
		return "alert_ack"
	}
	return "unknown"
}

// Record is one entry of the log: one read of one device, or one event.
// The store assigns Seq; everything else is filled by the agent.
type Record struct {
	// Seq is the gateway-wide sequence number: strictly increasing, never
	// reused, not even after a crash.
	Seq  uint64
	Kind Kind
	// DeviceID is the device number from the configuration.
	DeviceID int
	// TS is the wall-clock time of the read or event.
	TS time.Time
	// BootID identifies the boot (or process start) the record was taken in.
	BootID string
	// Mono is the monotonic time since boot, in nanoseconds.
	Mono int64
	// ClockSynced is false when TS was taken before the wall clock was
	// known to be right (a Pi without RTC boots in 1970).
	ClockSynced bool
	// Restamped is true when TS was recomputed from Mono after the wall
	// clock was synced (see Store.Restamp); ClockSynced stays false.
	Restamped bool

	Metrics []Metric      // KindTelemetry
	Alert   *Alert        // KindAlert
	Status  *DeviceStatus // KindDeviceStatus
	Chat    *ChatMessage  // KindChat
	// Ack is the acknowledgement of an alert_ack record, whose Alert is
	// the alert acknowledged as it was raised (ID set). ActiveAlerts also
	// sets it on the raising record of an acknowledged alert.
	Ack *AlertAck
}

// Metric is one measured value of a telemetry record.
type Metric struct {
	Name  string
	Value float64
	Unit  string
}

// Alert states.
const (
	AlertActive  = "active"
	AlertCleared = "cleared"
)

// Alert is an alert raised or cleared by a rule.
type Alert struct {
	// ID is persistent: the Seq of the record that raised the alert. A
	// clearing record carries the ID of the alert it clears.
	ID       uint64
	Rule     string // the rule's name; the API's alert_type
	Severity string // info, warning, critical
	Title    string
	Message  string
	State    string // AlertActive or AlertCleared
	// Threshold and Actual are the rule's threshold and the value that
	// crossed it (metadata.threshold_value / actual_value).
	Threshold float64
	Actual    float64
	Metric    string
}

// AlertAck is an acknowledgement of an active alert: someone has seen it.
// The alert stays active until its rule clears it.
type AlertAck struct {
	// By names who acknowledged: a dashboard user, or whom the center
	// named in its ack_alert command.
	By string
	// Note is an optional remark, free text.
	Note string
	// At is when the alert was acknowledged: the alert_ack record's TS
	// (not stored twice).
	At time.Time
	// Raised is the TS of the alert's raising record, so that an
	// alert_ack record tells the alert whole.
	Raised time.Time
}

// Device statuses.
const (
	StatusOnline  = "online"
	StatusWarning = "warning"
	StatusOffline = "offline"
)

// DeviceStatus is a change of a device's status.
type DeviceStatus struct {
	Old      string
	New      string
	Reason   string
	LastSeen time.Time
}
