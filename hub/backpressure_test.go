package hub

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/floorhub/floorhub/hub/wsconn"
	"github.com/floorhub/floorhub/internal/testkit"
)

// A client that never reads delays nobody: a reading client gets every
// alert, in order, while the stalled one fills its buffers and is dropped.
func TestStalledClientDoesNotDelayOthers(t *testing.T) {
	// No write deadline to speak of: were the fan-out to wait on the
	// stalled client even once, the good one would wait an hour.
	th := newSmallBufHub(t, limitless, func(o *Options) { o.Conn.WriteWait = time.Hour })
	stalled := th.dialSlow(t, "/ws/alerts?token="+token(t, "stalled"))
	good := th.login(t, "/ws/alerts", "good")
	good.readType("subscribed")
	eventually(t, "both clients subscribed", func() bool { return len(*th.snap[chAlerts].Load()) == 2 })

	const total, chunk = 2000, 100
	seq := uint64(0)
	for seq < total {
		for range chunk {
			seq++
			a := alert(seq, 1, "critical", "temp_high")
			a.Alert.Message = strings.Repeat("x", 400) // ~600 bytes per message
			th.Publish(a)
		}
		// Each chunk must reach the good client however stuck the other is.
		for want := seq - chunk + 1; want <= seq; want++ {
			if m := good.readType("alert"); seqOf(m) != want {
				t.Fatalf("good client got seq %d, want %d", seqOf(m), want)
			}
		}
	}
	// The stalled client's queue overflowed: once it reads again it finds
	// what was already on its socket, then the close frame telling it
	// where to resume. The good one is still there.
	code, reason := stalled.closeCode()
	if code != wsconn.CloseSlowConsumer || !strings.Contains(reason, "since=") {
		t.Fatalf("stalled client closed with %d %q, want %d with since=", code, reason, wsconn.CloseSlowConsumer)
	}
	eventually(t, "the stalled client to be dropped", func() bool { return th.Connections() == 1 })
	good.send(map[string]any{"type": "ping"})
	good.readType("pong")
}

// A slow client's telemetry coalesces: the newest value per device and
// metric wins, seqs stay increasing, and no alert is lost or reordered.
func TestSlowClientCoalescesTelemetry(t *testing.T) {
	// The client reads nothing until all 3000 records are out, so its writes
	// make no progress meanwhile: on the wall clock a loaded machine can take
	// longer than StallTimeout for that, and the client would rightly be
	// dropped as stalled. Its stall clock is the test's, which stands still:
	// this test is about coalescing, TestStalled* about the stall rule.
	th := newSmallBufHub(t, limitless, func(o *Options) {
		o.Conn.Now = testkit.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)).Now
	})
	slow := th.dialSlow(t, "/ws?token="+token(t, "slow"))
	slow.readType("auth_response")
	slow.send(map[string]any{"type": "subscribe", "channel": "telemetry"})
	slow.readType("subscribed")
	slow.send(map[string]any{"type": "subscribe", "channel": "alerts"})
	slow.readType("subscribed")

	const total = 3000
	var alerts []uint64
	last := map[int]float64{}
	pad := strings.Repeat("p", 300)
	for seq := uint64(1); seq <= total; seq++ {
		if seq%100 == 0 {
			a := alert(seq, 1, "critical", "temp_high")
			a.Alert.Title = pad
			th.Publish(a)
			alerts = append(alerts, seq)
			continue
		}
		dev := int(seq % 2)
		r := telemetry(seq, dev, float64(seq), float64(seq)/2)
		r.Metrics[0].Unit = pad // bulk
		th.Publish(r)
		last[dev] = float64(seq)
	}
	eventually(t, "the fan-out of every record", func() bool { return th.lastSeq.Load() == total })

	// Now read everything.
	var gotAlerts []uint64
	gotLast := map[int]float64{}
	prev, telCount := uint64(0), 0
	for gotLast[0] != last[0] || gotLast[1] != last[1] || len(gotAlerts) < len(alerts) {
		m := slow.read()
		s := seqOf(m)
		if s <= prev {
			t.Fatalf("seq %d after %d: out of order", s, prev)
		}
		prev = s
		switch m["type"] {
		case "alert":
			gotAlerts = append(gotAlerts, s)
		case "telemetry_update":
			telCount++
			dev := int(m["device_id"].(float64))
			v := m["telemetry"].(map[string]any)["temperature"].(map[string]any)["value"].(float64)
			if v != float64(s) {
				t.Fatalf("telemetry seq %d carries temperature %v: the seq must be the newest value's", s, v)
			}
			gotLast[dev] = v
		default:
			t.Fatalf("unexpected %v", m)
		}
	}
	if fmt.Sprint(gotAlerts) != fmt.Sprint(alerts) {
		t.Fatalf("alerts %v, want %v", gotAlerts, alerts)
	}
	if telCount >= total-len(alerts) {
		t.Fatalf("%d telemetry updates for %d records: nothing was coalesced (the client was not slow?)", telCount, total-len(alerts))
	}
	t.Logf("%d telemetry records delivered as %d updates", total-len(alerts), telCount)
}

// When alerts overflow a slow client's queue it is disconnected with 1013
// and a reason naming the seq to resume from.
func TestAlertOverflowDisconnects(t *testing.T) {
	th := newSmallBufHub(t, limitless, func(o *Options) { o.Conn.QueueLen = 16 })
	slow := th.dialSlow(t, "/ws/alerts?token="+token(t, "slow"))
	eventually(t, "the subscription", func() bool { return len(*th.snap[chAlerts].Load()) == 1 })
	for seq := uint64(1); seq <= 1000; seq++ {
		a := alert(seq, 1, "critical", "r")
		a.Alert.Message = strings.Repeat("x", 400)
		th.Publish(a)
	}
	eventually(t, "the fan-out", func() bool { return th.lastSeq.Load() == 1000 })
	prev := uint64(0)
	for {
		slow.ws.SetReadDeadline(time.Now().Add(wait))
		_, data, err := slow.ws.ReadMessage()
		if err != nil {
			ce, ok := err.(*websocket.CloseError)
			if !ok || ce.Code != websocket.CloseTryAgainLater || !strings.Contains(ce.Text, "since=") {
				t.Fatalf("ended with %v, want close 1013 naming since=", err)
			}
			t.Logf("closed: %d %q after seq %d", ce.Code, ce.Text, prev)
			break
		}
		if strings.Contains(string(data), `"type":"alert"`) {
			var s uint64
			fmt.Sscanf(string(data[strings.Index(string(data), `"seq":`)+6:]), "%d", &s)
			if s != prev+1 {
				t.Fatalf("seq %d after %d: a gap before the disconnect", s, prev)
			}
			prev = s
		}
	}
	if prev >= 1000 {
		t.Fatalf("every alert was delivered: the queue never overflowed")
	}
}
