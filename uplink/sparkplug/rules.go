package sparkplug

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// Namespace is the first topic level of Sparkplug B.
const Namespace = "spBv1.0"

// The message types: the third topic level.
const (
	NBIRTH = "NBIRTH"
	NDEATH = "NDEATH"
	DBIRTH = "DBIRTH"
	DDEATH = "DDEATH"
	NDATA  = "NDATA"
	DDATA  = "DDATA"
	NCMD   = "NCMD"
	DCMD   = "DCMD"
)

// Node metrics every NBIRTH carries.
const (
	// MetricBdSeq is the birth/death sequence number (Int64), in NBIRTH
	// and NDEATH.
	MetricBdSeq = "bdSeq"
	// MetricRebirth is the Boolean a host sets true in an NCMD to ask for
	// a fresh NBIRTH and every DBIRTH.
	MetricRebirth = "Node Control/Rebirth"
)

// NodeTopic returns spBv1.0/<group>/<typ>/<node>.
func NodeTopic(group, typ, node string) string {
	return Namespace + "/" + group + "/" + typ + "/" + node
}

// DeviceTopic returns spBv1.0/<group>/<typ>/<node>/<device>.
func DeviceTopic(group, typ, node, device string) string {
	return NodeTopic(group, typ, node) + "/" + device
}

// StateTopic returns the Primary Host's STATE topic of Sparkplug 3.0,
// spBv1.0/STATE/<host>.
func StateTopic(host string) string { return Namespace + "/STATE/" + host }

// CheckID reports whether s can be a group, edge node, device or host id:
// one topic level, and none of the characters Sparkplug reserves.
func CheckID(s string) error {
	switch {
	case s == "":
		return errors.New("is empty")
	case strings.ContainsAny(s, "/+#\x00"):
		return fmt.Errorf("%q contains '/', '+', '#' or NUL", s)
	}
	return nil
}

// Seq is the node's message sequence number: 0 in every NBIRTH, then one
// more in each following DBIRTH, NDATA, DDATA and DDEATH, wrapping from
// 255 to 0. NDEATH has none. The zero value is ready; its first Next
// without a Birth is 0.
type Seq struct{ next uint8 }

// Birth returns the NBIRTH's seq, 0, and restarts the count.
func (s *Seq) Birth() uint64 {
	s.next = 1
	return 0
}

// Next returns the seq of the next message after the NBIRTH.
func (s *Seq) Next() uint64 {
	v := s.next
	s.next++ // wraps 255 -> 0
	return uint64(v)
}

// NextBdSeq returns the bdSeq of the MQTT CONNECT after one that used
// prev: one more, wrapping from 255 to 0.
func NextBdSeq(prev uint64) uint64 { return (prev + 1) % 256 }

// ReadBdSeq returns the bdSeq for the next CONNECT from the file that
// holds the last one used: 0 when the file does not exist. A file that
// cannot be read or parsed also gives 0, with the error.
func ReadBdSeq(path string) (next uint64, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sparkplug: reading bdSeq: %w", err)
	}
	last, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 8)
	if err != nil {
		return 0, fmt.Errorf("sparkplug: %s: bdSeq %q is not a number from 0 to 255", path, strings.TrimSpace(string(b)))
	}
	return NextBdSeq(last), nil
}

// WriteBdSeq records v as the bdSeq of the CONNECT about to be made. The
// file is replaced whole and synced before WriteBdSeq returns, so a power
// cut leaves the old value or the new one, and the next start never
// reuses a bdSeq that a will on the broker may carry.
func WriteBdSeq(path string, v uint64) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("sparkplug: writing bdSeq: %w", err)
	}
	_, err = f.WriteString(strconv.FormatUint(v, 10) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		// The rename is durable once the directory is.
		if d, derr := os.Open(filepath.Dir(path)); derr == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("sparkplug: writing bdSeq: %w", err)
	}
	return nil
}

// HostState follows a Primary Host Application's STATE messages (Sparkplug
// 3.0: a retained JSON {"online": bool, "timestamp": ms}). A message with
// an older timestamp than the last one applied is stale and ignored, as
// the specification requires. The zero value knows nothing: offline.
type HostState struct {
	seen   bool
	online bool
	ts     int64
}

// Update applies one STATE payload and reports whether it was applied
// (false for a stale one). A payload that is not such JSON is an error
// and changes nothing.
func (h *HostState) Update(payload []byte) (applied bool, err error) {
	var s struct {
		Online    *bool  `json:"online"`
		Timestamp *int64 `json:"timestamp"`
	}
	if err := json.Unmarshal(payload, &s); err != nil {
		return false, fmt.Errorf("sparkplug: STATE payload: %w", err)
	}
	if s.Online == nil || s.Timestamp == nil {
		return false, errors.New(`sparkplug: STATE payload: want {"online": bool, "timestamp": ms}`)
	}
	if h.seen && *s.Timestamp < h.ts {
		return false, nil
	}
	h.seen, h.online, h.ts = true, *s.Online, *s.Timestamp
	return true, nil
}

// Online reports whether the last STATE applied said online.
func (h *HostState) Online() bool { return h.online }

// NewSession forgets that the host was online, and keeps the timestamp
// that makes older messages stale: each MQTT session waits for a STATE
// online of its own before the births (the host may have gone while the
// node was disconnected; the broker then holds its retained offline).
func (h *HostState) NewSession() { h.online = false }

// RequestsRebirth reports whether the NCMD payload b asks for a rebirth
// (Node Control/Rebirth set true), and how many metrics it holds. It
// decodes one metric at a time and keeps none: a command of half a
// million empty metrics in a megabyte costs its bytes, not the hundreds
// of megabytes a decoded Payload would take. A payload Decode refuses is
// an error.
func RequestsRebirth(b []byte) (rebirth bool, metrics int, err error) {
	err = fields(b, func(num protowire.Number, typ protowire.Type, _ uint64, raw []byte) error {
		if num != fPayloadMetrics || typ != protowire.BytesType {
			return nil
		}
		metrics++
		m, err := decodeMetric(raw)
		if m.Name == MetricRebirth && !m.Null && (m.DataType == Boolean || m.DataType == 0) && m.Bool {
			rebirth = true
		}
		return err
	})
	if err != nil {
		return false, metrics, err
	}
	return rebirth, metrics, nil
}
