// Package sparkplug holds the Sparkplug B 3.0 rules floorhub's MQTT uplink
// follows when uplink.mqtt.format is sparkplug_b: the payload encoding
// (the Eclipse Tahu schema, sparkplug_b.proto, written with protowire, no
// generated code), the topic namespace, the seq and bdSeq counters, the
// Primary Host's STATE message, and Node, which turns floorhub's records
// into births, deaths and data messages. It dials nothing: uplink/mqtt
// publishes what Node returns.
package sparkplug

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// DataType is a metric's datatype code in the Sparkplug B schema.
type DataType uint32

// The datatypes floorhub sends. The numbers are the schema's.
const (
	Int64   DataType = 4
	UInt64  DataType = 8
	Double  DataType = 10
	Boolean DataType = 11
	String  DataType = 12
)

// Field numbers of the schema (sparkplug_b.proto, package
// org.eclipse.tahu.protobuf).
const (
	fPayloadTimestamp = 1
	fPayloadMetrics   = 2
	fPayloadSeq       = 3

	fMetricName       = 1
	fMetricAlias      = 2
	fMetricTimestamp  = 3
	fMetricDatatype   = 4
	fMetricHistorical = 5
	fMetricNull       = 7
	fMetricProperties = 9
	fMetricInt        = 10
	fMetricLong       = 11
	fMetricFloat      = 12
	fMetricDouble     = 13
	fMetricBool       = 14
	fMetricString     = 15

	fPropSetKeys   = 1
	fPropSetValues = 2
	fPropType      = 1
	fPropString    = 8
)

// Metric is one metric of a payload. Which value field counts follows
// DataType: Long for Int64 and UInt64, Double, Bool, Str.
type Metric struct {
	// Name is the metric's name; births carry it, data messages carry the
	// alias instead (empty Name).
	Name string
	// Alias stands for the name in data messages once a birth declared
	// it; valid when HasAlias.
	Alias    uint64
	HasAlias bool
	// Timestamp is when the value was taken, in ms since the Unix epoch;
	// 0 leaves it out.
	Timestamp uint64
	DataType  DataType
	// Historical marks a value that must not update the live tag: it was
	// stored while the node could not send it.
	Historical bool
	// Null says the metric has no value.
	Null   bool
	Long   uint64 // Int64 (two's complement) and UInt64
	Double float64
	Bool   bool
	Str    string
	// Unit, when not empty, is sent as the metric property "engUnit" (the
	// engineering unit Ignition shows).
	Unit string
}

// Payload is a Sparkplug B payload.
type Payload struct {
	// Timestamp is when the message was made, in ms since the Unix epoch.
	Timestamp uint64
	Metrics   []Metric
	// Seq is the message's sequence number; valid when HasSeq (NDEATH has
	// none).
	Seq    uint64
	HasSeq bool
}

// Append appends p's protobuf encoding to dst.
func (p *Payload) Append(dst []byte) []byte {
	dst = protowire.AppendTag(dst, fPayloadTimestamp, protowire.VarintType)
	dst = protowire.AppendVarint(dst, p.Timestamp)
	var m []byte
	for i := range p.Metrics {
		m = p.Metrics[i].append(m[:0])
		dst = protowire.AppendTag(dst, fPayloadMetrics, protowire.BytesType)
		dst = protowire.AppendBytes(dst, m)
	}
	if p.HasSeq {
		dst = protowire.AppendTag(dst, fPayloadSeq, protowire.VarintType)
		dst = protowire.AppendVarint(dst, p.Seq)
	}
	return dst
}

func (m *Metric) append(dst []byte) []byte {
	if m.Name != "" {
		dst = protowire.AppendTag(dst, fMetricName, protowire.BytesType)
		dst = protowire.AppendString(dst, m.Name)
	}
	if m.HasAlias {
		dst = protowire.AppendTag(dst, fMetricAlias, protowire.VarintType)
		dst = protowire.AppendVarint(dst, m.Alias)
	}
	if m.Timestamp != 0 {
		dst = protowire.AppendTag(dst, fMetricTimestamp, protowire.VarintType)
		dst = protowire.AppendVarint(dst, m.Timestamp)
	}
	dst = protowire.AppendTag(dst, fMetricDatatype, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(m.DataType))
	if m.Historical {
		dst = protowire.AppendTag(dst, fMetricHistorical, protowire.VarintType)
		dst = protowire.AppendVarint(dst, 1)
	}
	if m.Unit != "" {
		// PropertySet{keys: ["engUnit"], values: [{type: String, string_value: unit}]}
		var pv []byte
		pv = protowire.AppendTag(pv, fPropType, protowire.VarintType)
		pv = protowire.AppendVarint(pv, uint64(String))
		pv = protowire.AppendTag(pv, fPropString, protowire.BytesType)
		pv = protowire.AppendString(pv, m.Unit)
		var ps []byte
		ps = protowire.AppendTag(ps, fPropSetKeys, protowire.BytesType)
		ps = protowire.AppendString(ps, "engUnit")
		ps = protowire.AppendTag(ps, fPropSetValues, protowire.BytesType)
		ps = protowire.AppendBytes(ps, pv)
		dst = protowire.AppendTag(dst, fMetricProperties, protowire.BytesType)
		dst = protowire.AppendBytes(dst, ps)
	}
	if m.Null {
		dst = protowire.AppendTag(dst, fMetricNull, protowire.VarintType)
		return protowire.AppendVarint(dst, 1)
	}
	switch m.DataType {
	case Int64, UInt64:
		dst = protowire.AppendTag(dst, fMetricLong, protowire.VarintType)
		dst = protowire.AppendVarint(dst, m.Long)
	case Double:
		dst = protowire.AppendTag(dst, fMetricDouble, protowire.Fixed64Type)
		dst = protowire.AppendFixed64(dst, math.Float64bits(m.Double))
	case Boolean:
		dst = protowire.AppendTag(dst, fMetricBool, protowire.VarintType)
		dst = protowire.AppendVarint(dst, protowire.EncodeBool(m.Bool))
	case String:
		dst = protowire.AppendTag(dst, fMetricString, protowire.BytesType)
		dst = protowire.AppendString(dst, m.Str)
	}
	return dst
}

// ErrMalformed is wrapped by Decode's errors.
var ErrMalformed = errors.New("sparkplug: malformed payload")

// Decode reads a payload as far as floorhub needs (the commands NCMD and
// DCMD): timestamp, seq, and per metric name, alias, timestamp, datatype,
// is_null and the value of the integer, floating-point, boolean and
// string types. Other fields (properties, datasets, templates) are
// skipped.
func Decode(b []byte) (Payload, error) {
	var p Payload
	err := fields(b, func(num protowire.Number, typ protowire.Type, v uint64, raw []byte) error {
		switch {
		case num == fPayloadTimestamp && typ == protowire.VarintType:
			p.Timestamp = v
		case num == fPayloadSeq && typ == protowire.VarintType:
			p.Seq, p.HasSeq = v, true
		case num == fPayloadMetrics && typ == protowire.BytesType:
			m, err := decodeMetric(raw)
			if err != nil {
				return err
			}
			p.Metrics = append(p.Metrics, m)
		}
		return nil
	})
	return p, err
}

func decodeMetric(b []byte) (Metric, error) {
	var m Metric
	err := fields(b, func(num protowire.Number, typ protowire.Type, v uint64, raw []byte) error {
		switch {
		case num == fMetricName && typ == protowire.BytesType:
			m.Name = string(raw)
		case num == fMetricAlias && typ == protowire.VarintType:
			m.Alias, m.HasAlias = v, true
		case num == fMetricTimestamp && typ == protowire.VarintType:
			m.Timestamp = v
		case num == fMetricDatatype && typ == protowire.VarintType:
			m.DataType = DataType(v)
		case num == fMetricHistorical && typ == protowire.VarintType:
			m.Historical = v != 0
		case num == fMetricNull && typ == protowire.VarintType:
			m.Null = v != 0
		case (num == fMetricInt || num == fMetricLong) && typ == protowire.VarintType:
			m.Long = v
		case num == fMetricFloat && typ == protowire.Fixed32Type:
			m.Double = float64(math.Float32frombits(uint32(v)))
		case num == fMetricDouble && typ == protowire.Fixed64Type:
			m.Double = math.Float64frombits(v)
		case num == fMetricBool && typ == protowire.VarintType:
			m.Bool = v != 0
		case num == fMetricString && typ == protowire.BytesType:
			m.Str = string(raw)
		}
		return nil
	})
	return m, err
}

// fields calls fn for each field of the message b: v holds a varint or
// fixed value, raw a length-delimited one.
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, v uint64, raw []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %v", ErrMalformed, protowire.ParseError(n))
		}
		b = b[n:]
		var (
			v   uint64
			raw []byte
		)
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var x uint32
			x, n = protowire.ConsumeFixed32(b)
			v = uint64(x)
		case protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			raw, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("%w: field %d: %v", ErrMalformed, num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, v, raw); err != nil {
			return err
		}
	}
	return nil
}
