package uplink

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/floorhub/floorhub/store"
)

// The encoder below writes JSON by hand: draining a backlog of a million
// records is bound by encoding, and appending into one reused buffer is
// several times faster than encoding/json with reflection. The output is
// plain JSON that encoding/json (and any other parser) reads back; the tests
// check that.

// AppendBatch appends the JSON message that carries recs:
//
//	{"gateway_id":"gw-1","records":[<record>,...]}
//
// with each record as AppendRecord writes it.
func AppendBatch(dst []byte, gatewayID string, recs []store.Record) []byte {
	dst = append(dst, `{"gateway_id":`...)
	dst = appendString(dst, gatewayID)
	dst = append(dst, `,"records":[`...)
	for i := range recs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendRecord(dst, &recs[i])
	}
	return append(dst, "]}"...)
}

// AppendRecord appends r as one JSON object with the documented field names
// (docs/mqtt.md): seq, kind, device_id, ts, boot_id, mono_ns, clock_synced,
// restamped (only when true), and metrics {name: {value, unit}}, alert {...},
// status {...} or chat {...} by kind; an alert_ack record has alert {...} (the
// alert as raised) and ack {...}.
// Values that JSON cannot hold (NaN, ±Inf) are written as null.
func AppendRecord(dst []byte, r *store.Record) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, r.Seq, 10)
	dst = append(dst, `,"kind":"`...)
	dst = append(dst, r.Kind.String()...)
	dst = append(dst, `","device_id":`...)
	dst = strconv.AppendInt(dst, int64(r.DeviceID), 10)
	dst = append(dst, `,"ts":`...)
	dst = appendTime(dst, r.TS)
	dst = append(dst, `,"boot_id":`...)
	dst = appendString(dst, r.BootID)
	dst = append(dst, `,"mono_ns":`...)
	dst = strconv.AppendInt(dst, r.Mono, 10)
	dst = append(dst, `,"clock_synced":`...)
	dst = strconv.AppendBool(dst, r.ClockSynced)
	if r.Restamped {
		// Only when set: rare, and every byte counts in a backlog.
		dst = append(dst, `,"restamped":true`...)
	}
	if r.Kind == store.KindTelemetry || len(r.Metrics) > 0 {
		dst = append(dst, `,"metrics":{`...)
		for i, m := range r.Metrics {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, m.Name)
			dst = append(dst, `:{"value":`...)
			dst = appendFloat(dst, m.Value)
			dst = append(dst, `,"unit":`...)
			dst = appendString(dst, m.Unit)
			dst = append(dst, '}')
		}
		dst = append(dst, '}')
	}
	if a := r.Alert; a != nil {
		dst = append(dst, `,"alert":{"alert_id":`...)
		dst = strconv.AppendUint(dst, a.ID, 10)
		dst = append(dst, `,"alert_type":`...)
		dst = appendString(dst, a.Rule)
		dst = append(dst, `,"severity":`...)
		dst = appendString(dst, a.Severity)
		dst = append(dst, `,"title":`...)
		dst = appendString(dst, a.Title)
		dst = append(dst, `,"message":`...)
		dst = appendString(dst, a.Message)
		dst = append(dst, `,"state":`...)
		dst = appendString(dst, a.State)
		dst = append(dst, `,"metric":`...)
		dst = appendString(dst, a.Metric)
		dst = append(dst, `,"metadata":{"threshold_value":`...)
		dst = appendFloat(dst, a.Threshold)
		dst = append(dst, `,"actual_value":`...)
		dst = appendFloat(dst, a.Actual)
		dst = append(dst, "}}"...)
	}
	if k := r.Ack; k != nil {
		dst = append(dst, `,"ack":{"acknowledged_by":`...)
		dst = appendString(dst, k.By)
		dst = append(dst, `,"acknowledged_at":`...)
		dst = appendTime(dst, r.TS)
		dst = append(dst, `,"note":`...)
		dst = appendString(dst, k.Note)
		dst = append(dst, `,"raised_at":`...)
		dst = appendTime(dst, k.Raised)
		dst = append(dst, '}')
	}
	if s := r.Status; s != nil {
		dst = append(dst, `,"status":{"old_status":`...)
		dst = appendString(dst, s.Old)
		dst = append(dst, `,"new_status":`...)
		dst = appendString(dst, s.New)
		dst = append(dst, `,"reason":`...)
		dst = appendString(dst, s.Reason)
		dst = append(dst, `,"last_seen":`...)
		dst = appendTime(dst, s.LastSeen)
		dst = append(dst, '}')
	}
	if c := r.Chat; c != nil {
		dst = append(dst, `,"chat":{"chat_id":`...)
		dst = strconv.AppendUint(dst, c.ChatID, 10)
		dst = append(dst, `,"sender_id":`...)
		dst = strconv.AppendInt(dst, c.From, 10)
		dst = append(dst, `,"sender_name":`...)
		dst = appendString(dst, c.FromName)
		dst = append(dst, `,"receiver_id":`...)
		dst = strconv.AppendInt(dst, c.To, 10)
		dst = append(dst, `,"message":`...)
		dst = appendString(dst, c.Text)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// appendTime writes t in RFC 3339 with nanoseconds, in UTC; the zero time
// becomes null (a device never seen, for example).
func appendTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

func appendFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	// Like encoding/json: plain notation for ordinary magnitudes.
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return strconv.AppendFloat(dst, f, 'e', -1, 64)
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string. Invalid UTF-8 becomes U+FFFD so
// that the message stays valid JSON whatever a driver put in a name.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript parsers
		// that eval; escape them as encoding/json does.
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
