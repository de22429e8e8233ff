package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/floorhub/floorhub/agent"
	"github.com/floorhub/floorhub/auth"
)

// installedConfig is where the package installs the config; `agent
// token` reads it when given neither -config nor -data. A var for tests.
var installedConfig = "/etc/floorhub/floorhub.yaml"

// runToken implements `agent token -user NAME [-ttl 24h]`: a token signed
// with the secret of the agent's data directory. It never makes a secret
// unless told to (-create-secret): one made where no agent has run signs
// tokens that the running agent refuses.
func runToken(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agent token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	user := fs.String("user", "", "the token's user (sub)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	configPath := fs.String("config", "", "the agent's config `file` (for data_dir); default "+installedConfig+" when it exists")
	dataDir := fs.String("data", "", "the agent's data `directory` holding the secret, overrides data_dir:")
	groups := fs.String("groups", "", "comma-separated Aether V3 `groups` the token may join (default: all)")
	broadcast := fs.Bool("broadcast", false, "allow target broadcast on the V3 endpoint")
	uid := fs.Int64("uid", 0, "the user's `number` in the floor chat (the uid claim; Socket.IO's userId); without it the token cannot join the chat")
	role := fs.String("role", "", "the token's `role`: viewer, operator or admin (default: the configured user's role, else admin)")
	create := fs.Bool("create-secret", false, "make a new secret if the data directory has none (for an agent not started yet)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	// A stray word (`-uid 3 viewer` for `-role viewer`) would otherwise
	// mint a token without what it was meant to say.
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "agent token: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	extra := auth.Claims{Broadcast: *broadcast, UserID: *uid, Role: *role}
	if *role != "" {
		if _, err := auth.ParseRole(*role); err != nil {
			fmt.Fprintln(stderr, "agent token: -role:", err)
			return exitUsage
		}
	}
	if *groups != "" {
		extra.Groups = strings.Split(*groups, ",")
	}
	if *user == "" || *ttl <= 0 || *uid < 0 {
		fmt.Fprintln(stderr, "agent token: -user NAME is required, -ttl must be positive and -uid not negative")
		return exitUsage
	}
	if *configPath == "" && *dataDir == "" {
		if _, err := os.Stat(installedConfig); err == nil {
			*configPath = installedConfig
		}
	}
	cfg, err := loadConfig(*configPath, agent.Overrides{DataDir: *dataDir})
	if err != nil {
		fmt.Fprintln(stderr, "agent: config:", err)
		return exitConfig
	}
	if cfg.Auth.Algorithm != "HS256" {
		fmt.Fprintf(stderr, "agent token: %s: auth.algorithm is %s: the hub takes tokens signed by your issuer's key, not the local secret\n", cfg.Source(), cfg.Auth.Algorithm)
		return exitFail
	}
	secretPath := filepath.Join(cfg.DataDir, auth.SecretFile)
	secret, err := auth.LoadSecret(cfg.DataDir)
	switch {
	case errors.Is(err, os.ErrNotExist) && *create:
		secret, err = auth.LoadOrCreateSecret(cfg.DataDir)
	case errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(stderr, "agent token: no secret at %s (config %s): no agent has run with this data directory, and a token signed with a new secret would be refused by the agent you mean.\n"+
			"Give that agent's -config or -data (a packaged agent: -config %s), or -create-secret for an agent that has not started yet.\n",
			secretPath, cfg.Source(), installedConfig)
		return exitFail
	case errors.Is(err, os.ErrPermission):
		fmt.Fprintf(stderr, "agent token: %v: run it as root or as the agent's user\n", err)
		return exitFail
	}
	if err != nil {
		fmt.Fprintln(stderr, "agent token:", err)
		return exitFail
	}
	tok, err := auth.Mint(secret, *user, *ttl, extra)
	if err != nil {
		fmt.Fprintln(stderr, "agent token:", err)
		return exitFail
	}
	fmt.Fprintf(stderr, "agent token: signed with %s (config %s)\n", secretPath, cfg.Source())
	fmt.Fprintln(stdout, tok)
	return exitOK
}
