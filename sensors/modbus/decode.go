package modbus

import (
	"encoding/binary"
	"math"
)

// decode turns the bytes of one value's registers, as they came off the
// wire, into a number: bytes swapped within each register, then registers
// reversed, as the entry says, then read big-endian.
func decode(r *Register, raw []byte) float64 {
	b := make([]byte, len(raw))
	copy(b, raw)
	if r.ByteSwap {
		for i := 0; i+1 < len(b); i += 2 {
			b[i], b[i+1] = b[i+1], b[i]
		}
	}
	if r.WordSwap {
		for i, j := 0, len(b)-2; i < j; i, j = i+2, j-2 {
			b[i], b[i+1], b[j], b[j+1] = b[j], b[j+1], b[i], b[i+1]
		}
	}
	var v float64
	switch r.typ() {
	case Int16:
		v = float64(int16(binary.BigEndian.Uint16(b)))
	case Uint16:
		v = float64(binary.BigEndian.Uint16(b))
	case Int32:
		v = float64(int32(binary.BigEndian.Uint32(b)))
	case Uint32:
		v = float64(binary.BigEndian.Uint32(b))
	case Float32:
		v = float64(math.Float32frombits(binary.BigEndian.Uint32(b)))
	case Float64:
		v = math.Float64frombits(binary.BigEndian.Uint64(b))
	}
	return scale(r, v)
}

func scale(r *Register, v float64) float64 {
	if r.Scale != 0 {
		v *= r.Scale
	}
	return v + r.Offset
}
