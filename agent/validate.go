package agent

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/hub"
	"github.com/floorhub/floorhub/hub/wsconn"
	"github.com/floorhub/floorhub/sensors/catalog"
	"github.com/floorhub/floorhub/store"
	"github.com/floorhub/floorhub/uplink/mqtt"
	wsuplink "github.com/floorhub/floorhub/uplink/websocket"
)

// Validate runs every check that starting the agent makes: the agent's own
// rules and the Validate of each part's Options (store, hub and its
// connections, the V3 endpoint, the uplinks, the device drivers), built
// from c by the same functions the agent uses to build the parts. So a
// config that passes Validate (`agent -check-config`) does not fail at
// start. It fills the defaults first. Every error is a *ConfigError
// naming the file, the line and the field.
func (c *Config) Validate() error {
	if err := c.fill(); err != nil {
		return err
	}
	return c.checkParts()
}

// checkParts runs the parts' own validators on the options the agent
// builds for them.
func (c *Config) checkParts() error {
	if err := c.checkListen(); err != nil {
		return err
	}
	// A data_dir that is a file fails every start; one that does not
	// exist yet is made at start (whether it can be is the host's matter).
	if fi, err := os.Stat(c.DataDir); err == nil && !fi.IsDir() {
		return c.errf("data_dir", []string{"data_dir"}, "%q is not a directory", c.DataDir)
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c.errf("public_url", []string{"public_url"}, "%q: want http://host:port or https://host", c.PublicURL)
		}
	}
	so := c.storeOptions()
	if err := so.Validate(); err != nil {
		return c.partError(err, []string{"store"}, StoreConfig{})
	}
	ho := c.hubOptions()
	if err := ho.Validate(); err != nil {
		return c.partError(err, []string{"hub"}, HubConfig{})
	}
	vo := c.v3Options()
	if err := vo.Validate(); err != nil {
		return c.partError(err, []string{"hub"}, HubConfig{})
	}
	if err := c.checkAuth(); err != nil {
		return err
	}
	if m := c.mqttOptions(); m.URL != "" {
		if err := m.Validate(); err != nil {
			return c.partError(err, []string{"uplink", "mqtt"}, mqtt.Options{})
		}
	}
	if w := c.websocketOptions(); w.URL != "" {
		if err := w.Validate(); err != nil {
			return c.partError(err, []string{"uplink", "websocket"}, wsuplink.Options{})
		}
	}
	return nil
}

// checkListen accepts what net.Listen("tcp", ...) takes: [host]:port.
func (c *Config) checkListen() error {
	host, port, err := net.SplitHostPort(c.Listen)
	if err == nil {
		var n int
		n, err = strconv.Atoi(port)
		if err != nil || n < 0 || n > 65535 {
			err = fmt.Errorf("port %q is not a number from 0 to 65535", port)
		} else if strings.ContainsAny(host, " /") {
			err = fmt.Errorf("host %q is not a host name or IP address", host)
		}
	}
	if err != nil {
		return c.errf("listen", []string{"listen"}, "%q: want [host]:port, e.g. :8000 or 127.0.0.1:8000 (%v)", c.Listen, err)
	}
	return nil
}

// checkAuth loads the public key as the agent does at start. The HS256
// secret is the data directory's, made at the first start: not config.
func (c *Config) checkAuth() error {
	if c.Auth.Algorithm == "HS256" {
		return nil
	}
	pem, err := os.ReadFile(c.Auth.PublicKeyFile)
	if err == nil {
		_, err = auth.NewVerifier(auth.VerifierOptions{Algorithm: c.Auth.Algorithm, PublicKeyPEM: pem, Leeway: c.Auth.Leeway})
	}
	if err != nil {
		return c.errf("auth.public_key_file", []string{"auth", "public_key_file"}, "%v", err)
	}
	return nil
}

// storeOptions are the store's options from the config; Run adds the logger.
func (c *Config) storeOptions() store.Options {
	return store.Options{
		CommitInterval: c.Store.CommitInterval,
		MaxBatch:       c.Store.MaxBatch,
		MaxBytes:       int64(c.Store.MaxBytes),
		MaxAge:         c.Store.MaxAge,

		ChatMaxMessages: c.Chat.MaxMessages,
		ChatMaxBytes:    int64(c.Chat.MaxBytes),
		ChatMaxChats:    c.Chat.MaxChats,
	}
}

// hubOptions are the hub's options from the config; wire adds the
// verifier, the replay source, the state and the logger.
func (c *Config) hubOptions() hub.Options {
	h := c.Hub
	return hub.Options{
		MaxBatch: h.MaxBatch,
		Conn: wsconn.Options{
			MaxMessageBytes:   int64(h.MaxMessageBytes),
			MessagesPerSecond: h.MessagesPerSecond,
			MaxConns:          h.MaxConns,
			MaxConnsPerUser:   h.MaxConnsPerUser,
			ConnectsPerMinute: h.ConnectsPerMinute,
			AllowedOrigins:    h.AllowedOrigins,
			QueueLen:          h.QueueLen,
			AuthTimeout:       h.AuthTimeout,
			PingInterval:      h.PingInterval,
			PongWait:          h.PongWait,
			WriteWait:         h.WriteWait,
			WriteDelay:        h.WriteDelay,
		},
	}
}

// v3Options are the V3 endpoint's options; wire adds the commander and
// the logger.
func (c *Config) v3Options() hub.V3Options {
	return hub.V3Options{GatewayID: c.GatewayID, Group: c.Hub.V3Group}
}

// mqttOptions are the MQTT uplink's options; wire adds the version, the
// run's ids, the clock and the logger.
func (c *Config) mqttOptions() mqtt.Options {
	m := c.Uplink.MQTT
	m.GatewayID = c.GatewayID
	return m
}

// websocketOptions are the WebSocket uplink's, as mqttOptions.
func (c *Config) websocketOptions() wsuplink.Options {
	w := c.Uplink.WebSocket
	w.GatewayID = c.GatewayID
	return w
}

// partError turns a part's *FieldError into a *ConfigError: the Go field
// is found in section's struct (cfg, whose yaml tags are the keys) under
// the section's path. Fields that are not keys of the section
// (GatewayID) are the top level's.
func (c *Config) partError(err error, section []string, cfg any) error {
	goField, reason := fieldOf(err)
	if goField == "" {
		return &ConfigError{File: c.file, Line: c.lineOf(section...), Field: strings.Join(section, "."), Err: err}
	}
	if goField == "GatewayID" {
		return c.errf("gateway_id", []string{"gateway_id"}, "%q: %s", c.GatewayID, reason)
	}
	key := yamlKey(reflect.TypeOf(cfg), goField)
	if key == "" && goField == "Group" {
		key = "v3_group"
	}
	if key == "" {
		return &ConfigError{File: c.file, Line: c.lineOf(section...), Field: strings.Join(section, "."), Err: err}
	}
	path := append(append([]string(nil), section...), key)
	return c.errf(strings.Join(path, "."), path, "%s", reason)
}

// fieldOf returns the Go field and the reason of a part's *FieldError.
func fieldOf(err error) (field, reason string) {
	var (
		se *store.FieldError
		ce *wsconn.FieldError
		he *hub.FieldError
		me *mqtt.FieldError
		we *wsuplink.FieldError
	)
	switch {
	case errors.As(err, &se):
		return se.Field, se.Reason
	case errors.As(err, &ce):
		return ce.Field, ce.Reason
	case errors.As(err, &he):
		return he.Field, he.Reason
	case errors.As(err, &me):
		return me.Field, me.Reason
	case errors.As(err, &we):
		return we.Field, we.Reason
	}
	return "", err.Error()
}

// yamlKey returns the yaml key of the struct field named goField ("" when
// there is none).
func yamlKey(t reflect.Type, goField string) string {
	f, ok := t.FieldByName(goField)
	if !ok {
		return ""
	}
	key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if key == "-" {
		return ""
	}
	return key
}

// checkRuleMetrics holds each rule to the metrics its devices report: a
// misspelt metric would leave an alert that can never fire.
func (c *Config) checkRuleMetrics(metrics map[int][]string) error {
	for i, r := range c.Rules {
		if r.Offline || r.Metric == "" {
			continue
		}
		at := []string{"rules", strconv.Itoa(i), "metric"}
		field := fmt.Sprintf("rules[%d].metric", i)
		if len(r.DeviceIDs) == 0 {
			if !reportedBy(c.Devices, metrics, r.Metric) {
				return c.errf(field, at, "%q: no device reports it (they report %s)", r.Metric, allMetrics(c.Devices, metrics))
			}
			continue
		}
		for _, id := range r.DeviceIDs {
			if !contains(metrics[id], r.Metric) {
				return c.errf(field, at, "%q: device %d does not report it (it reports %s)", r.Metric, id, strings.Join(metrics[id], ", "))
			}
		}
	}
	return nil
}

// reportedBy tells whether some device reports metric.
func reportedBy(devs []DeviceConfig, metrics map[int][]string, metric string) bool {
	for _, d := range devs {
		if contains(metrics[d.ID], metric) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func allMetrics(devs []DeviceConfig, metrics map[int][]string) string {
	seen := map[string]bool{}
	var out []string
	for _, d := range devs {
		for _, m := range metrics[d.ID] {
			if !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	if len(out) == 0 {
		return "nothing"
	}
	return strings.Join(out, ", ")
}

// finite checks a rule's threshold.
func finite(v *float64) bool { return v == nil || !(math.IsNaN(*v) || math.IsInf(*v, 0)) }

// settingsLine returns the line in a driver's "settings (line N)"
// message, 0 if there is none.
func settingsLine(msg string) int {
	_, rest, ok := strings.Cut(msg, "settings (line ")
	if !ok {
		return 0
	}
	digits, _, ok := strings.Cut(rest, ")")
	n, err := strconv.Atoi(digits)
	if !ok || err != nil {
		return 0
	}
	return n
}

// deviceError maps a driver's complaint about one device to the key it is
// most likely about.
func (c *Config) deviceError(i int, err error) error {
	key := "settings"
	msg := err.Error()
	switch {
	case errors.Is(err, catalog.ErrUnknownDriver):
		key = "driver"
	case strings.Contains(msg, "settings"):
	case strings.Contains(msg, "address"):
		key = "address"
	case strings.Contains(msg, "pin"):
		key = "pin"
	case strings.Contains(msg, "bus"):
		key = "bus"
	}
	at := []string{"devices", strconv.Itoa(i), key}
	if c.lineOfExact(at...) == 0 {
		at = at[:2]
	}
	line := c.lineOf(at...)
	if l := settingsLine(msg); l > 0 {
		line = l
	}
	return &ConfigError{File: c.file, Line: line, Field: fmt.Sprintf("devices[%d].%s", i, key), Err: errors.New(msg)}
}
