package agent

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/floorhub/floorhub/internal/testkit"
)

// central is the control room on a real broker, for the tests of commands
// sent over the MQTT uplink: a paho client that sends commands to gateway
// gw-1 (topic prefix floorhub) and collects its command results.
type central struct {
	t *testing.T
	c paho.Client

	// mu guards results and whatever the test's subscribe callbacks
	// write: they run on paho's goroutine, holding mu.
	mu      sync.Mutex
	results map[string]map[string]any // the cmd_result messages by request_id
}

// startOverMQTT starts a real mosquitto, the agent as gateway gw-1 with
// its MQTT uplink on that broker and the rest of its config in yaml
// (devices, rules; at least one device), and the control room on the same
// broker. It returns once the uplink serves: a command published before
// the uplink has subscribed to commands is dropped by the broker (nobody
// subscribes), and the uplink publishes only once its subscription is in
// place, so the first reading on telemetry shows it.
func startOverMQTT(t *testing.T, yaml string) (*running, *central) {
	t.Helper()
	broker := testkit.Mosquitto(t)
	r := start(t, "gateway_id: gw-1\nlisten: "+anyPort+"\nuplink:\n  mqtt: {url: \""+broker+"\"}\n"+yaml)
	c := newCentral(t, broker)
	serving := false
	c.subscribe("floorhub/gw-1/telemetry", func(paho.Message) { serving = true })
	testkit.Eventually(t, "a reading on telemetry (the uplink serves)", 20*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return serving
	})
	return r, c
}

// newCentral connects to broker as "central" and subscribes to gw-1's
// command results; it disconnects at the end of the test.
func newCentral(t *testing.T, broker string) *central {
	t.Helper()
	c := &central{t: t, results: map[string]map[string]any{}}
	c.c = paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID("central").SetAutoReconnect(false))
	if tok := c.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.c.Disconnect(0) })
	c.subscribe("floorhub/gw-1/cmd_result", func(m paho.Message) {
		var res map[string]any
		json.Unmarshal(m.Payload(), &res)
		if id, ok := res["request_id"].(string); ok {
			c.results[id] = res
		}
	})
	return c
}

// subscribe calls f with each message on topic, holding c.mu.
func (c *central) subscribe(topic string, f func(m paho.Message)) {
	c.t.Helper()
	handle := func(_ paho.Client, m paho.Message) {
		c.mu.Lock()
		defer c.mu.Unlock()
		f(m)
	}
	if tok := c.c.Subscribe(topic, 1, handle); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		c.t.Fatalf("subscribe %s: %v", topic, tok.Error())
	}
}

// command publishes the command name with its JSON payload (QoS 1) and
// returns once the broker has it.
func (c *central) command(name, payload string) {
	c.t.Helper()
	if tok := c.c.Publish("floorhub/gw-1/cmd/"+name, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		c.t.Fatalf("publish: %v", tok.Error())
	}
}
