package agent

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/floorhub/floorhub/auth"
	"github.com/floorhub/floorhub/auth/session"
	"github.com/floorhub/floorhub/internal/yamlconf"
	"github.com/floorhub/floorhub/sensors/catalog"
	"github.com/floorhub/floorhub/uplink/mqtt"
	wsuplink "github.com/floorhub/floorhub/uplink/websocket"
)

// ConfigError is a configuration error: the file, the line and the field
// that is wrong. cmd/agent exits 78 (EX_CONFIG) on it.
type ConfigError struct {
	File  string
	Line  int
	Field string
	Err   error
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, ": %s", e.Field)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *ConfigError) Unwrap() error { return e.Err }

// Config is the agent's configuration: one YAML file, documented in
// systemd/floorhub.example.yaml. The zero value of each field means its
// default; Load fills the defaults.
type Config struct {
	// GatewayID names this gateway in topics and on the central side.
	// Default: an id derived from /etc/machine-id ("fh-" and 16 hex
	// digits), stable across restarts and unique per installation; the
	// host name only where there is no machine id.
	GatewayID string `yaml:"gateway_id"`
	// DataDir holds the database and the token secret. Default ./data.
	DataDir string `yaml:"data_dir"`
	// Listen is the hub's HTTP address. Default :8000.
	Listen string `yaml:"listen"`
	// PublicURL is the base URL printed for the dashboard; default
	// http://localhost:<port>.
	PublicURL string `yaml:"public_url"`

	Log    LogConfig    `yaml:"log"`
	Store  StoreConfig  `yaml:"store"`
	Auth   AuthConfig   `yaml:"auth"`
	Hub    HubConfig    `yaml:"hub"`
	Chat   ChatConfig   `yaml:"chat"`
	System SystemConfig `yaml:"system"`
	Clock  ClockConfig  `yaml:"clock"`
	Uplink UplinkConfig `yaml:"uplink"`

	// Devices to read. Default: the simulated set.
	Devices []DeviceConfig `yaml:"devices"`
	// Rules raise alerts. Default: the seed's High Temperature Alert and a
	// device-offline rule.
	Rules []RuleConfig `yaml:"rules"`
	// Users log in to the dashboard (docs/hub.md, "Login"). None: only
	// tokens authenticate.
	Users []UserConfig `yaml:"users"`

	// file and root locate errors found after decoding.
	file string
	root *yamlconf.Node
	// gatewaySource says where GatewayID came from (GatewayIDSource), for
	// the start-up log.
	gatewaySource string
	// gatewayPersist: GatewayID was chosen, not set nor read back; the
	// agent writes it to the data directory at start (-check-config
	// writes nothing).
	gatewayPersist bool
	// metrics are the names each device reports, by device id.
	metrics map[int][]string
	// defaultRules: the file has no rules; the defaults' metric rules
	// apply only where some device reports the metric.
	defaultRules bool
}

// LogConfig configures logging.
type LogConfig struct {
	// Format is text (default) or json.
	Format string `yaml:"format"`
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level"`
}

// StoreConfig configures the bbolt store.
type StoreConfig struct {
	// CommitInterval is the longest a reading waits for its group commit
	// (and for the uplinks); alerts and status changes commit at once.
	// Default 10s.
	CommitInterval time.Duration `yaml:"commit_interval"`
	// MaxBatch commits early after this many readings. Default 4096.
	MaxBatch int `yaml:"max_batch"`
	// MaxBytes caps the database ("256MiB", "1GiB" or bytes). Default 256MiB.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// MaxAge evicts older records; 0 keeps them until the cap needs room.
	MaxAge time.Duration `yaml:"max_age"`
}

// AuthConfig configures the JWTs that the hub accepts.
type AuthConfig struct {
	// Algorithm is HS256 (default: the secret in the data dir), RS256 or ES256.
	Algorithm string `yaml:"algorithm"`
	// PublicKeyFile is the PEM public key for RS256/ES256.
	PublicKeyFile string `yaml:"public_key_file"`
	// Leeway is the clock skew allowed on a token's exp, nbf and iat,
	// also when an open connection's token expires. Default 30s; 1s to 10m.
	Leeway time.Duration `yaml:"leeway"`
}

// HubConfig configures the local WebSocket hub. Zero means the seed's
// defaults; -1 turns off a limit where that is allowed.
type HubConfig struct {
	// AllowedOrigins lists the Origin values accepted besides the same origin.
	// "*" accepts any.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// MaxMessageBytes caps one inbound message, in bytes (a larger one
	// closes the connection with 1009). Default 1024, 128 to 1 MiB.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// MessagesPerSecond is the inbound rate allowed per connection.
	// Default 100; -1 for no limit.
	MessagesPerSecond int `yaml:"messages_per_second"`
	// MaxConnsPerUser caps one user's connections. Default 100; -1 for
	// no limit.
	MaxConnsPerUser int `yaml:"max_connections_per_user"`
	// MaxConns caps all connections (HTTP 503 beyond). Default 1000; -1
	// for no limit.
	MaxConns int `yaml:"max_connections"`
	// ConnectsPerMinute caps new connections per remote address (HTTP 429
	// beyond). Default 10; -1 for no limit.
	ConnectsPerMinute int `yaml:"connects_per_minute"`
	// MaxBatch caps the messages of one batch. Default 50, at most 1000.
	MaxBatch int `yaml:"max_batch"`
	// QueueLen is how many messages may wait for one client before it
	// counts as behind: an alert arriving then disconnects the client
	// (it resumes with since) if no write to it completed for the stall
	// time (5 s); the queue is bounded at 4 × QueueLen whatever the
	// progress. Default 256, 16 to 65536.
	QueueLen int `yaml:"queue_len"`
	// AuthTimeout is how long a connection may stay unauthenticated.
	// Default 10s.
	AuthTimeout time.Duration `yaml:"auth_timeout"`
	// PingInterval is the period of the hub's pings. Default 25s.
	PingInterval time.Duration `yaml:"ping_interval"`
	// PongWait is how long a client may stay silent after a ping before
	// it is dropped. Default 10s.
	PongWait time.Duration `yaml:"pong_wait"`
	// WriteWait bounds one write: a client that accepts nothing for this
	// long is dropped. Default 10s.
	WriteWait time.Duration `yaml:"write_wait"`
	// WriteDelay is how long the hub may hold a client's published
	// messages (telemetry, alerts, status, presence, messages between V3
	// members) to write those of that time together: one write instead of
	// one per message. Devices that share an interval read together, so
	// their readings arrive within a millisecond or two and the default
	// gathers them (BENCHMARKS.md: about 10 µs to 3 µs of CPU per delivery)
	// at the price of up to WriteDelay more latency. Replies to a client's
	// requests are never held. Default 5ms; 1ms to 1s; negative (-1ms)
	// writes every message at once.
	WriteDelay time.Duration `yaml:"write_delay"`
	// V3Group is the Aether V3 group the agent joins as a member. Default "floor".
	V3Group string `yaml:"v3_group"`
	// SessionTTL is how long a dashboard login lasts unused; every use
	// (a request, an open dashboard) renews it. Default 12h; 1s to 90 days.
	SessionTTL time.Duration `yaml:"session_ttl"`
}

// UserConfig is one user of the dashboard.
type UserConfig struct {
	// Name logs in: letters, digits, '_', '-', '.' and '@' (1-64).
	Name string `yaml:"name"`
	// ID is the user's number (the chat's userId): positive, unique.
	ID int64 `yaml:"id"`
	// Role is viewer (reads), operator (also acknowledges alerts and
	// chats) or admin (also runs commands).
	Role string `yaml:"role"`
	// PasswordHash is the hash that `agent passwd` prints
	// ($pbkdf2-sha256$i=600000$...).
	PasswordHash string `yaml:"password_hash"`
}

// SystemConfig configures system status updates.
type SystemConfig struct {
	// Interval between system_status_update messages. Default 10s.
	Interval time.Duration `yaml:"interval"`
}

// ClockConfig tells when the wall clock is trusted.
type ClockConfig struct {
	// ValidAfter: a wall clock before this date is not synced (a Pi without
	// RTC boots in 1970). Default 2025-01-01.
	ValidAfter string `yaml:"valid_after"`
}

// UplinkConfig configures the forwarders to the central side. Both are off
// unless configured; both may run at once, each with its own cursor.
type UplinkConfig struct {
	// MQTT is documented field by field in uplink/mqtt.Options and docs/mqtt.md.
	MQTT mqtt.Options `yaml:"mqtt"`
	// WebSocket is documented in uplink/websocket.Options and docs/aether.md.
	WebSocket wsuplink.Options `yaml:"websocket"`
}

// DeviceConfig is one device to read.
type DeviceConfig struct {
	// ID is the device_id in every API: a positive number, unique.
	ID int `yaml:"id"`
	// Name is a label for people.
	Name string `yaml:"name"`
	// Driver names the driver (sim-env, sim-hot, sim-door, sim-counter,
	// bme280, bmp280, ds18b20, gpio-input, gpio-counter, ads1115, ads1015,
	// modbus-tcp, modbus-rtu).
	Driver string `yaml:"driver"`
	// Interval between reads. Default 5s.
	Interval time.Duration `yaml:"interval"`
	// Jitter delays each read by a random time from 0 to Jitter after its
	// point on the schedule (every Interval from the agent's start, the
	// same points for every device with this Interval). Default 0: the
	// devices that share an interval read together, and their readings
	// go out together (one write per dashboard, one uplink batch); for
	// modbus-tcp and modbus-rtu 10% of Interval, since the devices on one
	// line are read one at a time and would otherwise wait for each other.
	Jitter *time.Duration `yaml:"jitter"`
	// Timeout bounds one read. Default min(Interval, 5s).
	Timeout time.Duration `yaml:"timeout"`
	// OfflineAfter marks the device offline after this long of the
	// agent's running time without a good read, counted on the monotonic
	// clock: a pause of the agent or the machine, or a wall clock jump,
	// does not count (offline.go). Default 3 intervals + Timeout.
	OfflineAfter time.Duration `yaml:"offline_after"`
	// Bus, Address and Pin locate the hardware; see docs/sensors.md.
	Bus     string `yaml:"bus"`
	Address int    `yaml:"address"`
	Pin     string `yaml:"pin"`
	// Settings are the driver's own keys.
	Settings yamlconf.Node `yaml:"settings"`
}

// RuleConfig is one alert rule.
type RuleConfig struct {
	// Name identifies the rule; it is the alerts' alert_type.
	Name string `yaml:"name"`
	// DeviceIDs the rule watches; empty: every device with the metric.
	DeviceIDs []int `yaml:"device_ids"`
	// Metric to watch. Empty with Offline true.
	Metric string `yaml:"metric"`
	// Above or Below is the threshold (exactly one).
	Above *float64 `yaml:"above"`
	Below *float64 `yaml:"below"`
	// Clear is the value the metric must get back past for the alert to
	// clear (hysteresis). Default: the threshold.
	Clear *float64 `yaml:"clear"`
	// For is how long the condition must hold before the alert is raised.
	For time.Duration `yaml:"for"`
	// Offline raises the alert when a watched device goes offline.
	Offline bool `yaml:"offline"`
	// Severity is info, warning or critical.
	Severity string `yaml:"severity"`
	Title    string `yaml:"title"`
	// Message may use {device}, {value}, {threshold} and {metric}.
	Message string `yaml:"message"`
}

// ByteSize is a size in bytes, written as a number or with a unit (KiB,
// MiB, GiB, KB, MB, GB).
type ByteSize int64

// UnmarshalYAML parses "256MiB" and friends.
func (b *ByteSize) UnmarshalYAML(n *yamlconf.Node) error {
	v, ok := parseSize(n.Value)
	if n.Kind != yamlconf.ScalarNode || !ok {
		return fmt.Errorf("%q is not a size (e.g. 256MiB)", n.Value)
	}
	*b = ByteSize(v)
	return nil
}

// parseSize reads a number of bytes, a decimal fraction allowed, with an
// optional unit: B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (of 1024).
func parseSize(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, false
	}
	if i < len(s) && s[i] == '.' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	v, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		return 0, false
	}
	mult, ok := map[string]float64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[strings.TrimSpace(s[i:])]
	return v * mult, ok
}

// DefaultConfig is what the agent runs with no file: simulated devices, the
// seed's High Temperature Alert, the uplink off.
func DefaultConfig() *Config {
	thirty, twentyEight := 30.0, 28.0
	c := &Config{
		Devices: []DeviceConfig{
			{ID: 1, Name: "line-1 environment", Driver: "sim-env", Interval: 2 * time.Second},
			{ID: 2, Name: "oven probe", Driver: "sim-hot", Interval: 2 * time.Second},
			{ID: 3, Name: "cabinet door", Driver: "sim-door", Interval: time.Second},
			{ID: 4, Name: "flow meter", Driver: "sim-counter", Interval: 5 * time.Second},
		},
		Rules: []RuleConfig{
			{
				Name: "high_temperature", Metric: "temperature", Above: &thirty, Clear: &twentyEight,
				For: 10 * time.Second, Severity: "critical", Title: "High Temperature Alert",
				Message: "Temperature exceeds safe threshold",
			},
			{
				Name: "device_offline", Offline: true, Severity: "warning", Title: "Device Offline",
				Message: "{device} stopped answering",
			},
		},
	}
	c.file = "(defaults)"
	return c
}

// LoadConfig reads, decodes strictly and validates a config file. Every error
// is a *ConfigError naming the file, the line and the field.
func LoadConfig(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{File: path, Err: err}
	}
	return ParseConfig(path, raw)
}

// mqttURL tells whether u is tcp://, ssl://, tls://, mqtt:// or mqtts://
// and a host.
func mqttURL(u string) bool {
	scheme, rest, ok := strings.Cut(u, "://")
	switch scheme {
	case "tcp", "ssl", "tls", "mqtt", "mqtts":
	default:
		return false
	}
	return ok && rest != "" && rest[0] != '/' && !isSpace(rest[0])
}

// wsClientID returns the client id of a WebSocket uplink URL,
// ws[s]://host/[path/]group/{site}/client/{id}; ok is false for any other URL.
func wsClientID(u string) (id string, ok bool) {
	rest, found := strings.CutPrefix(u, "wss://")
	if !found {
		if rest, found = strings.CutPrefix(u, "ws://"); !found {
			return "", false
		}
	}
	host, path, found := strings.Cut(rest, "/")
	if !found || host == "" || strings.ContainsAny(host, " \t\n\v\f\r") || strings.Contains(path, "\n") {
		return "", false
	}
	p := strings.Split(path, "/")
	n := len(p)
	if n < 4 || p[n-4] != "group" || p[n-2] != "client" || !validID(p[n-3]) || !validID(p[n-1]) {
		return "", false
	}
	return p[n-1], true
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// ParseConfig decodes and validates config text (Validate); name is used
// in errors.
func ParseConfig(name string, raw []byte) (*Config, error) {
	return ParseConfigWith(name, raw, Overrides{})
}

// LoadConfigWith is LoadConfig with the command-line flags applied before
// the one validation, so that what depends on them (the gateway_id kept in
// the data directory that -data names) is resolved from them.
func LoadConfigWith(path string, o Overrides) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{File: path, Err: err}
	}
	return ParseConfigWith(path, raw, o)
}

// ParseConfigWith is ParseConfig with the command-line flags applied
// before validation (LoadConfigWith).
func ParseConfigWith(name string, raw []byte, o Overrides) (*Config, error) {
	c := &Config{file: name}
	root, err := decode(name, raw, c)
	if err != nil {
		return nil, err
	}
	c.root = root
	if err := c.validateWith(c.override(o)); err != nil {
		return nil, err
	}
	return c, nil
}

// lineOf finds the line of a key path in the document, e.g.
// ("devices", "2", "interval"); 0 when absent.
func (c *Config) lineOf(path ...string) int {
	if c.root == nil || len(c.root.Content) == 0 {
		return 0
	}
	n := c.root.Content[0]
	line := n.Line
	for _, p := range path {
		switch n.Kind {
		case yamlconf.MappingNode:
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					line, n, found = n.Content[i].Line, n.Content[i+1], true
					break
				}
			}
			if !found {
				return line
			}
		case yamlconf.SequenceNode:
			i, err := strconv.Atoi(p)
			if err != nil || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
		default:
			return line
		}
	}
	return line
}

// lineOfExact is lineOf, but 0 unless the whole path is in the document.
func (c *Config) lineOfExact(path ...string) int {
	if c.root == nil || len(c.root.Content) == 0 {
		return 0
	}
	n := c.root.Content[0]
	for depth, p := range path {
		var next *yamlconf.Node
		switch n.Kind {
		case yamlconf.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					next = n.Content[i+1]
					if depth == len(path)-1 {
						return n.Content[i].Line
					}
					break
				}
			}
		case yamlconf.SequenceNode:
			if i, err := strconv.Atoi(p); err == nil && i < len(n.Content) {
				next = n.Content[i]
			}
		}
		if next == nil {
			return 0
		}
		n = next
	}
	return n.Line
}

func (c *Config) errf(field string, path []string, format string, args ...any) error {
	return &ConfigError{File: c.file, Line: c.lineOf(path...), Field: field, Err: fmt.Errorf(format, args...)}
}

// checkHub validates the hub's limits; zero leaves each to the hub's
// default.
func (c *Config) checkHub() error {
	h := &c.Hub
	for _, f := range []struct {
		key      string
		v        int
		min, max int
		off      bool // -1 turns the limit off
	}{
		{"max_message_bytes", h.MaxMessageBytes, 128, 1 << 20, false},
		{"messages_per_second", h.MessagesPerSecond, 1, 1_000_000, true},
		{"max_connections_per_user", h.MaxConnsPerUser, 1, 1_000_000, true},
		{"max_connections", h.MaxConns, 1, 1_000_000, true},
		{"connects_per_minute", h.ConnectsPerMinute, 1, 1_000_000, true},
		{"max_batch", h.MaxBatch, 1, 1000, false},
		{"queue_len", h.QueueLen, 16, 65536, false},
	} {
		switch {
		case f.v == 0, f.v >= f.min && f.v <= f.max, f.off && f.v == -1:
		case f.off:
			return c.errf("hub."+f.key, []string{"hub", f.key}, "%d: want %d to %d, or -1 for no limit", f.v, f.min, f.max)
		default:
			return c.errf("hub."+f.key, []string{"hub", f.key}, "%d: want %d to %d", f.v, f.min, f.max)
		}
	}
	for _, f := range []struct {
		key string
		v   time.Duration
	}{
		{"auth_timeout", h.AuthTimeout},
		{"ping_interval", h.PingInterval},
		{"pong_wait", h.PongWait},
		{"write_wait", h.WriteWait},
	} {
		if f.v != 0 && (f.v < time.Second || f.v > 10*time.Minute) {
			return c.errf("hub."+f.key, []string{"hub", f.key}, "%v: want 1s to 10m", f.v)
		}
	}
	if d := h.WriteDelay; d > 0 && (d < time.Millisecond || d > time.Second) {
		return c.errf("hub.write_delay", []string{"hub", "write_delay"}, "%v: want 1ms to 1s, or a negative value (-1ms) to write at once", d)
	}
	return nil
}

// fill sets defaults and validates.
func (c *Config) fill() error {
	def := DefaultConfig()
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.gatewaySource != "" && c.gatewaySource != sourceConfig {
		c.GatewayID = "" // resolved by an earlier fill, maybe for another data_dir (-data)
	}
	if c.GatewayID == "" {
		var err error
		c.GatewayID, c.gatewaySource, c.gatewayPersist, err = resolveGatewayID(c.DataDir)
		if err != nil {
			return c.errf("gateway_id", []string{"gateway_id"}, "%v", err)
		}
	} else {
		c.gatewaySource, c.gatewayPersist = sourceConfig, false
	}
	if !validID(c.GatewayID) {
		return c.errf("gateway_id", []string{"gateway_id"}, "%q: use letters, digits, '_' and '-' (1-64)", c.GatewayID)
	}
	if c.Listen == "" {
		c.Listen = ":8000"
	}
	switch c.Log.Format {
	case "":
		c.Log.Format = "text"
	case "text", "json":
	default:
		return c.errf("log.format", []string{"log", "format"}, "%q: want text or json", c.Log.Format)
	}
	switch c.Log.Level {
	case "":
		c.Log.Level = "info"
	case "debug", "info", "warn", "error":
	default:
		return c.errf("log.level", []string{"log", "level"}, "%q: want debug, info, warn or error", c.Log.Level)
	}
	if c.Store.MaxBytes != 0 && c.Store.MaxBytes < 1<<20 {
		return c.errf("store.max_bytes", []string{"store", "max_bytes"}, "%d bytes is below the 1MiB minimum", c.Store.MaxBytes)
	}
	switch c.Auth.Algorithm {
	case "", "HS256":
		c.Auth.Algorithm = "HS256"
		if c.Auth.PublicKeyFile != "" {
			return c.errf("auth.public_key_file", []string{"auth", "public_key_file"}, "is for RS256 and ES256; HS256 uses the secret in the data directory (set auth.algorithm)")
		}
	case "RS256", "ES256":
		if c.Auth.PublicKeyFile == "" {
			return c.errf("auth.public_key_file", []string{"auth"}, "%s needs a public key file", c.Auth.Algorithm)
		}
	default:
		return c.errf("auth.algorithm", []string{"auth", "algorithm"}, "%q: want HS256, RS256 or ES256", c.Auth.Algorithm)
	}
	if c.System.Interval == 0 {
		c.System.Interval = 10 * time.Second
	}
	if c.System.Interval < time.Second {
		return c.errf("system.interval", []string{"system", "interval"}, "%v is below 1s", c.System.Interval)
	}
	if c.Clock.ValidAfter == "" {
		c.Clock.ValidAfter = "2025-01-01"
	}
	if _, err := time.Parse("2006-01-02", c.Clock.ValidAfter); err != nil {
		return c.errf("clock.valid_after", []string{"clock", "valid_after"}, "%q: want a date like 2025-01-01", c.Clock.ValidAfter)
	}
	if c.Auth.Leeway != 0 && (c.Auth.Leeway < time.Second || c.Auth.Leeway > 10*time.Minute) {
		return c.errf("auth.leeway", []string{"auth", "leeway"}, "%v: want 1s to 10m (0: the default, 30s)", c.Auth.Leeway)
	}
	if err := c.checkHub(); err != nil {
		return err
	}
	if err := c.checkChat(); err != nil {
		return err
	}
	if c.Hub.V3Group == "" {
		c.Hub.V3Group = "floor"
	}
	if !validID(c.Hub.V3Group) {
		return c.errf("hub.v3_group", []string{"hub", "v3_group"}, "%q: use letters, digits, '_' and '-' (1-64)", c.Hub.V3Group)
	}
	if err := c.fillUplinks(); err != nil {
		return err
	}
	if c.Devices == nil {
		c.Devices = def.Devices
	}
	if c.Rules == nil {
		c.Rules, c.defaultRules = def.Rules, true
	}
	if err := c.fillDevices(); err != nil {
		return err
	}
	if err := c.fillUsers(); err != nil {
		return err
	}
	return c.fillRules()
}

// fillUsers checks the users and session_ttl.
func (c *Config) fillUsers() error {
	if c.Hub.SessionTTL == 0 {
		c.Hub.SessionTTL = 12 * time.Hour
	}
	if c.Hub.SessionTTL < time.Second || c.Hub.SessionTTL > 90*24*time.Hour {
		return c.errf("hub.session_ttl", []string{"hub", "session_ttl"}, "%v: want 1s to 90 days (2160h)", c.Hub.SessionTTL)
	}
	names := map[string]int{}
	ids := map[int64]int{}
	for i := range c.Users {
		u := &c.Users[i]
		at := []string{"users", strconv.Itoa(i)}
		field := func(f string) string { return fmt.Sprintf("users[%d].%s", i, f) }
		if !validUserName(u.Name) {
			return c.errf(field("name"), append(at, "name"), "%q: use letters, digits, '_', '-', '.' and '@' (1-64)", u.Name)
		}
		if j, dup := names[u.Name]; dup {
			return c.errf(field("name"), append(at, "name"), "user %q is already users[%d]", u.Name, j)
		}
		names[u.Name] = i
		if u.ID <= 0 {
			return c.errf(field("id"), append(at, "id"), "must be a positive number (the user's number)")
		}
		if j, dup := ids[u.ID]; dup {
			return c.errf(field("id"), append(at, "id"), "id %d is already used by users[%d]", u.ID, j)
		}
		ids[u.ID] = i
		if u.Role == "" {
			return c.errf(field("role"), at, "missing (viewer, operator or admin)")
		}
		if _, err := auth.ParseRole(u.Role); err != nil {
			return c.errf(field("role"), append(at, "role"), "%q: want viewer, operator or admin", u.Role)
		}
		if u.PasswordHash == "" {
			return c.errf(field("password_hash"), at, "missing: make one with `agent passwd`")
		}
		if err := auth.CheckHash(u.PasswordHash); err != nil {
			return c.errf(field("password_hash"), append(at, "password_hash"), "%v", err)
		}
	}
	return nil
}

// validUserName tells whether s is 1 to 64 letters, digits, '_', '-', '.'
// and '@'.
func validUserName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '@') {
			return false
		}
	}
	return true
}

// sessionUsers are the users as package session takes them.
func (c *Config) sessionUsers() []session.User {
	out := make([]session.User, len(c.Users))
	for i, u := range c.Users {
		out[i] = session.User{Name: u.Name, ID: u.ID, Role: auth.Role(u.Role), PasswordHash: u.PasswordHash}
	}
	return out
}

// validID tells whether s is 1 to 64 letters, digits, '_' and '-': a
// gateway id, a group or a rule name.
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (c *Config) fillUplinks() error {
	m := &c.Uplink.MQTT
	if m.URL != "" {
		if !mqttURL(m.URL) {
			return c.errf("uplink.mqtt.url", []string{"uplink", "mqtt", "url"}, "%q: want tcp://host:1883 or ssl://host:8883", m.URL)
		}
		if (m.CertFile == "") != (m.KeyFile == "") {
			return c.errf("uplink.mqtt.cert_file", []string{"uplink", "mqtt"}, "cert_file and key_file go together")
		}
		if m.HeartbeatInterval != 0 && m.HeartbeatInterval < time.Second {
			return c.errf("uplink.mqtt.heartbeat_interval", []string{"uplink", "mqtt", "heartbeat_interval"}, "%v is below 1s", m.HeartbeatInterval)
		}
	}
	w := &c.Uplink.WebSocket
	if w.URL != "" {
		id, ok := wsClientID(w.URL)
		if !ok {
			return c.errf("uplink.websocket.url", []string{"uplink", "websocket", "url"}, "%q: want wss://host/v3/ws/group/{site}/client/{gateway}", w.URL)
		}
		if id != c.GatewayID {
			return c.errf("uplink.websocket.url", []string{"uplink", "websocket", "url"}, "the client id %q in the URL must be the gateway_id %q", id, c.GatewayID)
		}
		if w.HeartbeatInterval != 0 && (w.HeartbeatInterval < 30*time.Second || w.HeartbeatInterval > time.Minute) {
			return c.errf("uplink.websocket.heartbeat_interval", []string{"uplink", "websocket", "heartbeat_interval"}, "%v: want 30s to 60s", w.HeartbeatInterval)
		}
		if (w.CertFile == "") != (w.KeyFile == "") {
			return c.errf("uplink.websocket.cert_file", []string{"uplink", "websocket"}, "cert_file and key_file go together")
		}
	}
	return nil
}

func (c *Config) fillDevices() error {
	seen := map[int]int{}
	specs := make([]catalog.Spec, 0, len(c.Devices))
	for i := range c.Devices {
		d := &c.Devices[i]
		at := []string{"devices", strconv.Itoa(i)}
		field := func(f string) string { return fmt.Sprintf("devices[%d].%s", i, f) }
		if d.ID <= 0 {
			return c.errf(field("id"), append(at, "id"), "must be a positive number (the device_id clients see)")
		}
		if j, dup := seen[d.ID]; dup {
			return c.errf(field("id"), append(at, "id"), "id %d is already used by devices[%d]", d.ID, j)
		}
		seen[d.ID] = i
		if d.Driver == "" {
			return c.errf(field("driver"), at, "missing (one of: %s)", strings.Join(catalog.Drivers(), ", "))
		}
		if d.Interval == 0 {
			d.Interval = 5 * time.Second
		}
		if d.Interval < 100*time.Millisecond || d.Interval > 24*time.Hour {
			return c.errf(field("interval"), append(at, "interval"), "%v: want 100ms to 24h", d.Interval)
		}
		if d.Jitter == nil {
			d.Jitter = new(time.Duration)
			if catalog.SharesLine(d.Driver) {
				// Devices on one line (Modbus) are read one after the
				// other, and the wait counts against each one's timeout:
				// lined up, the last would wait for all the others every
				// time. Spread them instead. (DS18B20 probes on one bus
				// convert together instead: their driver lines them up.)
				*d.Jitter = d.Interval / 10
			}
		}
		if *d.Jitter < 0 || *d.Jitter > d.Interval {
			return c.errf(field("jitter"), append(at, "jitter"), "%v: want 0 to the interval", *d.Jitter)
		}
		if d.Timeout == 0 {
			d.Timeout = min(d.Interval, 5*time.Second)
		}
		if d.Timeout < 0 || d.Timeout > d.Interval*10 {
			return c.errf(field("timeout"), append(at, "timeout"), "%v: want more than 0 and at most 10 intervals", d.Timeout)
		}
		if d.OfflineAfter == 0 {
			d.OfflineAfter = 3*d.Interval + d.Timeout
		}
		if d.OfflineAfter < d.Interval {
			return c.errf(field("offline_after"), append(at, "offline_after"), "%v is shorter than the interval", d.OfflineAfter)
		}
		spec := d.Spec(c.lineOf(at...))
		if err := catalog.Validate([]catalog.Spec{spec}); err != nil {
			return c.deviceError(i, err)
		}
		specs = append(specs, spec)
	}
	// Resources two devices claim at once.
	if err := catalog.Validate(specs); err != nil {
		return &ConfigError{File: c.file, Line: c.lineOf("devices"), Field: "devices", Err: err}
	}
	c.metrics = make(map[int][]string, len(specs))
	for i := range specs {
		m, err := catalog.Metrics(&specs[i])
		if err != nil {
			return c.deviceError(i, err)
		}
		c.metrics[specs[i].ID] = m
	}
	return nil
}

// Spec converts the device entry to what the driver catalog takes.
func (d *DeviceConfig) Spec(line int) catalog.Spec {
	return catalog.Spec{ID: d.ID, Name: d.Name, Driver: d.Driver, Bus: d.Bus, Address: d.Address, Pin: d.Pin, Settings: d.Settings, Line: line}
}

func (c *Config) fillRules() error {
	names := map[string]bool{}
	devices := map[int]bool{}
	for _, d := range c.Devices {
		devices[d.ID] = true
	}
	for i := range c.Rules {
		r := &c.Rules[i]
		at := []string{"rules", strconv.Itoa(i)}
		field := func(f string) string { return fmt.Sprintf("rules[%d].%s", i, f) }
		if !validID(r.Name) {
			return c.errf(field("name"), append(at, "name"), "%q: use letters, digits, '_' and '-' (1-64)", r.Name)
		}
		if names[r.Name] {
			return c.errf(field("name"), append(at, "name"), "rule %q is defined twice", r.Name)
		}
		names[r.Name] = true
		for _, id := range r.DeviceIDs {
			if !devices[id] {
				return c.errf(field("device_ids"), append(at, "device_ids"), "no device has id %d", id)
			}
		}
		switch {
		case r.Offline:
			if r.Metric != "" || r.Above != nil || r.Below != nil {
				return c.errf(field("offline"), append(at, "offline"), "an offline rule takes no metric or threshold")
			}
		case r.Metric == "":
			return c.errf(field("metric"), at, "missing (or set offline: true)")
		case (r.Above == nil) == (r.Below == nil):
			return c.errf(field("above"), at, "set exactly one of above and below")
		case r.Clear != nil && r.Above != nil && *r.Clear > *r.Above:
			return c.errf(field("clear"), append(at, "clear"), "%v is above the threshold %v: the alert could never clear", *r.Clear, *r.Above)
		case r.Clear != nil && r.Below != nil && *r.Clear < *r.Below:
			return c.errf(field("clear"), append(at, "clear"), "%v is below the threshold %v: the alert could never clear", *r.Clear, *r.Below)
		}
		for _, t := range []struct {
			key string
			v   *float64
		}{{"above", r.Above}, {"below", r.Below}, {"clear", r.Clear}} {
			if !finite(t.v) {
				return c.errf(field(t.key), append(at, t.key), "%v: want a finite number", *t.v)
			}
		}
		if r.For < 0 {
			return c.errf(field("for"), append(at, "for"), "negative duration")
		}
		switch r.Severity {
		case "":
			r.Severity = "warning"
		case "info", "warning", "critical":
		default:
			return c.errf(field("severity"), append(at, "severity"), "%q: want info, warning or critical", r.Severity)
		}
		if r.Title == "" {
			r.Title = r.Name
		}
	}
	if c.defaultRules {
		c.Rules = slices.DeleteFunc(c.Rules, func(r RuleConfig) bool {
			return r.Metric != "" && !reportedBy(c.Devices, c.metrics, r.Metric)
		})
	}
	return c.checkRuleMetrics(c.metrics)
}

// Defaults returns DefaultConfig with defaults filled, as `agent` runs with
// no file.
func Defaults() *Config {
	c, err := ParseConfig("(defaults)", nil)
	if err != nil {
		panic("agent: default config invalid: " + err.Error()) // a bug, caught by tests
	}
	return c
}

// Overrides are the command-line flags that override the file.
type Overrides struct {
	Listen  string
	DataDir string
	MQTTURL string
}

// Override applies flags over the file's values and validates the
// result; an error about a flag's value names the flag.
func (c *Config) Override(o Overrides) error {
	flags := c.override(o)
	if len(flags) == 0 {
		return nil
	}
	return c.validateWith(flags)
}

// override sets the flags' values and returns the flag for each key set.
func (c *Config) override(o Overrides) map[string]string {
	flags := map[string]string{}
	if o.Listen != "" {
		c.Listen = o.Listen
		flags["listen"] = "-listen"
	}
	if o.DataDir != "" {
		c.DataDir = o.DataDir
		flags["data_dir"] = "-data"
	}
	if o.MQTTURL != "" {
		c.Uplink.MQTT.URL = o.MQTTURL
		flags["uplink.mqtt.url"] = "-mqtt"
	}
	return flags
}

// validateWith validates; an error about a key a flag set names the flag.
func (c *Config) validateWith(flags map[string]string) error {
	err := c.Validate()
	var ce *ConfigError
	if errors.As(err, &ce) {
		if f, ok := flags[ce.Field]; ok {
			ce.File, ce.Line, ce.Field = "flag", 0, f
		}
	}
	return err
}

// Source names where the config came from: its file, or "(defaults)".
func (c *Config) Source() string { return c.file }
