package hub

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/internal/testkit"
	"github.com/floorhub/floorhub/store"
)

// BenchmarkFanout200 compares group fan-out among 200 clients on the V3
// endpoint with the first API's telemetry fan-out to 200 subscribers, in
// the same run, on real sockets. Every message goes to all 200 clients;
// at most fanWindow messages are in flight (a message is complete once all
// 200 have it). Reported: deliveries/s (messages received by clients per
// second) and the p99 latency of a delivery (from the send, or from
// Publish, to its arrival at a client).
//
// The V3 path includes one more hop than the first API's: the sender is a
// WebSocket client whose message the hub decodes, validates and routes;
// the first API's records come from an in-process Publish.
//
//	go test -run '^$' -bench Fanout200 -benchtime 2000x ./hub
func BenchmarkFanout200(b *testing.B) {
	b.Run("v3-group", benchV3Group)
	b.Run("api-telemetry", benchAPITelemetry)
}

const (
	fanClients = 200
	fanWindow  = 8
)

// fanStats collects deliveries and completes messages.
type fanStats struct {
	sent      []atomic.Int64 // unix nanoseconds of each send, by index
	remaining []atomic.Int32 // clients still to receive each message
	complete  chan int
	mu        sync.Mutex
	lat       []time.Duration
}

func newFanStats(n int) *fanStats {
	s := &fanStats{sent: make([]atomic.Int64, n), remaining: make([]atomic.Int32, n), complete: make(chan int, n)}
	for i := range s.remaining {
		s.remaining[i].Store(fanClients)
	}
	return s
}

func (s *fanStats) received(i int, now time.Time, lat *[]time.Duration) {
	*lat = append(*lat, now.Sub(time.Unix(0, s.sent[i].Load())))
	if s.remaining[i].Add(-1) == 0 {
		s.complete <- i
	}
}

func (s *fanStats) merge(lat []time.Duration) {
	s.mu.Lock()
	s.lat = append(s.lat, lat...)
	s.mu.Unlock()
}

func (s *fanStats) report(b *testing.B, elapsed time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	slices.Sort(s.lat)
	if len(s.lat) == 0 {
		return
	}
	p := func(q float64) float64 {
		return float64(s.lat[int(q*float64(len(s.lat)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(s.lat))/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(p(0.50), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
}

// sendWindowed calls send(i) for every message, keeping at most fanWindow
// incomplete.
func (s *fanStats) sendWindowed(n int, send func(i int)) {
	for i := 0; i < n; i++ {
		if i >= fanWindow {
			<-s.complete
		}
		s.sent[i].Store(time.Now().UnixNano())
		send(i)
	}
	for i := max(0, n-fanWindow); i < n; i++ {
		<-s.complete
	}
}

func fanEnv(b *testing.B) *v3env {
	return newV3Env(b, func(o *Options, _ *V3Options) {
		o.Conn.MessagesPerSecond = 1 << 20 // the sender's rate is what is measured
		o.Conn.MaxConnsPerUser = -1
		o.Conn.MaxMessageBytes = 4096
	})
}

// fanReader reads a client until it ends, handing each message's index to
// got; it returns when the connection closes.
func fanReader(ws *websocket.Conn, index func([]byte) (int, bool), s *fanStats, wg *sync.WaitGroup) {
	defer wg.Done()
	var lat []time.Duration
	defer func() { s.merge(lat) }()
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		if i, ok := index(data); ok {
			s.received(i, time.Now(), &lat)
		}
	}
}

func benchV3Group(b *testing.B) {
	e := fanEnv(b)
	n := b.N
	s := newFanStats(n)
	var wg sync.WaitGroup
	conns := make([]*websocket.Conn, fanClients)
	index := func(data []byte) (int, bool) {
		var m struct {
			MsgType string `json:"msg_type"`
			Msg     string `json:"msg"`
		}
		if json.Unmarshal(data, &m) != nil || m.MsgType != "msg" {
			return 0, false // presence
		}
		i, err := strconv.Atoi(m.Msg)
		return i, err == nil
	}
	for i := range conns {
		hdr := http.Header{"Authorization": {"Bearer " + v3token(b, fmt.Sprintf("u%d", i), auth.Claims{})}}
		ws, _, err := websocket.DefaultDialer.Dial(e.url("bench", fmt.Sprintf("c%d", i)), hdr)
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = ws
		wg.Add(1)
		go fanReader(ws, index, s, &wg)
	}
	testkit.Eventually(b, "the clients to join", 30*time.Second, func() bool { return len(e.v3.Members("bench")) >= fanClients })
	sender := conns[0]
	b.ResetTimer()
	start := time.Now()
	s.sendWindowed(n, func(i int) {
		msg := `{"msg_type":"msg","target":"group","msg":"` + strconv.Itoa(i) + `","payload":{"temperature":21.5,"unit":"°C"}}`
		if err := sender.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			b.Fatal(err)
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	for _, ws := range conns {
		ws.Close()
	}
	wg.Wait()
	s.report(b, elapsed)
}

func benchAPITelemetry(b *testing.B) {
	e := fanEnv(b)
	n := b.N
	s := newFanStats(n)
	var wg sync.WaitGroup
	conns := make([]*websocket.Conn, fanClients)
	index := func(data []byte) (int, bool) {
		if !strings.Contains(string(data[:min(len(data), 40)]), "telemetry_update") {
			return 0, false
		}
		var m struct {
			Seq uint64 `json:"seq"`
		}
		if json.Unmarshal(data, &m) != nil || m.Seq == 0 {
			return 0, false
		}
		return int(m.Seq - 1), true
	}
	for i := range conns {
		tok := v3token(b, fmt.Sprintf("u%d", i), auth.Claims{})
		url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/ws/telemetry?token=" + tok
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			b.Fatal(err)
		}
		// Wait for the subscription before measuring.
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				b.Fatal(err)
			}
			if strings.Contains(string(data), `"subscribed"`) {
				break
			}
		}
		conns[i] = ws
		wg.Add(1)
		go fanReader(ws, index, s, &wg)
	}
	b.ResetTimer()
	start := time.Now()
	s.sendWindowed(n, func(i int) {
		// A device per window slot: a message never coalesces with one
		// still in flight, so every client gets every message.
		e.hub.Publish(store.Record{Seq: uint64(i + 1), Kind: store.KindTelemetry, DeviceID: 1 + i%(2*fanWindow),
			TS: time.Now(), BootID: "bench", ClockSynced: true,
			Metrics: []store.Metric{{Name: "temperature", Value: 21.5, Unit: "°C"}}})
	})
	elapsed := time.Since(start)
	b.StopTimer()
	for _, ws := range conns {
		ws.Close()
	}
	wg.Wait()
	s.report(b, elapsed)
}
