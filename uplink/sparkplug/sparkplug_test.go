package sparkplug

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/floorhub/floorhub/store"
)

func TestSeq(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps string // b: Birth, n: Next
		want  []uint64
	}{
		{"birth then data", "bnnn", []uint64{0, 1, 2, 3}},
		{"rebirth restarts at 0", "bnnbn", []uint64{0, 1, 2, 0, 1}},
		{"next without birth", "nn", []uint64{0, 1}},
	} {
		var s Seq
		var got []uint64
		for _, c := range tc.steps {
			if c == 'b' {
				got = append(got, s.Birth())
			} else {
				got = append(got, s.Next())
			}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	// Wrap: the 256th message after the birth is 0 again.
	var s Seq
	s.Birth()
	var last uint64
	for i := 0; i < 255; i++ {
		last = s.Next()
	}
	if last != 255 || s.Next() != 0 || s.Next() != 1 {
		t.Errorf("seq does not wrap 255 -> 0")
	}
}

func TestBdSeq(t *testing.T) {
	for _, tc := range []struct{ prev, want uint64 }{{0, 1}, {1, 2}, {254, 255}, {255, 0}} {
		if got := NextBdSeq(tc.prev); got != tc.want {
			t.Errorf("NextBdSeq(%d) = %d, want %d", tc.prev, got, tc.want)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "bdseq")
	for _, tc := range []struct {
		name    string
		content *string // nil: no file
		want    uint64
		err     bool
	}{
		{"no file", nil, 0, false},
		{"last 0", ptr("0\n"), 1, false},
		{"last 41", ptr("41"), 42, false},
		{"last 255 wraps", ptr("255\n"), 0, false},
		{"garbage", ptr("x\n"), 0, true},
		{"out of range", ptr("256\n"), 0, true},
	} {
		os.Remove(path)
		if tc.content != nil {
			if err := os.WriteFile(path, []byte(*tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := ReadBdSeq(path)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("%s: ReadBdSeq = %d, %v; want %d, error %v", tc.name, got, err, tc.want, tc.err)
		}
	}
	for _, v := range []uint64{0, 7, 255} {
		if err := WriteBdSeq(path, v); err != nil {
			t.Fatal(err)
		}
		if got, err := ReadBdSeq(path); err != nil || got != NextBdSeq(v) {
			t.Errorf("after WriteBdSeq(%d): ReadBdSeq = %d, %v", v, got, err)
		}
	}
	if err := WriteBdSeq(filepath.Join(dir, "missing", "bdseq"), 1); err == nil {
		t.Errorf("WriteBdSeq into a missing directory: no error")
	}
}

func ptr(s string) *string { return &s }

func TestHostState(t *testing.T) {
	var h HostState
	for i, tc := range []struct {
		payload string
		applied bool
		err     bool
		online  bool
	}{
		{`{"online": true, "timestamp": 100}`, true, false, true},
		{`{"online": false, "timestamp": 50}`, false, false, true}, // stale: ignored
		{`{"online": false, "timestamp": 100}`, true, false, false},
		{`{"online": true}`, false, true, false},
		{`not json`, false, true, false},
		{`{"online": true, "timestamp": 200}`, true, false, true},
		{"new session", false, false, false},                        // waits for a STATE again
		{`{"online": true, "timestamp": 150}`, false, false, false}, // still stale
		{`{"online": true, "timestamp": 200}`, true, false, true},   // the retained one again
	} {
		if tc.payload == "new session" {
			h.NewSession()
			if h.Online() {
				t.Errorf("step %d: online after NewSession", i)
			}
			continue
		}
		applied, err := h.Update([]byte(tc.payload))
		if applied != tc.applied || (err != nil) != tc.err || h.Online() != tc.online {
			t.Errorf("step %d %s: applied %v, err %v, online %v; want %v, error %v, online %v",
				i, tc.payload, applied, err, h.Online(), tc.applied, tc.err, tc.online)
		}
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	p := Payload{Timestamp: 1700000000000, Seq: 255, HasSeq: true, Metrics: []Metric{
		{Name: "temperature", Alias: 3, HasAlias: true, Timestamp: 1700000000001, DataType: Double, Double: -12.5, Unit: "°C"},
		{Alias: 4, HasAlias: true, DataType: Double, Double: math.Inf(1), Historical: true},
		{Name: MetricBdSeq, DataType: Int64, Long: 200},
		{Name: MetricRebirth, DataType: Boolean, Bool: true},
		{Name: "s", DataType: String, Str: "héllo"},
		{Name: "n", DataType: Double, Null: true},
	}}
	got, err := Decode(p.Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	// Units are properties, which Decode skips.
	want := p
	want.Metrics = slices.Clone(p.Metrics)
	want.Metrics[0].Unit = ""
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
	for _, bad := range [][]byte{{0x12, 0x05, 0x0a}, {0xff}, {0x08}} {
		if _, err := Decode(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%x): %v, want ErrMalformed", bad, err)
		}
	}
}

func TestRequestsRebirth(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    []Metric
		want bool
	}{
		{"true", []Metric{{Name: MetricRebirth, DataType: Boolean, Bool: true}}, true},
		{"false", []Metric{{Name: MetricRebirth, DataType: Boolean}}, false},
		{"other metric", []Metric{{Name: "Node Control/Reboot", DataType: Boolean, Bool: true}}, false},
		{"null", []Metric{{Name: MetricRebirth, DataType: Boolean, Bool: true, Null: true}}, false},
		{"none", nil, false},
		{"among others", []Metric{{Name: "a"}, {Name: MetricRebirth, DataType: Boolean, Bool: true}, {Name: "b"}}, true},
	} {
		p := Payload{Timestamp: 1, Metrics: tc.m}
		got, n, err := RequestsRebirth(p.Append(nil))
		if got != tc.want || n != len(tc.m) || err != nil {
			t.Errorf("%s: %v, %d metrics, %v; want %v, %d metrics", tc.name, got, n, err, tc.want, len(tc.m))
		}
	}
	// A host that leaves out the datatype: the name (field 1) and the
	// boolean_value (field 14) alone.
	noType := append([]byte{0x12, 2 + byte(len(MetricRebirth)) + 2, 0x0a, byte(len(MetricRebirth))}, MetricRebirth...)
	if got, _, err := RequestsRebirth(append(noType, 0x70, 1)); !got || err != nil {
		t.Errorf("no datatype: %v, %v; want a rebirth", got, err)
	}
	if _, _, err := RequestsRebirth([]byte{0x12, 0x05, 0x0a}); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated metric: %v, want ErrMalformed", err)
	}
}

var t0 = time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)

func tel(seq uint64, dev int, names ...string) store.Record {
	r := store.Record{Seq: seq, Kind: store.KindTelemetry, DeviceID: dev, TS: t0.Add(time.Duration(seq) * time.Second)}
	for _, n := range names {
		r.Metrics = append(r.Metrics, store.Metric{Name: n, Value: float64(seq), Unit: "u"})
	}
	return r
}

func status(seq uint64, dev int, new string) store.Record {
	return store.Record{Seq: seq, Kind: store.KindDeviceStatus, DeviceID: dev, TS: t0, Status: &store.DeviceStatus{New: new}}
}

// summary is a message as "TYPE/device seq [metric...]", metrics as
// name#alias or #alias, with h for historical.
func summary(t *testing.T, msgs []Msg) []string {
	t.Helper()
	var out []string
	for _, m := range msgs {
		p, err := Decode(m.Payload)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.TrimPrefix(m.Topic, "spBv1.0/g/")
		s = strings.Replace(s, "/n", "", 1)
		if p.HasSeq {
			s += " " + itoa(p.Seq)
		}
		for _, x := range p.Metrics {
			s += " " + x.Name
			if x.HasAlias {
				s += "#" + itoa(x.Alias)
			}
			if x.Historical {
				s += "h"
			}
		}
		out = append(out, s)
	}
	return out
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

func TestNode(t *testing.T) {
	n := NewNode("g", "n")
	check := func(what string, got []Msg, want ...string) {
		t.Helper()
		if s := summary(t, got); !reflect.DeepEqual(s, want) {
			t.Errorf("%s:\n got %q\nwant %q", what, s, want)
		}
	}
	check("death", []Msg{n.Death(7, t0)}, "NDEATH bdSeq")
	check("first birth: no device known yet", n.Birth(7, t0), "NBIRTH 0 bdSeq Node Control/Rebirth")
	check("first data of two devices: births, then aliases only",
		n.Records([]store.Record{tel(1, 1, "t"), tel(2, 2, "p", "q"), tel(3, 1, "t")}, 0, t0),
		"DBIRTH/1 1 t#1", "DDATA/1 2 #1", "DBIRTH/2 3 p#2 q#3")
	check("a new metric: the device is born again", n.Records([]store.Record{tel(4, 1, "t", "h")}, 0, t0),
		"DBIRTH/1 4 t#1 h#4")
	check("historical records keep their birth record in the data",
		n.Records([]store.Record{tel(5, 3, "x"), tel(6, 3, "x"), tel(7, 3, "x")}, 6, t0),
		"DBIRTH/3 5 x#5", "DDATA/3 6 #5h #5h #5")
	check("offline: DDEATH; warning for an unknown device: nothing",
		n.Records([]store.Record{status(8, 2, store.StatusOffline), status(9, 9, store.StatusWarning)}, 0, t0), "DDEATH/2 7")
	check("offline again: nothing more", n.Records([]store.Record{status(10, 2, store.StatusOffline)}, 0, t0))
	check("rebirth: NBIRTH and the devices that are not offline",
		n.Birth(7, t0), "NBIRTH 0 bdSeq Node Control/Rebirth", "DBIRTH/1 1 t#1 h#4", "DBIRTH/3 2 x#5")
	check("back online: DBIRTH with the last values", n.Records([]store.Record{status(11, 2, store.StatusOnline)}, 0, t0),
		"DBIRTH/2 3 p#2 q#3")
	check("alerts: nothing", n.Records([]store.Record{{Seq: 12, Kind: store.KindAlert, Alert: &store.Alert{}}}, 0, t0))

	// The values and timestamps of a DDATA.
	msgs := n.Records([]store.Record{tel(20, 1, "t")}, 0, t0.Add(time.Hour))
	p, _ := Decode(msgs[0].Payload)
	if m := p.Metrics[0]; m.Double != 20 || m.Timestamp != uint64(t0.Add(20*time.Second).UnixMilli()) || m.DataType != Double ||
		p.Timestamp != uint64(t0.Add(time.Hour).UnixMilli()) {
		t.Errorf("DDATA: %+v", p)
	}
}

// FuzzDecode feeds Decode what a broker could deliver as an NCMD or DCMD:
// it must never panic, and what it accepts must encode and decode again to
// the same metrics (the value field each datatype selects).
func FuzzDecode(f *testing.F) {
	p := Payload{Timestamp: 1700000000000, Seq: 3, HasSeq: true, Metrics: []Metric{
		{Name: MetricRebirth, DataType: Boolean, Bool: true},
		{Alias: 4, HasAlias: true, DataType: Double, Double: -1.5, Unit: "°C"},
		{Name: "s", DataType: String, Str: "x"},
		{Name: "n", DataType: Int64, Null: true},
	}}
	f.Add(p.Append(nil))
	f.Add([]byte{0x12, 0x05, 0x0a})
	f.Add([]byte{0x12, 0x03, 0x65, 0x00, 0x00}) // a float (fixed32) value, cut short
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode: %v, want ErrMalformed", err)
			}
			return
		}
		want := got
		want.Metrics = slices.Clone(got.Metrics)
		for i := range want.Metrics {
			want.Metrics[i] = selected(want.Metrics[i])
		}
		again, err := Decode(want.Append(nil))
		if err != nil {
			t.Fatalf("Decode of its own encoding: %v", err)
		}
		if !samePayload(again, want) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", again, want)
		}
	})
}

// selected keeps the value field m's datatype selects, the one Append
// writes.
func selected(m Metric) Metric {
	v := Metric{Name: m.Name, Alias: m.Alias, HasAlias: m.HasAlias, Timestamp: m.Timestamp,
		DataType: m.DataType, Historical: m.Historical, Null: m.Null}
	if m.Null {
		return v
	}
	switch m.DataType {
	case Int64, UInt64:
		v.Long = m.Long
	case Double:
		v.Double = m.Double
	case Boolean:
		v.Bool = m.Bool
	case String:
		v.Str = m.Str
	}
	return v
}

// samePayload is reflect.DeepEqual with doubles compared by their bits, so
// that a NaN equals itself.
func samePayload(a, b Payload) bool {
	if len(a.Metrics) != len(b.Metrics) {
		return false
	}
	for i := range a.Metrics {
		x, y := a.Metrics[i], b.Metrics[i]
		if math.Float64bits(x.Double) != math.Float64bits(y.Double) {
			return false
		}
		x.Double, y.Double = 0, 0
		if x != y {
			return false
		}
	}
	return a.Timestamp == b.Timestamp && a.Seq == b.Seq && a.HasSeq == b.HasSeq
}
