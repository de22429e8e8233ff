package hub

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The channels of the API.
type channel uint8

const (
	chTelemetry channel = iota
	chAlerts
	chDevices
	chSystem
	numChannels
)

var channelNames = [numChannels]string{"telemetry", "alerts", "devices", "system"}

func (c channel) String() string { return channelNames[c] }

func parseChannel(s string) (channel, bool) {
	for i, n := range channelNames {
		if n == s {
			return channel(i), true
		}
	}
	return 0, false
}

// Error codes of the `error` message and of a failed `auth_response`.
const (
	codeInvalidJSON      = "invalid_json"
	codeInvalidMessage   = "invalid_message"
	codeUnknownType      = "unknown_type"
	codeNotAuthenticated = "not_authenticated"
	codeInvalidChannel   = "invalid_channel"
	codeInvalidFilter    = "invalid_filter"
	codeInvalidSince     = "invalid_since"
	codeNotSubscribed    = "not_subscribed"
	codeBatchTooLarge    = "batch_too_large"
	codeRateLimited      = "rate_limited"
	codeReplayFailed     = "replay_failed"
	codeReplayUnavail    = "replay_unavailable"
	codeReplayIncomplete = "replay_incomplete"

	codeMissingToken  = "missing_token"
	codeInvalidToken  = "invalid_token"
	codeTokenExpired  = "token_expired"
	codeTokenTooLong  = "token_too_long"
	codeTooManyConns  = "too_many_connections"
	codeUserMismatch  = "user_mismatch"
	codeForbidden     = "forbidden"
	codeSessionExpiry = "session_expired"
	codeInternalError = "internal_error"
)

// protoError is a refused request: its code and a message naming what was
// wrong.
type protoError struct {
	code, msg string
}

func (e *protoError) Error() string { return e.code + ": " + e.msg }

func perr(code, format string, args ...any) *protoError {
	return &protoError{code: code, msg: fmt.Sprintf(format, args...)}
}

// rawRequest is the wire form of every client message. Filters may be at
// the top level (the seed's JS client) or under "filters" (its Python
// client and its examples).
type rawRequest struct {
	Type      *string           `json:"type"`
	Token     *string           `json:"token"`
	Channel   *string           `json:"channel"`
	Timestamp json.RawMessage   `json:"timestamp"`
	Messages  []json.RawMessage `json:"messages"`
	Filters   json.RawMessage   `json:"filters"`
	AlertID   json.RawMessage   `json:"alert_id"` // ack_alert
	Note      *string           `json:"note"`     // ack_alert
	Command   *string           `json:"command"`
	Args      json.RawMessage   `json:"args"`
	RequestID json.RawMessage   `json:"request_id"`
	rawFilters
}

// rawFilters are the fields a subscription may carry at the top level or
// under "filters" (the seed's Python client nests them, its JavaScript
// client spreads them; a client may also nest since).
type rawFilters struct {
	DeviceID    json.RawMessage `json:"device_id"`
	Metrics     json.RawMessage `json:"metrics"`
	Severity    json.RawMessage `json:"severity"`
	AlertType   json.RawMessage `json:"alert_type"`
	StatusTypes json.RawMessage `json:"status_types"`
	Frequency   json.RawMessage `json:"frequency"`
	Since       json.RawMessage `json:"since"`
}

// filterFields names the fields of rawFilters, for errors.
const filterFields = "device_id, metrics, severity, alert_type, status_types, frequency, since"

var knownFilters = strings.Split(filterFields, ", ")

// request is a decoded, validated client message.
type request struct {
	typ       string
	token     string
	channel   channel
	timestamp json.RawMessage // echoed by pong as sent
	messages  []json.RawMessage
	since     uint64
	hasSince  bool
	filter    filter
	devices   []int           // unsubscribe: the devices named, nil for the whole channel
	alertID   uint64          // ack_alert
	note      string          // ack_alert
	command   string          // command: its name
	args      json.RawMessage // command: its arguments (an object), as sent
	requestID json.RawMessage // command: echoed in the reply
}

// Message types a client may send.
const (
	typeAuth        = "auth"
	typePing        = "ping"
	typeSubscribe   = "subscribe"
	typeUnsubscribe = "unsubscribe"
	typeBatch       = "batch"
	typeAckAlert    = "ack_alert"
	typeCommand     = "command"
)

// decodeRequest parses and validates one client message.
func decodeRequest(data []byte) (*request, *protoError) {
	var raw rawRequest
	if err := json.Unmarshal(data, &raw); err != nil {
		var te *json.UnmarshalTypeError
		if ok := asTypeError(err, &te); ok {
			return nil, perr(codeInvalidMessage, "field %q has the wrong type (%s)", te.Field, te.Value)
		}
		return nil, perr(codeInvalidJSON, "message is not a JSON object: %v", err)
	}
	if raw.Type == nil {
		return nil, perr(codeInvalidMessage, "missing field \"type\"")
	}
	r := &request{typ: *raw.Type}
	switch r.typ {
	case typeAuth:
		if raw.Token != nil {
			r.token = *raw.Token
		}
	case typePing:
		r.timestamp = raw.Timestamp
	case typeCommand:
		if raw.Command == nil || *raw.Command == "" {
			return nil, perr(codeInvalidMessage, "command without \"command\" (its name)")
		}
		if a := bytes.TrimSpace(raw.Args); len(a) > 0 && a[0] != '{' && !isNull(a) {
			return nil, perr(codeInvalidMessage, "\"args\" must be an object")
		}
		r.command, r.args, r.requestID = *raw.Command, raw.Args, raw.RequestID
	case typeBatch:
		if raw.Messages == nil {
			return nil, perr(codeInvalidMessage, "batch without \"messages\" array")
		}
		r.messages = raw.Messages
	case typeAckAlert:
		a := bytes.TrimSpace(raw.AlertID)
		id, err := strconv.ParseUint(string(a), 10, 64)
		if err != nil || id == 0 {
			return nil, perr(codeInvalidMessage, "ack_alert needs \"alert_id\", a positive integer (got %.40s)", a)
		}
		r.alertID = id
		if raw.Note != nil {
			r.note = *raw.Note
		}
	case typeSubscribe, typeUnsubscribe:
		if raw.Channel == nil {
			return nil, perr(codeInvalidChannel, "%s without \"channel\"", r.typ)
		}
		ch, ok := parseChannel(*raw.Channel)
		if !ok {
			return nil, perr(codeInvalidChannel, "unknown channel %q (want telemetry, alerts, devices or system)", *raw.Channel)
		}
		r.channel = ch
		f, pe := mergeFilters(raw.rawFilters, raw.Filters)
		if pe != nil {
			return nil, pe
		}
		if r.typ == typeUnsubscribe {
			if devs, pe := parseInts("device_id", f.DeviceID); pe != nil {
				return nil, pe
			} else {
				r.devices = devs
			}
			break
		}
		if r.filter, pe = parseFilter(ch, f); pe != nil {
			return nil, pe
		}
		if !isNull(f.Since) {
			s, pe := parseSince(f.Since)
			if pe != nil {
				return nil, pe
			}
			r.since, r.hasSince = s, true
		}
	default:
		if len(r.typ) > 32 {
			return nil, perr(codeUnknownType, "unknown message type (%d bytes long)", len(r.typ))
		}
		return nil, perr(codeUnknownType, "unknown message type %q", r.typ)
	}
	return r, nil
}

func asTypeError(err error, te **json.UnmarshalTypeError) bool {
	t, ok := err.(*json.UnmarshalTypeError)
	if ok {
		*te = t
	}
	return ok
}

func isNull(r json.RawMessage) bool {
	r = bytes.TrimSpace(r)
	return len(r) == 0 || string(r) == "null"
}

// mergeFilters combines the top-level filter fields with those under
// "filters". A field given in both places must have the same value. Other
// top-level fields are ignored (clients add their own), but an unknown
// field under "filters" is refused: it is a filter the client believes
// applies, most likely misspelt.
func mergeFilters(top rawFilters, nested json.RawMessage) (rawFilters, *protoError) {
	if isNull(nested) {
		return top, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(nested, &fields); err != nil {
		return top, perr(codeInvalidFilter, "\"filters\" must be an object: %v", err)
	}
	for name := range fields {
		switch {
		case slices.Contains(knownFilters, name):
		case len(name) > 32:
			return top, perr(codeInvalidFilter, "unknown filter (%d bytes long; known: %s)", len(name), filterFields)
		default:
			return top, perr(codeInvalidFilter, "unknown filter %q (known: %s)", name, filterFields)
		}
	}
	var in rawFilters
	if err := json.Unmarshal(nested, &in); err != nil {
		return top, perr(codeInvalidFilter, "\"filters\": %v", err)
	}
	out := top
	for _, f := range []struct {
		name    string
		top, in json.RawMessage
		dst     *json.RawMessage
	}{
		{"device_id", top.DeviceID, in.DeviceID, &out.DeviceID},
		{"metrics", top.Metrics, in.Metrics, &out.Metrics},
		{"severity", top.Severity, in.Severity, &out.Severity},
		{"alert_type", top.AlertType, in.AlertType, &out.AlertType},
		{"status_types", top.StatusTypes, in.StatusTypes, &out.StatusTypes},
		{"frequency", top.Frequency, in.Frequency, &out.Frequency},
		{"since", top.Since, in.Since, &out.Since},
	} {
		if isNull(f.in) {
			continue
		}
		if !isNull(f.top) && !jsonEqual(f.top, f.in) {
			return top, perr(codeInvalidFilter, "%s is given both at the top level and in \"filters\", with different values", f.name)
		}
		*f.dst = f.in
	}
	return out, nil
}

func jsonEqual(a, b json.RawMessage) bool {
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return false
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

// filter is a subscription's selection.
type filter struct {
	devices    []int    // nil: every device
	metrics    []string // nil: every metric
	severities []string
	alertTypes []string
	statuses   []string
	period     time.Duration // 0: real-time
}

var (
	severities   = []string{"info", "warning", "critical"}
	deviceStates = []string{"online", "warning", "offline"}
	systemKeys   = []string{"cpu_usage", "memory_usage", "disk_usage", "active_connections",
		"uptime_seconds", "backlog", "evicted", "last_seq", "clock_synced"}
)

// Frequency bounds for subscriptions that are not real-time.
const (
	minPeriod = time.Second
	maxPeriod = time.Hour
)

// parseFilter validates the filter fields for channel ch.
func parseFilter(ch channel, f rawFilters) (filter, *protoError) {
	var out filter
	var pe *protoError
	applies := map[string]bool{}
	switch ch {
	case chTelemetry:
		applies = map[string]bool{"device_id": true, "metrics": true, "frequency": true}
	case chAlerts:
		applies = map[string]bool{"device_id": true, "severity": true, "alert_type": true}
	case chDevices:
		applies = map[string]bool{"device_id": true, "status_types": true}
	case chSystem:
		applies = map[string]bool{"metrics": true, "frequency": true}
	}
	for _, g := range []struct {
		name string
		raw  json.RawMessage
	}{{"device_id", f.DeviceID}, {"metrics", f.Metrics}, {"severity", f.Severity},
		{"alert_type", f.AlertType}, {"status_types", f.StatusTypes}, {"frequency", f.Frequency}} {
		if !isNull(g.raw) && !applies[g.name] {
			return out, perr(codeInvalidFilter, "filter %s does not apply to channel %s", g.name, ch)
		}
	}
	if out.devices, pe = parseInts("device_id", f.DeviceID); pe != nil {
		return out, pe
	}
	if out.metrics, pe = parseStrings("metrics", f.Metrics, nil); pe != nil {
		return out, pe
	}
	if ch == chSystem {
		for _, m := range out.metrics {
			if !slices.Contains(systemKeys, m) {
				return out, perr(codeInvalidFilter, "unknown system metric %q (want one of %s)", m, strings.Join(systemKeys, ", "))
			}
		}
	}
	if out.severities, pe = parseStrings("severity", f.Severity, severities); pe != nil {
		return out, pe
	}
	if out.alertTypes, pe = parseStrings("alert_type", f.AlertType, nil); pe != nil {
		return out, pe
	}
	if out.statuses, pe = parseStrings("status_types", f.StatusTypes, deviceStates); pe != nil {
		return out, pe
	}
	if !isNull(f.Frequency) {
		var s string
		if err := json.Unmarshal(f.Frequency, &s); err != nil {
			return out, perr(codeInvalidFilter, "frequency must be a string such as \"real-time\", \"30s\" or \"1m\"")
		}
		if out.period, pe = parseFrequency(s); pe != nil {
			return out, pe
		}
	}
	return out, nil
}

func parseFrequency(s string) (time.Duration, *protoError) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "real-time", "realtime", "":
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < minPeriod || d > maxPeriod {
		return 0, perr(codeInvalidFilter, "frequency %q: want \"real-time\" or a period from 1s to 1h such as \"30s\" or \"1m\"", s)
	}
	return d, nil
}

// maxListLen bounds a filter list (a 1 KB message cannot hold much more).
const maxListLen = 256

// parseInts accepts a non-negative integer or a list of them.
func parseInts(name string, raw json.RawMessage) ([]int, *protoError) {
	if isNull(raw) {
		return nil, nil
	}
	var one json.Number
	var list []json.Number
	if err := json.Unmarshal(raw, &one); err == nil {
		list = []json.Number{one}
	} else if err := json.Unmarshal(raw, &list); err != nil {
		return nil, perr(codeInvalidFilter, "%s must be an integer or a list of integers", name)
	}
	if len(list) == 0 {
		return nil, perr(codeInvalidFilter, "%s is an empty list", name)
	}
	if len(list) > maxListLen {
		return nil, perr(codeInvalidFilter, "%s lists more than %d values", name, maxListLen)
	}
	out := make([]int, 0, len(list))
	for _, n := range list {
		v, err := strconv.ParseInt(string(n), 10, 32)
		if err != nil || v < 0 {
			return nil, perr(codeInvalidFilter, "%s: %s is not a device number (a non-negative integer)", name, n)
		}
		if !slices.Contains(out, int(v)) {
			out = append(out, int(v))
		}
	}
	return out, nil
}

// parseStrings accepts a string or a list of strings; allowed, when set,
// is the closed set of values.
func parseStrings(name string, raw json.RawMessage, allowed []string) ([]string, *protoError) {
	if isNull(raw) {
		return nil, nil
	}
	var one string
	var list []string
	if err := json.Unmarshal(raw, &one); err == nil {
		list = []string{one}
	} else if err := json.Unmarshal(raw, &list); err != nil {
		return nil, perr(codeInvalidFilter, "%s must be a string or a list of strings", name)
	}
	if len(list) == 0 {
		return nil, perr(codeInvalidFilter, "%s is an empty list", name)
	}
	if len(list) > maxListLen {
		return nil, perr(codeInvalidFilter, "%s lists more than %d values", name, maxListLen)
	}
	out := make([]string, 0, len(list))
	for _, s := range list {
		if s == "" {
			return nil, perr(codeInvalidFilter, "%s contains an empty string", name)
		}
		if allowed != nil && !slices.Contains(allowed, s) {
			return nil, perr(codeInvalidFilter, "%s: unknown value %q (want one of %s)", name, s, strings.Join(allowed, ", "))
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// parseSince accepts a non-negative integer, as a number or a string.
func parseSince(raw json.RawMessage) (uint64, *protoError) {
	s := strings.TrimSpace(string(raw))
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, perr(codeInvalidSince, "since must be a non-negative integer")
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		if f, ferr := strconv.ParseFloat(s, 64); ferr == nil && f >= 0 && f == math.Trunc(f) && f < 1<<53 {
			return uint64(f), nil
		}
		return 0, perr(codeInvalidSince, "since must be a non-negative integer, got %.40q", s)
	}
	return v, nil
}

// queryFilters reads a channel endpoint's filters from the query string:
// device_id, metrics, severity, alert_type, status_types (each repeated or
// comma-separated) and frequency.
func queryFilters(ch channel, q url.Values) (filter, *protoError) {
	list := func(key string, ints bool) json.RawMessage {
		var vals []string
		for _, v := range q[key] {
			for _, p := range strings.Split(v, ",") {
				if p = strings.TrimSpace(p); p != "" {
					vals = append(vals, p)
				}
			}
		}
		if len(vals) == 0 {
			return nil
		}
		if ints {
			return json.RawMessage("[" + strings.Join(vals, ",") + "]")
		}
		b, _ := json.Marshal(vals)
		return b
	}
	var f rawFilters
	f.DeviceID = list("device_id", true)
	f.Metrics = list("metrics", false)
	f.Severity = list("severity", false)
	f.AlertType = list("alert_type", false)
	f.StatusTypes = list("status_types", false)
	if v := q.Get("frequency"); v != "" {
		f.Frequency, _ = json.Marshal(v)
	}
	if f.DeviceID != nil && !json.Valid(f.DeviceID) {
		return filter{}, perr(codeInvalidFilter, "device_id must be integers")
	}
	return parseFilter(ch, f)
}
