package agent

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// GatewayIDFile, in the data directory, holds the gateway_id chosen when
// the config sets none, so that the id never changes under a gateway: not
// when an upgrade changes how the default is derived, nor when the host is
// renamed.
const GatewayIDFile = "gateway_id"

// SparkplugBdSeqFile, in the data directory, holds the last bdSeq the MQTT
// uplink used with format sparkplug_b (one number, 0 to 255).
const SparkplugBdSeqFile = "sparkplug_bdseq"

// Where a gateway_id that the config does not set comes from
// (Config.GatewayIDSource); the file's path and the machine id file's
// path are the other values.
const (
	sourceConfig = "config"
	// sourceHostname: no machine id exists.
	sourceHostname = "hostname"
	// sourceLegacy: the data directory holds a store from before the id
	// was persisted, when the default was the host name; the gateway keeps
	// that identity.
	sourceLegacy = "hostname (existing data_dir)"
)

// resolveGatewayID finds the gateway_id for a config that sets none,
// without writing anything: the id persisted in dataDir; else, for a data
// directory that already holds a store, the host name (the default before
// the id was persisted, so an upgrade keeps the gateway's identity); else,
// for a fresh one, the id derived from the machine id. persist says the
// id is not in the file yet (persistGatewayID writes it at start).
func resolveGatewayID(dataDir string) (id, source string, persist bool, err error) {
	path := filepath.Join(dataDir, GatewayIDFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(b))
		if !validID(id) {
			return "", "", false, fmt.Errorf("%s: %q is not a gateway_id (letters, digits, '_' and '-', 1-64); fix or remove the file", path, id)
		}
		return id, path, false, nil
	case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
		return "", "", false, err // ENOTDIR: data_dir is a file, which checkParts names
	}
	if _, err := os.Stat(filepath.Join(dataDir, DBFile)); err == nil {
		return hostnameID(), sourceLegacy, true, nil
	}
	id, source = defaultGatewayID()
	return id, source, true, nil
}

// persistGatewayID writes id to dataDir's GatewayIDFile, atomically (a
// crash leaves the old state or the whole file, never a part), mode 0644:
// the id is no secret, and operators' tools may read it.
func persistGatewayID(dataDir, id string) error {
	path := filepath.Join(dataDir, GatewayIDFile)
	f, err := os.CreateTemp(dataDir, GatewayIDFile+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.WriteString(id + "\n")
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("persisting the gateway_id: %w", err)
	}
	if d, err := os.Open(dataDir); err == nil {
		_ = d.Sync() // the rename itself survives a power cut
		_ = d.Close()
	}
	return nil
}

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
	return hostnameID(), sourceHostname
}

// hostnameID is the host name as a gateway_id: as it is when valid (as
// the default was before it was derived from the machine id), else with
// invalid characters replaced.
func hostnameID() string {
	h, _ := os.Hostname()
	return sanitizeID(h)
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
// GatewayIDFile it was read from, the machine id file it was derived from,
// "hostname" (no machine id), or "hostname (existing data_dir)" (a data
// directory from before the id was persisted).
func (c *Config) GatewayIDSource() string { return c.gatewaySource }
