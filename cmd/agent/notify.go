package main

import (
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"
)

// systemdNotifier returns a function that sends sd_notify messages to
// $NOTIFY_SOCKET, or nil when not started by systemd with Type=notify.
func systemdNotifier(log *slog.Logger) func(string) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' { // abstract socket
		path = "\x00" + path[1:]
	}
	addr := &net.UnixAddr{Name: path, Net: "unixgram"}
	return func(state string) {
		c, err := net.DialUnix("unixgram", nil, addr)
		if err != nil {
			log.Warn("sd_notify failed", "state", state, "err", err)
			return
		}
		defer c.Close()
		if _, err := c.Write([]byte(state)); err != nil {
			log.Warn("sd_notify failed", "state", state, "err", err)
		}
	}
}

// watchdogInterval is systemd's WatchdogSec for this process, or 0.
func watchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond
}
