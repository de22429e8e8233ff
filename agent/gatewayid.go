package agent

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
)

// machineIDFiles hold the machine id (machine-id(5)): systemd's, then
// D-Bus's older copy. Tests point it elsewhere.
var machineIDFiles = []string{"/etc/machine-id", "/var/lib/dbus/machine-id"}

// defaultGatewayID is the gateway_id when the config sets none: derived
// from the machine id, which systemd generates on the first boot of each
// installation, so a fleet flashed from one image gets distinct ids (the
// host name, "raspberrypi" on all of them, does not). Where no machine id
// exists the host name is the last resort; source says which was used.
func defaultGatewayID() (id, source string) {
	for _, f := range machineIDFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if id, ok := gatewayIDFromMachineID(b); ok {
			return id, f
		}
	}
	h, _ := os.Hostname()
	return sanitizeID(h), "hostname"
}

// gatewayIDFromMachineID derives "fh-" and 16 hex digits from a machine
// id. machine-id(5) asks applications not to expose the id itself but a
// keyed hash of it with an application-specific key, as systemd's
// sd_id128_get_machine_app_specific does: HMAC-SHA256 keyed by the
// machine id over the application's id. 64 bits keep collisions in a
// fleet negligible, and the 19 characters fit MQTT 3.1.1's 23-character
// client id, which defaults to the gateway_id.
func gatewayIDFromMachineID(b []byte) (string, bool) {
	s := strings.TrimSpace(string(b))
	if len(s) != 32 || strings.Trim(s, "0") == "" {
		return "", false // empty or "uninitialized" before the first boot completes
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", false
	}
	mac := hmac.New(sha256.New, []byte(strings.ToLower(s)))
	mac.Write([]byte("floorhub gateway_id"))
	return "fh-" + hex.EncodeToString(mac.Sum(nil)[:8]), true
}

// sanitizeID turns a host name into a valid gateway_id.
func sanitizeID(h string) string {
	var b strings.Builder
	for _, r := range h {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
		if b.Len() == 64 {
			break
		}
	}
	if b.Len() == 0 {
		return "gateway"
	}
	return b.String()
}

// GatewayIDSource says where the gateway_id came from: "config", the
// machine id file it was derived from, or "hostname".
func (c *Config) GatewayIDSource() string { return c.gatewaySource }
