// Package packaging tests floorhub's Debian package, built by
// scripts/package.sh from the files in packaging/deb and systemd/.
package packaging

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/floorhub/floorhub/agent"
	"github.com/floorhub/floorhub/internal/testkit"
)

// buildDebs builds the agent for amd64 as scripts/cross-build.sh does and
// packages it twice, as versions 0.1.0 and 0.2.0 (an upgrade).
func buildDebs(t *testing.T) (old, new string) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("Debian packages are built on Linux")
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		testkit.Missing(t, "dpkg-deb (Debian's dpkg) is not installed")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "floorhub-agent")
	build := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-tags", "nethttpomithttp2",
		"-ldflags", "-s -w -X main.version=0.1.0", "-o", bin, "./cmd/agent")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, v := range []string{"0.1.0", "0.2.0"} {
		cmd := exec.Command("scripts/package.sh", "-bin", bin, "-arch", "amd64", "-out", dir, v)
		cmd.Dir = ".."
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("package.sh %s: %v\n%s", v, err, out)
		}
	}
	return filepath.Join(dir, "floorhub_0.1.0_amd64.deb"), filepath.Join(dir, "floorhub_0.2.0_amd64.deb")
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPackage(t *testing.T) {
	deb, _ := buildDebs(t)

	t.Run("files", func(t *testing.T) {
		// dpkg-deb -c: mode owner/group size date time path
		want := map[string]string{
			"./usr/bin/floorhub-agent":                                "-rwxr-xr-x",
			"./etc/floorhub/floorhub.yaml":                            "-rw-r--r--",
			"./lib/systemd/system/floorhub.service":                   "-rw-r--r--",
			"./lib/udev/rules.d/60-floorhub.rules":                    "-rw-r--r--",
			"./usr/share/doc/floorhub/copyright":                      "-rw-r--r--",
			"./usr/share/doc/floorhub/changelog.gz":                   "-rw-r--r--",
			"./usr/share/doc/floorhub/README.md":                      "-rw-r--r--",
			"./usr/share/doc/floorhub/operations.md":                  "-rw-r--r--",
			"./usr/share/doc/floorhub/examples/floorhub.example.yaml": "-rw-r--r--",
			"./usr/share/man/man8/floorhub-agent.8.gz":                "-rw-r--r--",
			"./usr/share/lintian/overrides/floorhub":                  "-rw-r--r--",
		}
		got := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(run(t, "dpkg-deb", "-c", deb)), "\n") {
			f := strings.Fields(line)
			if len(f) < 6 {
				t.Fatalf("dpkg-deb -c line %q", line)
			}
			mode, owner, path := f[0], f[1], f[len(f)-1]
			if owner != "root/root" {
				t.Errorf("%s is owned by %s, want root/root", path, owner)
			}
			if strings.HasSuffix(path, "/") {
				continue
			}
			got[path] = true
			if m, ok := want[path]; ok && m != mode {
				t.Errorf("%s has mode %s, want %s", path, mode, m)
			}
			if !slices.ContainsFunc([]string{"./usr/", "./etc/floorhub/", "./lib/systemd/system/", "./lib/udev/rules.d/"}, func(dir string) bool {
				return strings.HasPrefix(path, dir)
			}) {
				t.Errorf("%s is outside /usr, /etc/floorhub, /lib/systemd/system and /lib/udev/rules.d", path)
			}
		}
		for p := range want {
			if !got[p] {
				t.Errorf("the package lacks %s", p)
			}
		}
	})

	t.Run("control", func(t *testing.T) {
		info := run(t, "dpkg-deb", "-I", deb)
		for _, f := range []string{"Package: floorhub", "Version: 0.1.0", "Architecture: amd64", "Depends: adduser", "Installed-Size: "} {
			if !strings.Contains(info, "\n "+f) {
				t.Errorf("control lacks %q:\n%s", f, info)
			}
		}
		ctl := t.TempDir()
		run(t, "dpkg-deb", "-e", deb, ctl)
		conffiles, err := os.ReadFile(filepath.Join(ctl, "conffiles"))
		if err != nil || strings.TrimSpace(string(conffiles)) != "/etc/floorhub/floorhub.yaml" {
			t.Errorf("conffiles = %q, %v; want /etc/floorhub/floorhub.yaml", conffiles, err)
		}
		scripts := map[string][]string{
			// The user, its groups where they exist, its data directory;
			// enabled on install, restarted on upgrade, only under systemd.
			"postinst": {"adduser --quiet --system --group", "for group in i2c gpio dialout", "getent group \"$group\"",
				"chown \"$user:$user\" \"$data\"", "chmod 0640 /etc/floorhub/floorhub.yaml", "deb-systemd-helper enable floorhub.service", "[ -d /run/systemd/system ]",
				"deb-systemd-invoke restart", "deb-systemd-invoke start"},
			"prerm":  {"deb-systemd-invoke stop floorhub.service"},
			"postrm": {"purge)", "rm -rf /var/lib/floorhub", "deb-systemd-helper purge"},
		}
		for name, must := range scripts {
			path := filepath.Join(ctl, name)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if st, _ := os.Stat(path); st == nil || st.Mode().Perm() != 0o755 {
				t.Errorf("%s is not 0755", name)
			}
			for _, m := range must {
				if !bytes.Contains(b, []byte(m)) {
					t.Errorf("%s lacks %q", name, m)
				}
			}
			run(t, "sh", "-n", path)
		}
		// remove must keep the data: only the purge branch deletes it.
		b, _ := os.ReadFile(filepath.Join(ctl, "postrm"))
		if i, j := bytes.Index(b, []byte("purge)")), bytes.Index(b, []byte("rm -rf /var/lib/floorhub")); j < i {
			t.Error("postrm deletes /var/lib/floorhub outside its purge branch")
		}
	})

	t.Run("config", func(t *testing.T) {
		root := t.TempDir()
		run(t, "dpkg-deb", "-x", deb, root)
		cfg, err := agent.LoadConfig(filepath.Join(root, "etc/floorhub/floorhub.yaml"))
		if err != nil {
			t.Fatalf("the installed config is invalid: %v", err)
		}
		// A fresh install never forwards its simulated readings anywhere.
		if cfg.Uplink.MQTT.URL != "" || cfg.Uplink.WebSocket.URL != "" {
			t.Errorf("an uplink is on in the installed config: mqtt %q, websocket %q", cfg.Uplink.MQTT.URL, cfg.Uplink.WebSocket.URL)
		}
		unit, err := os.ReadFile(filepath.Join(root, "lib/systemd/system/floorhub.service"))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range []string{"ExecStart=/usr/bin/floorhub-agent ", "ExecReload=/bin/kill -HUP $MAINPID",
			"RestartPreventExitStatus=78", "User=floorhub", "Type=notify", "WatchdogSec="} {
			if !bytes.Contains(unit, []byte("\n"+line)) {
				t.Errorf("the unit lacks %q", line)
			}
		}
		for _, line := range []string{"ExecStartPre=", "SupplementaryGroups=", "DynamicUser=yes"} {
			if bytes.Contains(unit, []byte("\n"+line)) {
				t.Errorf("the unit has %q", line)
			}
		}
		copyright, err := os.ReadFile(filepath.Join(root, "usr/share/doc/floorhub/copyright"))
		if err != nil {
			t.Fatal(err)
		}
		for _, mod := range []string{"go.etcd.io/bbolt", "github.com/gorilla/websocket", "periph.io/x/host/v3"} {
			if !bytes.Contains(copyright, []byte("==> "+mod+" ")) {
				t.Errorf("copyright lacks the licence of %s", mod)
			}
		}
	})

	t.Run("lintian", func(t *testing.T) {
		if _, err := exec.LookPath("lintian"); err != nil {
			testkit.Missing(t, "lintian is not installed (apt-get install lintian)")
		}
		// Clean at every level; each waiver in packaging/deb/lintian-overrides
		// says why.
		out, err := exec.Command("lintian", "--fail-on", "error,warning,info,pedantic", "--display-info", "--pedantic", deb).CombinedOutput()
		msg := strings.TrimSpace(strings.ReplaceAll(string(out), "running with root privileges is not recommended!", ""))
		if err != nil || msg != "" {
			t.Errorf("lintian: %v\n%s", err, msg)
		}
	})

	t.Run("systemd-analyze", func(t *testing.T) {
		if _, err := exec.LookPath("systemd-analyze"); err != nil {
			testkit.Missing(t, "systemd-analyze is not installed (apt-get install systemd)")
		}
		// The unit as packaged, with ExecStart pointing at the binary just
		// built (verify checks that it exists). The install test below
		// verifies the installed unit, man page included.
		root := t.TempDir()
		run(t, "dpkg-deb", "-x", deb, root)
		unit, err := os.ReadFile(filepath.Join(root, "lib/systemd/system/floorhub.service"))
		if err != nil {
			t.Fatal(err)
		}
		unit = bytes.ReplaceAll(unit, []byte("/usr/bin/floorhub-agent"), []byte(filepath.Join(root, "usr/bin/floorhub-agent")))
		path := filepath.Join(t.TempDir(), "floorhub.service")
		if err := os.WriteFile(path, unit, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("systemd-analyze", "verify", "--man=no", path).CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	})
}

// TestInstall installs, upgrades, removes and purges the package with dpkg
// in a throwaway root (testdata/install.sh: an overlay over / in a private
// mount namespace), so that it runs as on a gateway without changing the
// machine that runs the test.
func TestInstall(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("installing with dpkg needs root (in a container, or a throwaway machine)")
	}
	for _, tool := range []string{"unshare", "dpkg", "adduser", "udevadm"} {
		if _, err := exec.LookPath(tool); err != nil {
			testkit.Missing(t, "%s is not installed", tool)
		}
	}
	probe := t.TempDir()
	if out, err := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c",
		`mkdir -p "$1/u" "$1/w" "$1/m" && mount -t overlay overlay -o "lowerdir=/,upperdir=$1/u,workdir=$1/w" "$1/m"`, "sh", probe).CombinedOutput(); err != nil {
		t.Skipf("no overlay of / in a mount namespace here (%v: %s): the install test needs one for its throwaway root", err, bytes.TrimSpace(out))
	}
	var before []string // installed here already: not the test's doing
	for _, p := range []string{"/var/lib/floorhub", "/etc/floorhub/floorhub.yaml", "/usr/bin/floorhub-agent"} {
		if _, err := os.Stat(p); err == nil {
			before = append(before, p)
		}
	}
	old, new := buildDebs(t)
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "-m", "--propagation", "private", "sh", "testdata/install.sh", old, new, work)
	cmd.Env = append(os.Environ(), "NEWVERSION=0.2.0")
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.HasSuffix(bytes.TrimSpace(out), []byte("OK")) {
		t.Fatalf("install.sh: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	// Nothing leaked out of the namespace.
	for _, p := range []string{"/var/lib/floorhub", "/etc/floorhub/floorhub.yaml", "/usr/bin/floorhub-agent"} {
		if _, err := os.Stat(p); err == nil && !slices.Contains(before, p) {
			t.Errorf("%s exists outside the throwaway root", p)
		}
	}
}
