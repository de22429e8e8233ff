package sparkplug

import (
	"slices"
	"strconv"
	"time"

	"github.com/floorhub/floorhub/store"
)

// Msg is one MQTT message an edge node publishes: at QoS 1, not retained,
// in the order Node returned it (the seqs are in that order).
type Msg struct {
	Topic   string
	Payload []byte
}

// Node is floorhub's edge node: it turns records into Sparkplug messages
// and keeps what the rules need between them (the seq, the aliases, which
// devices are born and the last value of each of their metrics). Each
// floorhub device is a Sparkplug device named by its number ("3"); each of
// its metrics is a Double named as in floorhub, with the unit as the
// property engUnit. Node is not safe for concurrent use, and the caller
// must publish its messages in the order returned.
type Node struct {
	group, node string
	seq         Seq
	aliases     map[aliasKey]uint64
	devices     map[int]*device
}

type aliasKey struct {
	device int
	metric string
}

type device struct {
	metrics []store.Metric // last value of each metric, in the order first seen
	ts      time.Time      // when those values were taken
	born    bool           // a DBIRTH was sent since the last NBIRTH, and no DDEATH
	offline bool           // its last status record said offline
}

// NewNode returns the node <group>/<edgeNode>; both must pass CheckID.
func NewNode(group, edgeNode string) *Node {
	return &Node{group: group, node: edgeNode, aliases: map[aliasKey]uint64{}, devices: map[int]*device{}}
}

// Death returns the NDEATH for the connection whose will carries bdSeq: the
// bdSeq metric alone, and no seq.
func (n *Node) Death(bdSeq uint64, now time.Time) Msg {
	p := Payload{Timestamp: ms(now), Metrics: []Metric{{Name: MetricBdSeq, DataType: Int64, Long: bdSeq}}}
	return Msg{NodeTopic(n.group, NDEATH, n.node), p.Append(nil)}
}

// Birth returns the NBIRTH (seq 0, the same bdSeq as the connection's
// will, Node Control/Rebirth false) and then a DBIRTH for every device
// that has sent data since the node was made and is not offline, with the
// last value of each of its metrics. It serves both a new connection and
// a rebirth.
func (n *Node) Birth(bdSeq uint64, now time.Time) []Msg {
	p := Payload{Timestamp: ms(now), Seq: n.seq.Birth(), HasSeq: true, Metrics: []Metric{
		{Name: MetricBdSeq, DataType: Int64, Long: bdSeq, Timestamp: ms(now)},
		{Name: MetricRebirth, DataType: Boolean, Bool: false, Timestamp: ms(now)},
	}}
	out := []Msg{{NodeTopic(n.group, NBIRTH, n.node), p.Append(nil)}}
	ids := make([]int, 0, len(n.devices))
	for id, d := range n.devices {
		d.born = false
		if !d.offline && len(d.metrics) > 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		out = append(out, n.dbirth(id, n.devices[id], now))
	}
	return out
}

// Records returns the messages for recs, records of one kind in seq
// order: for telemetry, one DDATA per device (a DBIRTH first when the
// device is not born, or reports a metric its birth did not declare); for
// device status, a DDEATH when a born device goes offline and a DBIRTH
// when an offline device it has values of comes back. Records with a seq
// up to historicalUpTo are sent with is_historical on their metrics.
// Alerts give no message (they have JSON topics of their own).
func (n *Node) Records(recs []store.Record, historicalUpTo uint64, now time.Time) []Msg {
	var out []Msg
	if len(recs) == 0 {
		return nil
	}
	switch recs[0].Kind {
	case store.KindTelemetry:
		// One DDATA per device, devices in the order first seen: records
		// of different devices are independent, and those of one device
		// keep their order.
		var ids []int
		byDev := map[int][]*store.Record{}
		for i := range recs {
			id := recs[i].DeviceID
			if _, ok := byDev[id]; !ok {
				ids = append(ids, id)
			}
			byDev[id] = append(byDev[id], &recs[i])
		}
		for _, id := range ids {
			out = n.data(out, id, byDev[id], historicalUpTo, now)
		}
	case store.KindDeviceStatus:
		for i := range recs {
			r := &recs[i]
			if r.Status == nil {
				continue
			}
			d := n.device(r.DeviceID)
			if r.Status.New == store.StatusOffline {
				d.offline = true
				if d.born {
					d.born = false
					p := Payload{Timestamp: ms(r.TS), Seq: n.seq.Next(), HasSeq: true}
					out = append(out, Msg{DeviceTopic(n.group, DDEATH, n.node, deviceName(r.DeviceID)), p.Append(nil)})
				}
				continue
			}
			if d.offline {
				d.offline = false
				if !d.born && len(d.metrics) > 0 {
					out = append(out, n.dbirth(r.DeviceID, d, now))
				}
			}
		}
	}
	return out
}

// data appends the DBIRTHs and DDATAs for one device's records.
func (n *Node) data(out []Msg, id int, recs []*store.Record, historicalUpTo uint64, now time.Time) []Msg {
	d := n.device(id)
	var metrics []Metric
	flush := func() {
		if len(metrics) == 0 {
			return
		}
		p := Payload{Timestamp: ms(now), Seq: n.seq.Next(), HasSeq: true, Metrics: metrics}
		out = append(out, Msg{DeviceTopic(n.group, DDATA, n.node, deviceName(id)), p.Append(nil)})
		metrics = nil
	}
	for _, r := range recs {
		historical := r.Seq <= historicalUpTo
		// Data from a device means it is there, whatever its last
		// status said; a backlog may hold data from before a death.
		d.offline = false
		newMetric := d.update(r)
		if !d.born || newMetric {
			flush()
			out = append(out, n.dbirth(id, d, now))
			if !historical {
				continue // the birth carries this record's values
			}
		}
		for _, m := range r.Metrics {
			metrics = append(metrics, Metric{Alias: n.alias(id, m.Name), HasAlias: true, Timestamp: ms(r.TS),
				DataType: Double, Double: m.Value, Historical: historical})
		}
	}
	flush()
	return out
}

// dbirth returns a DBIRTH for d with its last values and marks it born.
func (n *Node) dbirth(id int, d *device, now time.Time) Msg {
	p := Payload{Timestamp: ms(now), Seq: n.seq.Next(), HasSeq: true}
	for _, m := range d.metrics {
		p.Metrics = append(p.Metrics, Metric{Name: m.Name, Alias: n.alias(id, m.Name), HasAlias: true,
			Timestamp: ms(d.ts), DataType: Double, Double: m.Value, Unit: m.Unit})
	}
	d.born = true
	return Msg{DeviceTopic(n.group, DBIRTH, n.node, deviceName(id)), p.Append(nil)}
}

func (n *Node) device(id int) *device {
	d := n.devices[id]
	if d == nil {
		d = &device{}
		n.devices[id] = d
	}
	return d
}

// update takes r's values as d's last ones and reports whether r has a
// metric d did not have.
func (d *device) update(r *store.Record) (newMetric bool) {
	d.ts = r.TS
	for _, m := range r.Metrics {
		i := slices.IndexFunc(d.metrics, func(x store.Metric) bool { return x.Name == m.Name })
		if i < 0 {
			d.metrics = append(d.metrics, m)
			newMetric = true
			continue
		}
		d.metrics[i] = m
	}
	return newMetric
}

// alias returns the alias of a device's metric: numbered from 1 in the
// order first seen, unique in the node, kept for the life of the Node
// (every DBIRTH declares them again, so a restart may renumber).
func (n *Node) alias(id int, name string) uint64 {
	k := aliasKey{id, name}
	a, ok := n.aliases[k]
	if !ok {
		a = uint64(len(n.aliases)) + 1
		n.aliases[k] = a
	}
	return a
}

func deviceName(id int) string { return strconv.Itoa(id) }

// ms is t in ms since the Unix epoch; 0 for times before it.
func ms(t time.Time) uint64 {
	if v := t.UnixMilli(); v > 0 {
		return uint64(v)
	}
	return 0
}
