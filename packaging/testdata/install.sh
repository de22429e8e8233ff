#!/bin/sh
# Installs, upgrades, removes and purges the floorhub package with dpkg in a
# throwaway root: an overlay over / in a private mount namespace, so the
# machine running the test keeps nothing of it.
#   unshare -m --propagation private sh install.sh OLD.deb NEW.deb WORKDIR
# The test (packaging/package_test.go) runs it as root.
set -eu
old="$1" new="$2" work="$3"

mkdir -p "$work/upper" "$work/work" "$work/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$work/upper,workdir=$work/work" "$work/root"
root="$work/root"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/tmp"
mount -t tmpfs tmpfs "$root/run" # no /run/systemd/system: nothing is started
mount --bind -o ro /sys "$root/sys" # read-only: udevadm test reads a device
cp "$old" "$root/tmp/old.deb"
cp "$new" "$root/tmp/new.deb"
# Only some of the sensor groups exist: the user joins those, and the
# install does not fail on the missing one.
chroot "$root" sh -c 'getent group i2c >/dev/null || addgroup --quiet --system i2c
getent group gpio >/dev/null && delgroup --quiet gpio || true
getent group dialout >/dev/null || addgroup --quiet --system dialout'
exec chroot "$root" /bin/sh -eu -c '
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

step install, as the README says: apt install ./floorhub_VERSION_ARCH.deb
# As on a gateway, udev runs: the postinst asks it to apply the package'"'"'s
# rule to the probes already there. A stand-in records what it is asked,
# first in the PATH apt gives dpkg (DPkg::Path: /usr/sbin:/usr/bin:...).
udevadm=$(command -v udevadm)
[ ! -e /usr/sbin/udevadm ] || fail "/usr/sbin/udevadm exists: no room for the stand-in"
mkdir -p /run/udev
printf "#!/bin/sh\necho \"\$*\" >>/tmp/udevadm.log\n" >/usr/sbin/udevadm
chmod 0755 /usr/sbin/udevadm
cd /tmp && DEBIAN_FRONTEND=noninteractive apt-get install -y -q ./old.deb
grep -qx -- "control --reload-rules" /tmp/udevadm.log || fail "postinst did not reload the udev rules: $(cat /tmp/udevadm.log)"
grep -qx -- "trigger --settle --action=change --subsystem-match=w1" /tmp/udevadm.log || fail "postinst did not apply the udev rule to the w1 devices: $(cat /tmp/udevadm.log)"
rm -r /run/udev /usr/sbin/udevadm # from here on, no udev: the upgrade must not need it
getent passwd floorhub >/dev/null || fail "no floorhub user"
[ "$(getent passwd floorhub | cut -d: -f7)" = /usr/sbin/nologin ] || fail "the user has a login shell: $(getent passwd floorhub)"
groups=" $(id -nG floorhub) "
case "$groups" in *" i2c "*) ;; *) fail "floorhub is not in i2c: $groups" ;; esac
case "$groups" in *" dialout "*) ;; *) fail "floorhub is not in dialout: $groups" ;; esac
[ "$(stat -c %U:%G:%a /var/lib/floorhub)" = floorhub:floorhub:750 ] || fail "/var/lib/floorhub is $(stat -c %U:%G:%a /var/lib/floorhub)"
[ "$(stat -c %U:%G:%a /etc/floorhub/floorhub.yaml)" = root:floorhub:640 ] || fail "/etc/floorhub/floorhub.yaml is $(stat -c %U:%G:%a /etc/floorhub/floorhub.yaml)"
[ -x /usr/bin/floorhub-agent ] || fail "no /usr/bin/floorhub-agent"
[ -f /lib/systemd/system/floorhub.service ] || fail "no unit"
[ -L /etc/systemd/system/multi-user.target.wants/floorhub.service ] || fail "the service is not enabled"
floorhub-agent -check-config -config /etc/floorhub/floorhub.yaml || fail "the installed config is invalid"
# The service'"'"'s user runs the agent on the installed config (as the unit
# does, without systemd here): it reads the config and owns its data.
setpriv --reuid=floorhub --regid=floorhub --init-groups floorhub-agent -config /etc/floorhub/floorhub.yaml -data /var/lib/floorhub -listen 127.0.0.1:0 >/tmp/agent.out 2>&1 &
pid=$!
i=0
until grep -q "floorhub is running" /tmp/agent.out; do
	i=$((i + 1))
	[ $i -lt 100 ] || { cat /tmp/agent.out; fail "the agent did not start as floorhub"; }
	sleep 0.1
done
kill -INT $pid
wait $pid || { cat /tmp/agent.out; fail "the agent did not stop cleanly"; }
[ "$(stat -c %U /var/lib/floorhub/floorhub.db)" = floorhub ] || fail "the database is not the user'"'"'s"
rm -f /var/lib/floorhub/floorhub.db /var/lib/floorhub/floorhub.db.seq /var/lib/floorhub/jwt.secret
if command -v systemd-analyze >/dev/null; then
	systemd-analyze verify /lib/systemd/system/floorhub.service || fail "systemd-analyze verify"
else
	echo "systemd-analyze is not installed: the unit is not verified"
fi

step the udev rule for kernel 1-Wire probes parses, and its commands give the group the files of a probe
rule=/lib/udev/rules.d/60-floorhub.rules
[ -f $rule ] || fail "no $rule"
# udevadm reads every rule file for any device and names a file and line
# with each error; it runs no RUN command in a test.
out=$($udevadm test --action=change /sys/class/net/lo 2>&1) || { echo "$out"; fail "udevadm test"; }
# (/lib may be a link to /usr/lib: udevadm names the file by either.)
echo "$out" | grep -q "Reading rules file: .*/rules.d/60-floorhub.rules\$" || { echo "$out"; fail "udevadm did not read $rule"; }
if echo "$out" | grep "/rules.d/60-floorhub.rules:"; then fail "udevadm found errors in $rule"; fi
# What udev cannot check without a w1 bus: which devices the rules match.
grep -qF "ACTION!=\"remove\", SUBSYSTEM==\"w1\", TEST==\"resolution\", RUN+=" $rule || fail "no rule for a probe'"'"'s resolution"
grep -qF "ACTION!=\"remove\", SUBSYSTEM==\"w1\", TEST==\"../therm_bulk_read\", RUN+=" $rule || fail "no rule for its bus'"'"'s therm_bulk_read"
# No w1 bus here: the rule'"'"'s commands run on a copy of the files w1_therm
# creates (root, 0644), with the probe'"'"'s path where udev puts it.
probe=/tmp/sys/devices/w1_bus_master1/28-0000075e6b1a
mkdir -p $probe
: >$probe/resolution
: >$probe/../therm_bulk_read
chmod 0644 $probe/resolution $probe/../therm_bulk_read
n=0
grep -o "RUN+=\"[^\"]*\"" $rule | sed -e "s/^RUN+=\"//" -e "s/\"\$//" -e "s|/sys%p|$probe|g" >/tmp/run.sh
while read -r cmd; do
	$cmd || fail "the rule'"'"'s command failed: $cmd"
	n=$((n + 1))
done </tmp/run.sh
[ $n = 4 ] || fail "$n commands in the rule, want 4"
for f in $probe/resolution /tmp/sys/devices/w1_bus_master1/therm_bulk_read; do
	[ "$(stat -c %G:%a $f)" = floorhub:664 ] || fail "after the rule, $f is $(stat -c %G:%a $f)"
done

step upgrade keeps data and an edited config
echo "secret" >/var/lib/floorhub/jwt.secret
echo "data" >/var/lib/floorhub/floorhub.db
chown floorhub:floorhub /var/lib/floorhub/floorhub.db /var/lib/floorhub/jwt.secret
sed -i "s/level: info /level: debug/" /etc/floorhub/floorhub.yaml
grep -q "level: debug" /etc/floorhub/floorhub.yaml || fail "the config edit did not take"
dpkg -i /tmp/new.deb
[ "$(dpkg-query -W -f="\${Version}" floorhub)" = "$NEWVERSION" ] || fail "not upgraded: $(dpkg-query -W -f="\${Version}" floorhub)"
[ "$(cat /var/lib/floorhub/floorhub.db)" = data ] || fail "the upgrade lost the database"
[ "$(cat /var/lib/floorhub/jwt.secret)" = secret ] || fail "the upgrade lost the secret"
grep -q "level: debug" /etc/floorhub/floorhub.yaml || fail "the upgrade replaced the edited config"
[ "$(stat -c %U:%G:%a /etc/floorhub/floorhub.yaml)" = root:floorhub:640 ] || fail "after the upgrade, the config is $(stat -c %U:%G:%a /etc/floorhub/floorhub.yaml)"
[ ! -e /etc/floorhub/floorhub.yaml.dpkg-new ] || fail "a conffile prompt was left"

step reinstall after the administrator deleted the config
cp /etc/floorhub/floorhub.yaml /tmp/floorhub.yaml.kept
rm /etc/floorhub/floorhub.yaml
dpkg -i /tmp/new.deb || fail "configure failed with the conffile deleted"
[ ! -e /etc/floorhub/floorhub.yaml ] || fail "dpkg brought a deleted conffile back"
cp -p /tmp/floorhub.yaml.kept /etc/floorhub/floorhub.yaml
chown root:floorhub /etc/floorhub/floorhub.yaml

step remove keeps data and config
dpkg -r floorhub
[ ! -e /usr/bin/floorhub-agent ] || fail "remove left the binary"
[ ! -e /lib/systemd/system/floorhub.service ] || fail "remove left the unit"
[ ! -e /lib/udev/rules.d/60-floorhub.rules ] || fail "remove left the udev rule"
[ "$(cat /var/lib/floorhub/floorhub.db)" = data ] || fail "remove deleted the data"
[ -f /etc/floorhub/floorhub.yaml ] || fail "remove deleted the config"

step purge deletes data and config
dpkg -P floorhub
[ ! -e /var/lib/floorhub ] || fail "purge left /var/lib/floorhub"
[ ! -e /etc/floorhub ] || fail "purge left /etc/floorhub"
dpkg-query -W floorhub >/dev/null 2>&1 && fail "dpkg still knows floorhub" || true

step reinstall after purge
dpkg -i /tmp/new.deb
[ "$(stat -c %U:%a /var/lib/floorhub)" = floorhub:750 ] || fail "reinstall: /var/lib/floorhub is $(stat -c %U:%a /var/lib/floorhub)"
echo OK
'
