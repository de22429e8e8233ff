package mqtt

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/store"
	"github.com/floorhub/floorhub/uplink/backoff"
	"github.com/floorhub/floorhub/uplink/mqtt/mqttwire"
	"github.com/floorhub/floorhub/uplink/sparkplug"
)

// tahu runs testdata/spdecode/decode.js: Eclipse Tahu's sparkplug-payload
// (npm, pinned in its package-lock.json, installed by scripts/test.sh with
// npm ci), the third-party decoder the Sparkplug tests check against.
type tahu struct {
	mu  sync.Mutex
	in  io.WriteCloser
	out *bufio.Reader
}

func startTahu(t testing.TB) *tahu {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		testkit.Missing(t, "node not found (Node.js 20, as scripts/test.sh expects)")
	}
	dir, _ := filepath.Abs(filepath.Join("testdata", "spdecode"))
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "sparkplug-payload", "package.json")); err != nil {
		testkit.Missing(t, "npm's sparkplug-payload is not installed (cd %s && npm ci, or run scripts/test.sh)", dir)
	}
	cmd := exec.Command(node, filepath.Join(dir, "decode.js"))
	cmd.Dir = dir
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	var stderr testkit.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the decoder: %v", err)
	}
	t.Cleanup(func() {
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("decoder: %v\n%s", err, stderr.String())
		}
	})
	return &tahu{in: in, out: bufio.NewReader(out)}
}

func (d *tahu) call(line string, v any) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := io.WriteString(d.in, line+"\n"); err != nil {
		return err
	}
	resp, err := d.out.ReadBytes('\n')
	if err != nil {
		return err
	}
	var e struct{ Error string }
	if json.Unmarshal(resp, &e) == nil && e.Error != "" {
		return errors.New(e.Error)
	}
	return json.Unmarshal(resp, v)
}

// tahuPayload is a payload as sparkplug-payload decodes it.
type tahuPayload struct {
	Timestamp uint64       `json:"timestamp"`
	Seq       *uint64      `json:"seq"`
	Metrics   []tahuMetric `json:"metrics"`
}

type tahuMetric struct {
	Name         string  `json:"name"`
	Alias        *uint64 `json:"alias"`
	Type         string  `json:"type"`
	Value        any     `json:"value"`
	Timestamp    uint64  `json:"timestamp"`
	IsHistorical bool    `json:"isHistorical"`
	Properties   map[string]struct {
		Type  string `json:"type"`
		Value any    `json:"value"`
	} `json:"properties"`
}

func (d *tahu) decode(b []byte) (tahuPayload, error) {
	var p tahuPayload
	err := d.call(base64.StdEncoding.EncodeToString(b), &p)
	return p, err
}

// encode encodes a payload given as sparkplug-payload's JSON.
func (d *tahu) encode(t testing.TB, payload string) []byte {
	t.Helper()
	var r struct{ B64 string }
	if err := d.call("E "+payload, &r); err != nil {
		t.Fatalf("encoding %s: %v", payload, err)
	}
	b, _ := base64.StdEncoding.DecodeString(r.B64)
	return b
}

// spMsg is one message of the spBv1.0 namespace, decoded by Tahu.
type spMsg struct {
	Topic, Type, Device string
	Payload             tahuPayload
	Raw                 []byte
}

func (m spMsg) String() string {
	s := m.Type
	if m.Device != "" {
		s += "/" + m.Device
	}
	if m.Payload.Seq != nil {
		s += " seq " + strconv.FormatUint(*m.Payload.Seq, 10)
	}
	return s
}

// bdSeq returns the bdSeq metric's value (-1 when there is none).
func (m spMsg) bdSeq() int64 {
	for _, x := range m.Payload.Metrics {
		if x.Name == "bdSeq" {
			if v, ok := x.Value.(float64); ok && x.Type == "Int64" {
				return int64(v)
			}
		}
	}
	return -1
}

// spCollector subscribes to spBv1.0/# (persistent session) and decodes
// every message with Tahu, in arrival order.
type spCollector struct {
	t      testing.TB
	dec    *tahu
	client paho.Client

	// life is held (read) by the handler while it runs; the test's
	// cleanup takes it to set closed, after which a late message touches
	// neither the decoder nor t.
	life   sync.RWMutex
	closed bool

	mu      sync.Mutex
	msgs    []spMsg
	changed chan struct{}
}

func newSPCollector(t testing.TB, b *broker, dec *tahu) *spCollector {
	t.Helper()
	c := &spCollector{t: t, dec: dec, changed: make(chan struct{})}
	opts := paho.NewClientOptions().AddBroker(b.URL()).SetClientID("scada").
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(50 * time.Millisecond).SetMaxReconnectInterval(200 * time.Millisecond).
		SetResumeSubs(true).SetOrderMatters(true)
	opts.SetOnConnectHandler(func(cl paho.Client) { cl.Subscribe("spBv1.0/#", 1, c.handle) })
	c.client = paho.NewClient(opts)
	if tok := c.client.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("collector connect: %v", tok.Error())
	}
	if sub := c.client.Subscribe("spBv1.0/#", 1, c.handle); !sub.WaitTimeout(20*time.Second) || sub.Error() != nil {
		t.Fatalf("collector subscribe: %v", sub.Error())
	}
	t.Cleanup(func() {
		c.client.Disconnect(0)
		c.life.Lock()
		c.closed = true
		c.life.Unlock()
	})
	return c
}

func (c *spCollector) handle(_ paho.Client, m paho.Message) {
	c.life.RLock()
	defer c.life.RUnlock()
	if c.closed {
		return
	}
	parts := strings.Split(m.Topic(), "/")
	msg := spMsg{Topic: m.Topic(), Raw: append([]byte(nil), m.Payload()...)}
	if len(parts) >= 4 && parts[1] != "STATE" {
		msg.Type = parts[2]
		if len(parts) == 5 {
			msg.Device = parts[4]
		}
		p, err := c.dec.decode(m.Payload())
		if err != nil && msg.Type != "NCMD" && msg.Type != "DCMD" { // commands are the tests' own, some malformed on purpose
			c.t.Errorf("%s: Tahu cannot decode the payload: %v", m.Topic(), err)
		}
		msg.Payload = p
	} else {
		msg.Type = "STATE"
	}
	c.mu.Lock()
	c.msgs = append(c.msgs, msg)
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// waitFor waits until cond holds for the messages so far and returns them.
func (c *spCollector) waitFor(what string, d time.Duration, cond func([]spMsg) bool) []spMsg {
	c.t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		msgs, ch := c.msgs, c.changed
		ok := cond(msgs)
		c.mu.Unlock()
		if ok {
			return msgs
		}
		select {
		case <-ch:
		case <-deadline.C:
			c.t.Fatalf("timed out after %v waiting for %s; got %v", d, what, msgs)
		}
	}
}

// count returns the messages of type typ (and device dev, when not "").
func count(msgs []spMsg, typ, dev string) []spMsg {
	var out []spMsg
	for _, m := range msgs {
		if m.Type == typ && (dev == "" || m.Device == dev) {
			out = append(out, m)
		}
	}
	return out
}

// checkSeqs checks the seq rule over msgs, in arrival order: every NBIRTH
// has 0, every DBIRTH, NDATA, DDATA and DDEATH one more than the message
// before it (mod 256), NDEATH none.
func checkSeqs(t testing.TB, msgs []spMsg) {
	t.Helper()
	var prev *uint64
	for i, m := range msgs {
		switch m.Type {
		case "STATE", "NCMD", "DCMD":
			continue
		case "NDEATH":
			if m.Payload.Seq != nil {
				t.Errorf("message %d %v: an NDEATH has a seq", i, m)
			}
			continue
		}
		if m.Payload.Seq == nil {
			t.Errorf("message %d %v: no seq", i, m)
			return
		}
		s := *m.Payload.Seq
		switch {
		case m.Type == "NBIRTH":
			if s != 0 {
				t.Errorf("message %d %v: an NBIRTH's seq is not 0", i, m)
			}
		case prev == nil:
			t.Errorf("message %d %v: before any NBIRTH", i, m)
		case s != (*prev+1)%256:
			t.Errorf("message %d %v: seq %d after %d", i, m, s, *prev)
		}
		prev = &s
	}
}

func spOptions(t testing.TB, b *broker) Options {
	o := testOptions(t, b)
	o.Format, o.GroupID, o.EdgeNodeID = FormatSparkplugB, "plant1", "gw1"
	o.BdSeqFile = filepath.Join(t.TempDir(), "bdseq")
	return o
}

func status(dev int, old, new string) store.Record {
	return store.Record{Kind: store.KindDeviceStatus, DeviceID: dev, TS: t0, BootID: "boot-1", ClockSynced: true,
		Status: &store.DeviceStatus{Old: old, New: new, Reason: "test"}}
}

func mustAppend(t testing.TB, st *store.Store, r store.Record) store.Record {
	t.Helper()
	r, err := st.Append(r)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return r
}

// TestSparkplugMessages: every message floorhub publishes decodes with
// Tahu; births declare names, datatypes, aliases and units, data uses the
// aliases; historical records are flagged; a device outage gives DDEATH
// and DBIRTH; NCMD Node Control/Rebirth gives fresh births; the seq runs
// on across all of it and wraps; alerts and device status keep their JSON
// topics.
func TestSparkplugMessages(t *testing.T) {
	dec := startTahu(t)
	b := startBroker(t)
	sp := newSPCollector(t, b, dec)
	js := newCollector(t, b, "central", "floorhub/gw1/#")
	st := openStore(t, filepath.Join(t.TempDir(), "fh.db"))

	// Stored before the uplink starts: a backlog, so historical.
	histLast := appendN(t, st, 0, 8) // devices 1..4, twice
	o := spOptions(t, b)
	o.BatchSize = 1 // a message per record: the seq wraps sooner
	u, err := New(st, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	runUplink(t, u)

	msgs := sp.waitFor("NBIRTH, 4 DBIRTHs and the backlog", 20*time.Second, func(m []spMsg) bool {
		return len(count(m, "DBIRTH", "")) >= 4 && len(count(m, "DDATA", "")) >= 8
	})
	nb := count(msgs, "NBIRTH", "")
	if len(nb) != 1 || nb[0].Topic != "spBv1.0/plant1/NBIRTH/gw1" || nb[0].bdSeq() != 0 {
		t.Fatalf("NBIRTHs %+v", nb)
	}
	var rebirth bool
	for _, m := range nb[0].Payload.Metrics {
		if m.Name == "Node Control/Rebirth" && m.Type == "Boolean" && m.Value == false {
			rebirth = true
		}
	}
	if !rebirth {
		t.Errorf("NBIRTH without Node Control/Rebirth = false: %+v", nb[0].Payload)
	}
	db := count(msgs, "DBIRTH", "1")[0]
	if db.Topic != "spBv1.0/plant1/DBIRTH/gw1/1" || len(db.Payload.Metrics) != 1 {
		t.Fatalf("DBIRTH of device 1: %s %+v", db.Topic, db.Payload)
	}
	bm := db.Payload.Metrics[0]
	if bm.Name != "temperature" || bm.Alias == nil || bm.Type != "Double" || bm.Properties["engUnit"].Value != "°C" {
		t.Errorf("DBIRTH metric %+v: want temperature, an alias, Double, engUnit °C", bm)
	}
	// Device 1's records (0 and 4): the first made the birth (its value
	// is the birth's), both are in the DDATA as historical.
	var dd []tahuMetric
	for _, m := range count(msgs, "DDATA", "1") {
		dd = append(dd, m.Payload.Metrics...)
	}
	if len(dd) != 2 {
		t.Fatalf("DDATA of device 1: %+v", dd)
	}
	for i, m := range dd {
		want := telemetry(4 * i)
		if m.Name != "" || m.Alias == nil || *m.Alias != *bm.Alias || !m.IsHistorical ||
			m.Value != want.Metrics[0].Value || m.Timestamp != uint64(want.TS.UnixMilli()) {
			t.Errorf("DDATA metric %d: %+v; want alias %d only, historical, value %v at %v", i, m, *bm.Alias, want.Metrics[0].Value, want.TS)
		}
	}

	// Live data: not historical.
	appendN(t, st, 100, 1)
	msgs = sp.waitFor("live DDATA", 20*time.Second, func(m []spMsg) bool { return len(count(m, "DDATA", "")) >= 9 })
	live := count(msgs, "DDATA", "")[8]
	if live.Payload.Metrics[0].IsHistorical {
		t.Errorf("a record stored after the birth is historical: %+v", live.Payload)
	}

	// A device outage: DDEATH, then DBIRTH when it is back.
	mustAppend(t, st, status(2, store.StatusOnline, store.StatusOffline))
	msgs = sp.waitFor("DDEATH of device 2", 20*time.Second, func(m []spMsg) bool { return len(count(m, "DDEATH", "2")) == 1 })
	mustAppend(t, st, status(2, store.StatusOffline, store.StatusOnline))
	msgs = sp.waitFor("device 2 born again", 20*time.Second, func(m []spMsg) bool { return len(count(m, "DBIRTH", "2")) == 2 })
	if last := msgs[len(msgs)-1]; last.Type != "DBIRTH" || last.Device != "2" || last.Payload.Metrics[0].Name != "temperature" {
		t.Errorf("after the device came back: %v", last)
	}

	// Rebirth on command, encoded by Tahu; DCMD is ignored.
	pub := func(topic string, payload []byte) {
		tok := js.client.Publish(topic, 1, false, payload)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	pub("spBv1.0/plant1/DCMD/gw1/1", dec.encode(t, `{"timestamp":1,"metrics":[{"name":"temperature","type":"Double","value":1}]}`))
	pub("spBv1.0/plant1/NCMD/gw1", dec.encode(t, `{"timestamp":1,"metrics":[{"name":"Node Control/Rebirth","type":"Boolean","value":true}]}`))
	msgs = sp.waitFor("a second NBIRTH and the DBIRTHs", 20*time.Second, func(m []spMsg) bool {
		return len(count(m, "NBIRTH", "")) == 2 && len(count(m, "DBIRTH", "")) >= 9
	})
	nb = count(msgs, "NBIRTH", "")
	if nb[1].bdSeq() != 0 {
		t.Errorf("rebirth on the same connection changed bdSeq to %d", nb[1].bdSeq())
	}

	// 300 more live records: the seq wraps. Every telemetry value
	// arrives in a DDATA: the 8 historical ones (the records that made
	// births too) and the 301 live ones.
	appendN(t, st, 200, 300)
	values := func(m []spMsg) int {
		n := 0
		for _, x := range count(m, "DDATA", "") {
			n += len(x.Payload.Metrics)
		}
		return n
	}
	all := sp.waitFor("every value", 30*time.Second, func(m []spMsg) bool { return values(m) >= int(histLast)+301 })
	checkSeqs(t, all)
	var wrapped bool
	for i := 1; i < len(all); i++ {
		if all[i].Payload.Seq != nil && all[i-1].Payload.Seq != nil && *all[i-1].Payload.Seq == 255 && *all[i].Payload.Seq == 0 {
			wrapped = true
		}
	}
	if !wrapped {
		t.Errorf("no 255 -> 0 step in %d messages", len(all))
	}
	if n := values(all); n != int(histLast)+301 {
		t.Errorf("%d values in DDATA, want %d", n, histLast+301)
	}

	// The JSON topics beside it: device status, and no JSON telemetry.
	js.waitUntil("the two device status records on JSON", 10*time.Second, func() bool { return js.kinds["devices"] >= 1 && len(js.seqs) >= 2 })
	js.mu.Lock()
	if js.kinds["telemetry"] != 0 {
		t.Errorf("%d JSON telemetry messages with format sparkplug_b", js.kinds["telemetry"])
	}
	js.mu.Unlock()
}

// distinctBirths returns the NBIRTHs in m, one per bdSeq. The collector's
// session outlives the broker's restart (both persist), so the broker may
// deliver a QoS 1 message it had not seen acknowledged once more: at least
// once, as MQTT promises.
func distinctBirths(m []spMsg) []spMsg {
	var out []spMsg
	seen := map[int64]bool{}
	for _, x := range count(m, "NBIRTH", "") {
		if !seen[x.bdSeq()] {
			seen[x.bdSeq()] = true
			out = append(out, x)
		}
	}
	return out
}

// TestSparkplugBdSeqAcrossReconnectAndHistoricalAfterOutage: the will is
// the NDEATH with the connection's bdSeq, the same as its NBIRTH's; the
// next connection uses the next bdSeq. Records stored while the broker was
// down arrive historical, later ones live.
func TestSparkplugBdSeqAcrossReconnectAndHistoricalAfterOutage(t *testing.T) {
	dec := startTahu(t)
	b := startBroker(t)
	sp := newSPCollector(t, b, dec)
	p := startProxy(t, b.Addr())
	st := openStore(t, filepath.Join(t.TempDir(), "fh.db"))
	o := spOptions(t, b)
	o.URL = "tcp://" + p.addr
	o.KeepAlive = 2 * time.Second
	u, err := New(st, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	runUplink(t, u)
	sp.waitFor("NBIRTH", 20*time.Second, func(m []spMsg) bool { return len(count(m, "NBIRTH", "")) == 1 })

	// A cut: the broker sends the will.
	p.cut()
	msgs := sp.waitFor("NDEATH and a second NBIRTH", 30*time.Second, func(m []spMsg) bool {
		return len(count(m, "NDEATH", "")) == 1 && len(count(m, "NBIRTH", "")) == 2
	})
	nb, nd := count(msgs, "NBIRTH", ""), count(msgs, "NDEATH", "")
	if nb[0].bdSeq() != 0 || nd[0].bdSeq() != 0 || nb[1].bdSeq() != 1 {
		t.Errorf("bdSeq: NBIRTH %d, NDEATH %d, next NBIRTH %d; want 0, 0, 1", nb[0].bdSeq(), nd[0].bdSeq(), nb[1].bdSeq())
	}
	if nd[0].Topic != "spBv1.0/plant1/NDEATH/gw1" || nd[0].Payload.Seq != nil {
		t.Errorf("NDEATH %s %+v", nd[0].Topic, nd[0].Payload)
	}

	// A broker outage with records stored meanwhile.
	b.stop()
	testkit.Eventually(t, "the uplink to notice", 20*time.Second, func() bool { return !u.Connected() })
	hist := appendN(t, st, 0, 50)
	if err := st.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.start()
	msgs = sp.waitFor("the third NBIRTH and the backlog", 30*time.Second, func(m []spMsg) bool {
		n := 0
		for _, x := range count(m, "DDATA", "") {
			n += len(x.Payload.Metrics)
		}
		return len(distinctBirths(m)) >= 3 && n >= 50
	})
	// Attempts that failed while the broker was down took bdSeqs too.
	third := distinctBirths(msgs)[2].bdSeq()
	if third < 2 {
		t.Errorf("bdSeq after the outage %d, want 2 or more", third)
	}
	appendN(t, st, 1000, 4)
	msgs = sp.waitFor("the live records", 30*time.Second, func(m []spMsg) bool {
		ts := map[uint64]bool{} // distinct: a message may come twice
		for _, x := range count(m, "DDATA", "") {
			for _, mt := range x.Payload.Metrics {
				ts[mt.Timestamp] = true
			}
		}
		return len(ts) >= 54
	})
	want := map[uint64]bool{} // metric timestamp -> historical
	for i := 0; i < 50; i++ {
		want[uint64(telemetry(i).TS.UnixMilli())] = true
	}
	for i := 1000; i < 1004; i++ {
		want[uint64(telemetry(i).TS.UnixMilli())] = false
	}
	got := map[uint64]bool{}
	for _, x := range count(msgs, "DDATA", "") {
		for _, m := range x.Payload.Metrics {
			got[m.Timestamp] = m.IsHistorical
		}
	}
	for ts, h := range want {
		if g, ok := got[ts]; !ok || g != h {
			t.Errorf("record at %d: arrived %v, historical %v; want historical %v", ts, ok, g, h)
		}
	}
	// Its will carries the same bdSeq.
	deaths := len(count(msgs, "NDEATH", ""))
	p.cut()
	msgs = sp.waitFor("one more NDEATH", 30*time.Second, func(m []spMsg) bool { return len(count(m, "NDEATH", "")) > deaths })
	if got := count(msgs, "NDEATH", "")[deaths].bdSeq(); got != third {
		t.Errorf("NDEATH bdSeq %d after an NBIRTH with %d", got, third)
	}
	// Every NDEATH (the broker's stop may send one too) carries the
	// bdSeq of the NBIRTH before it.
	var born int64 = -1
	for _, m := range msgs {
		switch m.Type {
		case "NBIRTH":
			born = m.bdSeq()
		case "NDEATH":
			if m.bdSeq() != born {
				t.Errorf("NDEATH with bdSeq %d after an NBIRTH with %d", m.bdSeq(), born)
			}
		}
	}
	checkSeqs(t, msgs)
	t.Logf("%d records stored during the outage (last seq %d)", 50, hist)
}

// TestSparkplugHelperProcess is the gateway in the kill -9 test: a store
// and the uplink, format sparkplug_b, until killed.
func TestSparkplugHelperProcess(t *testing.T) {
	if os.Getenv("FH_SP_HELPER") != "1" {
		t.Skip("helper process for TestSparkplugKill9")
	}
	st, err := store.Open(os.Getenv("FH_STORE"), &store.Options{CommitInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := New(st, nil, Options{URL: os.Getenv("FH_BROKER"), GatewayID: "gw1", Format: FormatSparkplugB,
		GroupID: "plant1", BdSeqFile: os.Getenv("FH_BDSEQ"), HeartbeatInterval: time.Hour,
		Backoff: backoff.Options{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	go u.Run(context.Background())
	appendN(t, st, 0, 4)
	select {} // until kill -9
}

// TestSparkplugKill9: across kill -9 and restart, each NBIRTH's bdSeq is
// the one the broker's will (NDEATH) then carries, and the next start uses
// the next bdSeq: it was on disk before the CONNECT.
func TestSparkplugKill9(t *testing.T) {
	dec := startTahu(t)
	b := startBroker(t)
	sp := newSPCollector(t, b, dec)
	dir := t.TempDir()
	bdseq := filepath.Join(dir, "bdseq")
	run := func(n int) {
		cmd := testkit.Reexec(t, "-test.run=^TestSparkplugHelperProcess$", "-test.v")
		cmd.Env = append(os.Environ(), "FH_SP_HELPER=1", "FH_STORE="+filepath.Join(dir, "fh.db"), "FH_BROKER="+b.URL(), "FH_BDSEQ="+bdseq)
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sp.waitFor(fmt.Sprintf("NBIRTH %d and data", n), 60*time.Second, func(m []spMsg) bool {
			return len(count(m, "NBIRTH", "")) == n && len(count(m, "DDATA", "")) >= 1
		})
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("child ended by %v, not by kill -9:\n%s", err, out)
		}
		sp.waitFor(fmt.Sprintf("NDEATH %d", n), 30*time.Second, func(m []spMsg) bool { return len(count(m, "NDEATH", "")) == n })
	}
	for n := 1; n <= 3; n++ {
		run(n)
	}
	sp.mu.Lock()
	msgs := append([]spMsg(nil), sp.msgs...)
	sp.mu.Unlock()
	nb, nd := count(msgs, "NBIRTH", ""), count(msgs, "NDEATH", "")
	for i := range nb {
		if nb[i].bdSeq() != int64(i) || nd[i].bdSeq() != int64(i) {
			t.Errorf("start %d: NBIRTH bdSeq %d, NDEATH bdSeq %d; want %d for both", i+1, nb[i].bdSeq(), nd[i].bdSeq(), i)
		}
	}
	checkSeqs(t, msgs)
}

// startHost connects a Primary Host "scada" to b; state publishes its
// retained STATE.
func startHost(t testing.TB, b *broker) (host paho.Client, state func(online bool, ts int)) {
	t.Helper()
	host = paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("host"))
	if tok := host.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("host connect: %v", tok.Error())
	}
	t.Cleanup(func() { host.Disconnect(0) })
	return host, func(online bool, ts int) {
		t.Helper()
		tok := host.Publish("spBv1.0/STATE/scada", 1, true, fmt.Sprintf(`{"online":%v,"timestamp":%d}`, online, ts))
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("STATE: %v", tok.Error())
		}
	}
}

// TestSparkplugPrimaryHost: with primary_host_id the node is born only
// once the host's STATE says online; the host going offline ends the
// session with an NDEATH; back online, a new session is born.
func TestSparkplugPrimaryHost(t *testing.T) {
	dec := startTahu(t)
	b := startBroker(t)
	sp := newSPCollector(t, b, dec)
	_, state := startHost(t, b)
	state(false, 10)
	st := openStore(t, filepath.Join(t.TempDir(), "fh.db"))
	appendN(t, st, 0, 4)
	o := spOptions(t, b)
	o.PrimaryHostID = "scada"
	u, err := New(st, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	js := newCollector(t, b, "central", "floorhub/gw1/#")
	runUplink(t, u)
	testkit.Eventually(t, "the uplink to connect", 20*time.Second, u.Connected)
	// The JSON topics do not wait for the host.
	alert := mustAppend(t, st, store.Record{Kind: store.KindAlert, DeviceID: 1, TS: t0, BootID: "boot-1", ClockSynced: true,
		Alert: &store.Alert{Rule: "r", Severity: "critical", Title: "t", State: store.AlertActive}})
	js.waitUntil("the alert on JSON while the host is offline", 20*time.Second, func() bool { return js.seqs[alert.Seq] > 0 })
	sp.mu.Lock()
	if n := len(count(sp.msgs, "NBIRTH", "")); n != 0 {
		t.Errorf("%d NBIRTHs while the host was offline", n)
	}
	sp.mu.Unlock()
	state(true, 20)
	msgs := sp.waitFor("NBIRTH after the host came online", 20*time.Second, func(m []spMsg) bool {
		return len(count(m, "NBIRTH", "")) == 1 && len(count(m, "DDATA", "")) >= 1
	})
	online := -1
	for i, m := range msgs {
		if m.Type == "STATE" && strings.Contains(string(m.Raw), `"online":true`) && online < 0 {
			online = i
		}
		if (m.Type == "NBIRTH" || m.Type == "DBIRTH" || m.Type == "DDATA") && (online < 0 || i < online) {
			t.Errorf("%v before the host's STATE online", m)
		}
	}
	state(false, 15) // stale: ignored
	state(false, 30)
	msgs = sp.waitFor("the NDEATH after the host went offline", 20*time.Second, func(m []spMsg) bool { return len(count(m, "NDEATH", "")) >= 1 })
	if nd := count(msgs, "NDEATH", ""); nd[0].bdSeq() != 0 {
		t.Errorf("NDEATH bdSeq %d, want 0", nd[0].bdSeq())
	}
	appendN(t, st, 100, 4)
	state(true, 40)
	msgs = sp.waitFor("a new birth", 20*time.Second, func(m []spMsg) bool { return len(count(m, "NBIRTH", "")) == 2 })
	if nb := count(msgs, "NBIRTH", ""); nb[1].bdSeq() < 1 {
		t.Errorf("second NBIRTH bdSeq %d, want a new one", nb[1].bdSeq())
	}
	var offlineAt int
	for i, m := range msgs {
		if m.Type == "STATE" && strings.Contains(string(m.Raw), `"timestamp":30`) {
			offlineAt = i
		}
	}
	for _, m := range msgs[offlineAt:] {
		if m.Type == "DDATA" || m.Type == "DBIRTH" {
			t.Errorf("%v while the host was offline", m)
		}
		if m.Type == "NBIRTH" {
			break
		}
	}
}

// TestSparkplugStateAfterCommandFlood: a flood of rebirth requests does
// not hide the Primary Host's STATE offline that follows it (STATE has
// its own hand-off), and the requests coalesce into few rebirths.
func TestSparkplugStateAfterCommandFlood(t *testing.T) {
	dec := startTahu(t)
	b := startBroker(t)
	sp := newSPCollector(t, b, dec)
	host := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("host"))
	if tok := host.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("host connect: %v", tok.Error())
	}
	t.Cleanup(func() { host.Disconnect(0) })
	state := func(online bool, ts int) paho.Token {
		return host.Publish("spBv1.0/STATE/scada", 1, true, fmt.Sprintf(`{"online":%v,"timestamp":%d}`, online, ts))
	}
	if tok := state(true, 10); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("STATE: %v", tok.Error())
	}
	st := openStore(t, filepath.Join(t.TempDir(), "fh.db"))
	appendN(t, st, 0, 4)
	o := spOptions(t, b)
	o.PrimaryHostID = "scada"
	u, err := New(st, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	runUplink(t, u)
	sp.waitFor("the NBIRTH", 20*time.Second, func(m []spMsg) bool { return len(count(m, "NBIRTH", "")) == 1 })

	const flood = 4 * spCommandQueue
	rebirth := dec.encode(t, `{"timestamp":1,"metrics":[{"name":"Node Control/Rebirth","type":"Boolean","value":true}]}`)
	toks := make([]paho.Token, 0, flood+1)
	for range flood {
		toks = append(toks, host.Publish("spBv1.0/plant1/NCMD/gw1", 1, false, rebirth))
	}
	toks = append(toks, state(false, 20))
	for _, tok := range toks {
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	msgs := sp.waitFor("the NDEATH after the flood and the STATE offline", 20*time.Second, func(m []spMsg) bool {
		return len(count(m, "NDEATH", "")) >= 1
	})
	n := len(count(msgs, "NBIRTH", "")) - 1
	if n < 1 || n >= flood {
		t.Errorf("%d rebirths for %d requests: want at least one, and fewer than the requests", n, flood)
	}
	t.Logf("%d rebirth requests gave %d rebirths", flood, n)
}

// TestSparkplugWaitsForTheHostOnEveryConnection: a connection lost while
// the Primary Host was online, and the host gone offline meanwhile: the
// next connection waits for a STATE online again before any birth or
// data (Sparkplug 3.0, operational-behavior-edge-node-birth-sequence-wait),
// rather than trusting what the last connection knew and sending the
// outage's backlog to a host that is not there.
func TestSparkplugWaitsForTheHostOnEveryConnection(t *testing.T) {
	b := startBroker(t)
	px := startProxy(t, b.Addr()) // the node's link, which the test cuts
	sp := newSPCollector(t, b, startTahu(t))
	_, state := startHost(t, b)
	state(true, 10)
	st := openStore(t, filepath.Join(t.TempDir(), "fh.db"))
	appendN(t, st, 0, 4)
	var logs testkit.Buffer
	o := spOptions(t, b)
	o.URL = "tcp://" + px.addr
	o.PrimaryHostID = "scada"
	o.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), &logs), nil))
	u, err := New(st, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	runUplink(t, u)
	sp.waitFor("the first birth", 20*time.Second, func(m []spMsg) bool {
		return len(count(m, "NBIRTH", "")) == 1 && len(count(m, "DDATA", "")) >= 1
	})

	px.down()
	testkit.Eventually(t, "the uplink to notice the lost link", 30*time.Second, func() bool { return !u.Connected() })
	state(false, 20) // retained: the next connection reads it first thing
	appendN(t, st, 100, 4)
	px.up()
	// The second connection has read the retained STATE offline.
	testkit.Eventually(t, "the STATE offline read on a new connection", 30*time.Second, func() bool {
		return strings.Count(logs.String(), "primary host state") >= 2
	})
	state(true, 30)
	msgs := sp.waitFor("a birth after the host is back", 20*time.Second, func(m []spMsg) bool {
		back := false
		for _, x := range m {
			back = back || x.Type == "STATE" && strings.Contains(string(x.Raw), `"timestamp":30`)
			if back && x.Type == "NBIRTH" {
				return true
			}
		}
		return false
	})
	offline := false
	for _, m := range msgs {
		if m.Type == "STATE" {
			offline = strings.Contains(string(m.Raw), `"online":false`)
		}
		if offline && (m.Type == "NBIRTH" || m.Type == "DBIRTH" || m.Type == "DDATA") {
			t.Errorf("%v while the host was offline", m)
		}
	}
}

// TestSparkplugCommandFloodLogsLittle: a central side that floods the
// node with commands it ignores (DCMDs, NCMDs without a rebirth,
// malformed NCMDs), more than the queue holds, does not write a log line
// per message: a plant's journal would fill with them.
func TestSparkplugCommandFloodLogsLittle(t *testing.T) {
	dec := startTahu(t)
	b := startBroker(t)
	sp := newSPCollector(t, b, dec)
	host, _ := startHost(t, b)
	st := openStore(t, filepath.Join(t.TempDir(), "fh.db"))
	appendN(t, st, 0, 4)
	var logs testkit.Buffer
	o := spOptions(t, b)
	o.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), &logs), nil))
	u, err := New(st, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	runUplink(t, u)
	sp.waitFor("the NBIRTH", 20*time.Second, func(m []spMsg) bool { return len(count(m, "NBIRTH", "")) == 1 })

	const flood = 200
	noRebirth := dec.encode(t, `{"timestamp":1,"metrics":[{"name":"Node Control/Reboot","type":"Boolean","value":true}]}`)
	write := dec.encode(t, `{"timestamp":1,"metrics":[{"name":"setpoint","type":"Double","value":1.5}]}`)
	var toks []paho.Token
	for range flood {
		toks = append(toks,
			host.Publish("spBv1.0/plant1/DCMD/gw1/1", 1, false, write),
			host.Publish("spBv1.0/plant1/NCMD/gw1", 1, false, noRebirth),
			host.Publish("spBv1.0/plant1/NCMD/gw1", 1, false, []byte("\xff\xff not protobuf")))
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	// A rebirth after the flood (again, if the full queue dropped it)
	// tells that the node has handled or dropped every message before it.
	rebirth := dec.encode(t, `{"timestamp":1,"metrics":[{"name":"Node Control/Rebirth","type":"Boolean","value":true}]}`)
	testkit.Eventually(t, "a rebirth after the flood", 20*time.Second, func() bool {
		host.Publish("spBv1.0/plant1/NCMD/gw1", 1, false, rebirth).Wait()
		return testkit.WaitTrue(time.Second, func() bool {
			sp.mu.Lock()
			defer sp.mu.Unlock()
			return len(count(sp.msgs, "NBIRTH", "")) >= 2
		})
	})
	lines := 0
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "DCMD") || strings.Contains(l, "NCMD") || strings.Contains(l, "command queue full") {
			lines++
		}
	}
	t.Logf("%d log lines for %d ignored commands", lines, 3*flood)
	if lines > 10 {
		t.Errorf("%d log lines for %d ignored commands; want a few", lines, 3*flood)
	}
}

func TestQuietLog(t *testing.T) {
	var q quietLog
	for i, tc := range []struct {
		at      time.Duration
		ok      bool
		leftOut int
	}{
		{0, true, 0}, // the first at once
		{time.Second, false, 0},
		{59 * time.Second, false, 0},
		{time.Minute, true, 2}, // a minute after the last logged, with the two left out
		{time.Minute + time.Second, false, 0},
		{3 * time.Minute, true, 1},
		{5 * time.Minute, true, 0},
	} {
		ok, n := q.allow(t0.Add(tc.at))
		if ok != tc.ok || n != tc.leftOut {
			t.Errorf("step %d at %v: %v, %d; want %v, %d", i, tc.at, ok, n, tc.ok, tc.leftOut)
		}
	}
}

// TestSparkplugHugeNCMDCostsLittleMemory: an NCMD of half a million empty
// metrics (1 MiB, the most the connection takes) is looked through for a
// rebirth request without building every metric: a gateway on a 32-bit
// Pi must not spend a hundred times the message's size on it.
func TestSparkplugHugeNCMDCostsLittleMemory(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "fh.db"))
	o := spOptions(t, &broker{Port: 1})
	o.URL = "tcp://127.0.0.1:1"
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	u, err := New(st, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	// Field 2 (metrics), empty, over and over; the rebirth request last.
	payload := bytes.Repeat([]byte{0x12, 0x00}, (1<<20)/2-64)
	rebirth := []byte{0x0a, 20}
	rebirth = append(rebirth, "Node Control/Rebirth"...)
	rebirth = append(rebirth, 0x20, 11, 0x70, 1) // datatype Boolean, boolean_value true
	payload = append(payload, 0x12, byte(len(rebirth)))
	payload = append(payload, rebirth...)
	msg := mqttwire.Message{Topic: "spBv1.0/plant1/NCMD/gw1", Payload: payload}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	yes, err := u.spMessage(msg)
	runtime.ReadMemStats(&after)
	if err != nil || !yes {
		t.Fatalf("spMessage = %v, %v; want a rebirth request", yes, err)
	}
	t.Logf("%d KiB allocated", (after.TotalAlloc-before.TotalAlloc)>>10)
	if n := after.TotalAlloc - before.TotalAlloc; n > 4<<20 {
		t.Errorf("a %d KiB NCMD allocated %d MiB", len(payload)>>10, n>>20)
	}
}

// A command or STATE over the packet limit reaches spMessage without its
// payload (mqttwire skipped it): ignored with a warning, never taken for a
// STATE offline or a rebirth request.
func TestSparkplugSkippedMessageIgnored(t *testing.T) {
	o := spOptions(t, &broker{Port: 1})
	o.PrimaryHostID = "scada"
	for _, topic := range []string{"spBv1.0/plant1/NCMD/gw1", sparkplug.StateTopic("scada")} {
		u, logs := offlineUplink(t, o) // a new one: its first warning is written
		rebirth, err := u.spMessage(mqttwire.Message{Topic: topic, Skipped: 2 << 20, Retained: true})
		if rebirth || err != nil {
			t.Errorf("%s: spMessage = %v, %v; want ignored", topic, rebirth, err)
		}
		if !strings.Contains(logs.String(), "over the packet limit") || !strings.Contains(logs.String(), "bytes=2097152") {
			t.Errorf("%s: log %q", topic, logs.String())
		}
	}
}

// A Primary Host that publishes STATE over and over (the same state, newer
// timestamps) gets one log line a minute; a change of state is always
// logged.
func TestSparkplugStateFloodLogsLittle(t *testing.T) {
	o := spOptions(t, &broker{Port: 1})
	o.PrimaryHostID = "scada"
	u, logs := offlineUplink(t, o)
	state := func(online bool, ts int) error {
		_, err := u.spMessage(mqttwire.Message{Topic: sparkplug.StateTopic("scada"),
			Payload: fmt.Appendf(nil, `{"online":%v,"timestamp":%d}`, online, ts)})
		return err
	}
	for i := range 100 {
		if err := state(true, i+1); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "primary host state"); n != 1 {
		t.Errorf("100 STATE online: %d log lines, want 1", n)
	}
	if err := state(false, 200); !errors.Is(err, errHostOffline) {
		t.Fatalf("STATE offline: %v", err)
	}
	if n := strings.Count(logs.String(), "primary host state"); n != 2 || !strings.Contains(logs.String(), "online=false") {
		t.Errorf("after STATE offline: %d log lines, want 2:\n%s", n, logs.String())
	}
}

// A central side that sends bad commands in a loop gets every result, and
// the journal one "command refused" line a minute.
func TestRefusedCommandsLogLittle(t *testing.T) {
	u, logs := offlineUplink(t, testOptions(t, &broker{Port: 1}))
	for range 100 {
		res := u.runCommand(context.Background(), mqttwire.Message{Topic: u.topic.cmd + "ping", Payload: []byte("{bad")})
		if res.OK || res.Error != "malformed" {
			t.Fatalf("result %+v", res)
		}
	}
	if n := strings.Count(logs.String(), "command refused"); n != 1 {
		t.Errorf("100 bad commands: %d log lines, want 1", n)
	}
}

// offlineUplink is an Uplink on o that is never run (its broker address
// refuses), for calling its message handlers directly; its log is
// returned.
func offlineUplink(t *testing.T, o Options) (*Uplink, *bytes.Buffer) {
	t.Helper()
	o.URL = "tcp://127.0.0.1:1"
	logs := &bytes.Buffer{}
	o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	u, err := New(openStore(t, filepath.Join(t.TempDir(), "fh.db")), nil, o)
	if err != nil {
		t.Fatal(err)
	}
	return u, logs
}
