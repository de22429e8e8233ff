package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/floorhub/floorhub/internal/testkit"
)

// TestDashboardAckOnMQTT: an acknowledgement made on the page is stored and
// forwarded by the MQTT uplink (topic <prefix>/<gateway>/alerts/ack), and
// the uplink's health shows on the page.
func TestDashboardAckOnMQTT(t *testing.T) {
	bin, dir := prepare(t)
	broker := testkit.Mosquitto(t)
	cfg := writeConfig(t, dir, anyPort, "", "gateway_id: e2e-gw\nuplink:\n  mqtt: {url: \""+broker+"\"}\n")

	acks := make(chan paho.Message, 16)
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID("center"))
	if tok := sub.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("connecting to mosquitto: %v", tok.Error())
	}
	defer sub.Disconnect(0)
	if tok := sub.Subscribe("+/e2e-gw/alerts/ack", 1, func(_ paho.Client, m paho.Message) { acks <- m }); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribing: %v", tok.Error())
	}

	ag := startAgent(t, bin, cfg)
	a := newBrowser(t, "http://"+ag.Addr, filepath.Join(dir, "profile"), 1280, 900)
	a.openWithToken(t, ag.Token)
	a.wait(t, "the live state", 15*time.Second, live)
	a.wait(t, "the MQTT uplink connected", 20*time.Second, `document.querySelector('#uplinks tr[data-name="mqtt"] .dot.ok')`)
	a.wait(t, "the active alert", 10*time.Second, `document.querySelector('#alertlist .alert[data-state="active"] .ackb')`)
	a.run(t, chromedp.SendKeys(chromedp.CSS(`#alertlist .alert[data-state="active"] input`), "checked the fan"))
	a.click(t, `#alertlist .alert[data-state="active"] .ackb`)
	a.wait(t, "the hub's answer to the acknowledgement", 10*time.Second, `document.querySelector("#alertlist .ack") || document.getElementById("acknote").textContent`)
	if note := eval[string](t, a, `document.getElementById("acknote").textContent`); strings.Contains(note, "newer agent") {
		t.Skip("this agent has no ack_alert action yet")
	}
	a.shot(t, "uplink-and-ack")

	select {
	case m := <-acks:
		var msg struct {
			Records []struct {
				Seq  uint64 `json:"seq"`
				Kind string `json:"kind"`
				Ack  struct {
					By   string `json:"acknowledged_by"`
					Note string `json:"note"`
				} `json:"ack"`
			} `json:"records"`
		}
		if err := json.Unmarshal(m.Payload(), &msg); err != nil {
			t.Fatalf("%s: %v: %s", m.Topic(), err, m.Payload())
		}
		if len(msg.Records) != 1 {
			t.Fatalf("%s: %s, want one record", m.Topic(), m.Payload())
		}
		if rec := msg.Records[0]; rec.Kind != "alert_ack" || rec.Ack.By != "operator" || rec.Ack.Note != "checked the fan" || rec.Seq == 0 {
			t.Errorf("%s: %s, want the operator's acknowledgement with its note and seq", m.Topic(), m.Payload())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no acknowledgement on MQTT within 20 s")
	}
}
