package main

import (
	"fmt"
	"os"

	"github.com/alecthomas/kong"
	"golang.org/x/term"
)

// CLI is raijin's command line: one struct per command.
type CLI struct {
	Globals

	Deploy   DeployCmd   `cmd:"" help:"Build, transfer, install, release and start a new version on the hosts."`
	Redeploy RedeployCmd `cmd:"" help:"Deploy new code only: leave the systemd units and the Caddy site as they are."`
	Rollback RollbackCmd `cmd:"" help:"Switch back to VERSION (default: the previous one) and restart."`
	Prune    PruneCmd    `cmd:"" help:"Delete old versions beyond N on the hosts, never the current one."`
	Down     DownCmd     `cmd:"" help:"Stop the app and remove it from the hosts: units, Caddy site, app directory."`
	Releases ReleasesCmd `cmd:"" help:"List the versions on each host, the current one marked, with who deployed them and when."`
	Lock     LockCmd     `cmd:"" help:"Show or release the deploy lock."`
	Config   ConfigCmd   `cmd:"" name:"config" help:"Print the resolved configuration and where each value came from, or (config schema) the JSON Schema of raijin.toml."`
	Env      EnvCmd      `cmd:"" help:"Change the app's env on the servers without a deploy."`
	Printenv PrintenvCmd `cmd:"" help:"Print the env that would be uploaded to each host, secrets redacted."`
	Recipe   RecipeCmd   `cmd:"" help:"Inspect the deploy recipe."`
	Init     InitCmd     `cmd:"" help:"Write a commented raijin.toml, an example .env.prod and .raijin/ examples for a new project."`
	Up       UpCmd       `cmd:"" help:"Bootstrap the servers, then deploy."`
	App      AppCmd      `cmd:"" help:"Operate the deployed app: status, logs, exec, shell, start, stop, restart, export-config."`
	Server   ServerCmd   `cmd:"" help:"Operate the servers: bootstrap, info, exec, create-user."`
}

type kongVersion bool

func (kongVersion) BeforeApply(app *kong.Kong, vars kong.Vars) error {
	fmt.Fprintln(app.Stdout, vars["version"])
	app.Exit(0)
	return nil
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
