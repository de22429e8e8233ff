package agent

import (
	"regexp"
	"strings"
	"testing"
)

// The hand-written matchers replaced regular expressions (regexp cost the
// binary about 85 KB); they accept exactly what the expressions did.
func TestMatchersAgreeWithTheirExpressions(t *testing.T) {
	idRE := regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	mqttRE := regexp.MustCompile(`^(tcp|ssl|tls|mqtt|mqtts)://[^/\s]+`)
	wsRE := regexp.MustCompile(`^wss?://[^/\s]+/(?:.*/)?group/[A-Za-z0-9_-]{1,64}/client/([A-Za-z0-9_-]{1,64})$`)
	sizeRE := regexp.MustCompile(`^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMG]i?B|B)?\s*$`)
	long := strings.Repeat("a", 64)
	inputs := []string{"", "g", "a-b_C9", long, long + "a", "a b", "a.b", "é", "a/b", "-", "_",
		"tcp://h", "tcp://h:1883", "tcp://", "tcp:///x", "tcp:// h", "tcp://\th", "ssl://h", "tls://h", "mqtt://h", "mqtts://h:8883/x",
		"http://h", "TCP://h", "tcp:/h", " tcp://h", "mqttss://h",
		"ws://h/group/s/client/g", "wss://h/v3/ws/group/s/client/g", "wss://h:1/a/b/group/s/client/g", "ws://h/group/s/client/",
		"ws://h/group//client/g", "ws://h/x/group/s/client/g/", "ws://h/groups/s/client/g", "ws:///group/s/client/g",
		"ws://h h/group/s/client/g", "ws://h/a b/group/s/client/g", "ws://h/a\nb/group/s/client/g", "ws://h/group/s/client/" + long,
		"ws://h/group/s/client/" + long + "a", "wss://h/group/s.t/client/g", "ws://h/group/s/client/g\n", "wsss://h/group/s/client/g",
		"ws://h/group/group/s/client/g", "ws://h/group/s/client/client/g",
		"0", "1", "256MiB", "1.5GiB", " 64 MiB ", "12KiB", "1TB", "1.MiB", ".5MiB", "5 B", "5b", "1e3", "-1", "1KB", "1MB", "1GB", "lots", "1\tKiB",
	}
	for _, s := range inputs {
		if got, want := validID(s), idRE.MatchString(s); got != want {
			t.Errorf("validID(%q) = %v, the expression %v", s, got, want)
		}
		if got, want := mqttURL(s), mqttRE.MatchString(s); got != want {
			t.Errorf("mqttURL(%q) = %v, the expression %v", s, got, want)
		}
		m := wsRE.FindStringSubmatch(s)
		id, ok := wsClientID(s)
		if ok != (m != nil) || (ok && id != m[1]) {
			t.Errorf("wsClientID(%q) = %q %v, the expression %q", s, id, ok, m)
		}
		_, ok = parseSize(s)
		if want := sizeRE.MatchString(s); ok != want {
			t.Errorf("parseSize(%q) ok %v, the expression %v", s, ok, want)
		}
	}
}
