// Command agent runs a floorhub gateway: flags, config, run, wait for a
// signal. Everything else lives in package agent.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/floorhub/floorhub/agent"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit codes: 78 (EX_CONFIG) tells systemd not to restart a broken config.
const (
	exitOK     = 0
	exitFail   = 1
	exitUsage  = 2
	exitConfig = 78
)

func main() {
	code := run(os.Args[1:], os.Stdout, os.Stderr)
	stopProfile()
	os.Exit(code)
}

// stopProfile ends the CPU profile of a build with -tags profile
// (profile.go); a no-op otherwise.
var stopProfile = func() {}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "version":
			fmt.Fprintln(stdout, "floorhub agent", version)
			return exitOK
		case "token":
			return runToken(args[1:], stdout, stderr)
		case "passwd":
			return runPasswd(args[1:], os.Stdin, stdout, stderr)
		case "scan":
			return runScan(args[1:])
		}
	}
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: agent [flags]\n       agent token -user NAME [-uid N] [-role viewer|operator|admin] [-ttl 24h] [-groups a,b] [-broadcast]\n       agent passwd < password\n       agent scan [-bus 1]\n       agent version\n\nflags:\n")
		fs.PrintDefaults()
	}
	configPath := fs.String("config", "", "YAML config `file` (none: simulated sensors, ./data, :8000)")
	listen := fs.String("listen", "", "HTTP listen `address`, overrides listen:")
	dataDir := fs.String("data", "", "data `directory`, overrides data_dir:")
	mqttURL := fs.String("mqtt", "", "MQTT broker `URL`, overrides uplink.mqtt.url:")
	check := fs.Bool("check-config", false, "validate the config and exit (0 valid, 78 not)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "agent: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return exitUsage
	}
	cfg, err := loadConfig(*configPath, agent.Overrides{Listen: *listen, DataDir: *dataDir, MQTTURL: *mqttURL})
	if err != nil {
		fmt.Fprintln(stderr, "agent: config:", err)
		return exitConfig
	}
	if *check {
		fmt.Fprintf(stdout, "%s: OK (%d devices, %d rules, gateway_id %s from %s)\n", cfg.Source(), len(cfg.Devices), len(cfg.Rules),
			cfg.GatewayID, cfg.GatewayIDSource())
		return exitOK
	}
	// SIGHUP re-reads the config (systemctl reload); caught from here on,
	// so that one arriving during start-up does not kill the agent.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	level := new(slog.LevelVar)
	log := newLogger(cfg, level, stderr)
	hw, err := openHardware()
	if err != nil {
		log.Info("no hardware access; hardware drivers will report it as a read error", "err", err)
		hw = nil
	} else {
		defer hw.Close()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	notify := systemdNotifier(log)
	o := agent.Options{Logger: log, LogLevel: level, Version: version, Notify: notify, WatchdogInterval: watchdogInterval(),
		Ready: func(url string) { fmt.Fprintf(stdout, "floorhub is running: dashboard %s\n", url) }}
	if hw != nil {
		o.Hardware = hw
	}
	a, err := agent.New(cfg, o)
	if err != nil {
		fmt.Fprintln(stderr, "agent:", err)
		return exitConfig
	}
	reloaded := make(chan struct{})
	go func() {
		defer close(reloaded)
		overrides := agent.Overrides{Listen: *listen, DataDir: *dataDir, MQTTURL: *mqttURL}
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			log.Info("SIGHUP: re-reading the config", "file", cfg.Source())
			next, err := loadConfig(*configPath, overrides)
			if err == nil {
				err = a.Reload(next) // validates first; a bad file changes nothing
			}
			if err != nil {
				log.Error("config reload refused; the running config stays", "err", err)
			}
		}
	}()
	err = a.Run(ctx)
	stop()
	<-reloaded
	if err != nil {
		log.Error("agent failed", "err", err)
		return exitFail
	}
	return exitOK
}

func loadConfig(path string, o agent.Overrides) (*agent.Config, error) {
	if path == "" {
		return agent.ParseConfigWith("(defaults)", nil, o)
	}
	return agent.LoadConfigWith(path, o)
}

// newLogger logs at level, set here from the config and later by reloads.
func newLogger(cfg *agent.Config, level *slog.LevelVar, w io.Writer) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(cfg.Log.Level))
	level.Set(l)
	ho := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}
