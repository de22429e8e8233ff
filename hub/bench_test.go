package hub

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/floorhub/floorhub/store"
)

// BenchmarkTelemetryVsRaw measures the hub's telemetry fan-out to 200
// subscribers on real sockets against a baseline in the same run: the
// least a server can do (gorilla's chat-example shape: one goroutine per
// connection writing pre-encoded messages from a channel). The ratio of
// their ns/delivery is the hub's overhead (auth, filters, queues,
// coalescing, encoding).
//
//	go test -run '^$' -bench TelemetryVsRaw -benchtime 3000x ./hub
func BenchmarkTelemetryVsRaw(b *testing.B) {
	b.Run("raw", func(b *testing.B) { benchDeliveries(b, rawServer) })
	b.Run("hub", func(b *testing.B) { benchDeliveries(b, hubServer) })
}

// BenchmarkStalledClients runs the hub's telemetry fan-out to 200
// subscribers without and with 10 more subscribers that never read
// (small receive buffers, so their sockets fill at once). With -count N
// the two alternate; compare their p99-ms (the time until every reading
// client has a record) and ns/delivery.
//
//	go test -run '^$' -bench StalledClients -benchtime 3000x -count 5 ./hub
func BenchmarkStalledClients(b *testing.B) {
	b.Run("none", func(b *testing.B) { benchDeliveries(b, hubServer) })
	b.Run("10-stalled", func(b *testing.B) {
		benchDeliveries(b, func(b *testing.B) (string, func(int)) {
			url, publish := hubServer(b)
			th := &testHub{url: strings.SplitN(url, "/ws", 2)[0]}
			for range 10 {
				th.dialSlow(b, "/ws/telemetry?token="+token(b, "stalled")) // never read
			}
			return url, publish
		})
	})
}

const (
	benchClients = 200
	benchWindow  = 8 // records in flight
)

// A benchServer returns the URL clients dial and the function that
// publishes record i.
type benchServer func(b *testing.B) (url string, publish func(i int))

func hubServer(b *testing.B) (string, func(int)) {
	th := newTestHub(b, limitless, func(o *Options) {
		o.Conn.MaxConnsPerUser = -1
	})
	tok := token(b, "bench")
	return th.url + "/ws/telemetry?token=" + tok, func(i int) {
		th.Publish(store.Record{Seq: uint64(i + 1), Kind: store.KindTelemetry, DeviceID: i % (2 * benchWindow),
			TS: time.Now(), ClockSynced: true, Metrics: []store.Metric{{Name: "temperature", Value: 21.5, Unit: "°C"}}})
	}
}

func rawServer(b *testing.B) (string, func(int)) {
	var mu sync.Mutex
	var outs []chan []byte
	up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferPool: &sync.Pool{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		out := make(chan []byte, 256)
		mu.Lock()
		outs = append(outs, out)
		mu.Unlock()
		ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribed"}`))
		go func() {
			for m := range out {
				ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if ws.WriteMessage(websocket.TextMessage, m) != nil {
					break
				}
			}
			ws.Close()
		}()
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}))
	b.Cleanup(func() {
		mu.Lock()
		for _, o := range outs {
			close(o)
		}
		mu.Unlock()
		srv.Close()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http"), func(i int) {
		r := store.Record{Seq: uint64(i + 1), Kind: store.KindTelemetry, DeviceID: i % (2 * benchWindow),
			TS: time.Now(), ClockSynced: true, Metrics: []store.Metric{{Name: "temperature", Value: 21.5, Unit: "°C"}}}
		data := mustJSON(newTelemetry(&r, nil))
		mu.Lock()
		for _, o := range outs {
			o <- data
		}
		mu.Unlock()
	}
}

func benchDeliveries(b *testing.B, server benchServer) {
	url, publish := server(b)
	n := b.N
	remaining := make([]atomic.Int32, n)
	for i := range remaining {
		remaining[i].Store(benchClients)
	}
	done := make(chan int, n)
	var wg sync.WaitGroup
	var conns []*websocket.Conn
	for range benchClients {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			b.Fatal(err)
		}
		for { // until subscribed
			_, data, err := ws.ReadMessage()
			if err != nil {
				b.Fatal(err)
			}
			if strings.Contains(string(data), `"subscribed"`) {
				break
			}
		}
		conns = append(conns, ws)
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := []byte(`"seq":`)
			for {
				_, data, err := ws.ReadMessage()
				if err != nil {
					return
				}
				s := string(data)
				j := strings.Index(s, string(key))
				if j < 0 {
					continue
				}
				seq := 0
				for _, ch := range s[j+len(key):] {
					if ch < '0' || ch > '9' {
						break
					}
					seq = seq*10 + int(ch-'0')
				}
				if seq >= 1 && seq <= n && remaining[seq-1].Add(-1) == 0 {
					done <- seq - 1
				}
			}
		}()
	}
	sentAt := make([]time.Time, n)
	lat := make([]time.Duration, 0, n)
	complete := func() {
		i := <-done
		lat = append(lat, time.Since(sentAt[i]))
	}
	b.ResetTimer()
	start := time.Now()
	inflight := 0
	for i := 0; i < n; i++ {
		if inflight == benchWindow {
			complete()
			inflight--
		}
		sentAt[i] = time.Now()
		publish(i)
		inflight++
	}
	for ; inflight > 0; inflight-- {
		complete()
	}
	elapsed := time.Since(start)
	b.StopTimer()
	for _, ws := range conns {
		ws.Close()
	}
	wg.Wait()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n*benchClients), "ns/delivery")
	b.ReportMetric(float64(n*benchClients)/elapsed.Seconds(), "deliveries/s")
}
