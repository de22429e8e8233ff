package hub

import (
	"encoding/json"
	"net/url"
	"testing"
)

// FuzzDecodeRequest feeds arbitrary bytes to the inbound decoding: it must
// never panic, must refuse with a known code and a message, and what it
// accepts must be self-consistent.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"type":"auth","token":"jwt-token-string"}`,
		`{"type":"subscribe","channel":"telemetry","device_id":1}`,
		`{"type":"subscribe","channel":"telemetry","device_id":1,"filters":{"metrics":["temperature","humidity"],"frequency":"real-time"}}`,
		`{"type":"subscribe","channel":"alerts","filters":{"severity":["critical","warning"],"device_id":1}}`,
		`{"type":"subscribe","channel":"devices","filters":{"device_id":[1,2,3],"status_types":["online","offline","warning"]}}`,
		`{"type":"subscribe","channel":"system","filters":{"metrics":["cpu_usage"],"frequency":"30s"},"since":"12"}`,
		`{"type":"unsubscribe","channel":"telemetry","device_id":1}`,
		`{"type":"ping","timestamp":"2024-01-01T12:00:00Z"}`,
		`{"type":"batch","messages":[{"type":"ping"},{"type":"nope"}]}`,
		`{"type":"subscribe","channel":"telemetry","device_id":1,"filters":{"device_id":2}}`,
		`{"type":7}`, `[]`, `null`, `{`, "\xff",
	} {
		f.Add([]byte(s))
	}
	codes := map[string]bool{codeInvalidJSON: true, codeInvalidMessage: true, codeUnknownType: true,
		codeInvalidChannel: true, codeInvalidFilter: true, codeInvalidSince: true}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, pe := decodeRequest(data)
		if pe != nil {
			if r != nil || !codes[pe.code] || pe.msg == "" {
				t.Fatalf("refusal %v with request %v", pe, r)
			}
			if len(pe.msg) > 2048 {
				t.Fatalf("error message of %d bytes", len(pe.msg))
			}
			return
		}
		switch r.typ {
		case typeAuth, typePing, typeBatch:
		case typeSubscribe, typeUnsubscribe:
			if r.channel >= numChannels {
				t.Fatalf("channel %d", r.channel)
			}
			if r.filter.period != 0 && (r.filter.period < minPeriod || r.filter.period > maxPeriod) {
				t.Fatalf("period %v", r.filter.period)
			}
			for _, d := range append(r.filter.devices, r.devices...) {
				if d < 0 {
					t.Fatalf("device %d", d)
				}
			}
			// The normalized filters encode.
			if _, err := json.Marshal(r.filter.json(r.channel)); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("accepted type %q", r.typ)
		}
		// Query filters never panic either.
		if q, err := url.ParseQuery(string(data)); err == nil {
			queryFilters(chTelemetry, q)
		}
	})
}
