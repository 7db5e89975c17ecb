package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/raijin-deploy/raijin/builtins"
	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/runtime"
)

func parseDuration(s, flag string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errs.Usagef("use a duration such as 30s or 5m", "%s %q: %v", flag, s, err)
	}
	return d, nil
}

// ConfigCmd is `raijin config`.
type ConfigCmd struct{}

func (c *ConfigCmd) Run(app *App) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	if app.JSON {
		app.UI().JSONValue(cfg)
		return nil
	}
	var b strings.Builder
	row := func(k, v string) {
		src := cfg.Sources[k]
		if src == "" && v == "" {
			src = "not set"
		} else if src == "" {
			src = cfg.File
		}
		fmt.Fprintf(&b, "%-22s = %-40q # %s\n", k, v, src)
	}
	row("app", cfg.App)
	row("version", cfg.Version)
	row("installation_mode", cfg.InstallationMode)
	row("build_command", cfg.BuildCommand)
	row("distfile", cfg.Distfile)
	if cfg.Requirements != "" {
		row("requirements", cfg.Requirements)
	}
	row("release_command", cfg.ReleaseCommand)
	row("versions_to_keep", fmt.Sprint(cfg.VersionsToKeep))
	row("recipe", cfg.Recipe)
	row("local_config_dir", cfg.LocalConfigDir)
	row("webserver.upstream", cfg.Webserver.Upstream)
	row("webserver.health_check", cfg.Webserver.HealthCheck)
	for _, p := range cfg.ProcessNames() {
		fmt.Fprintf(&b, "processes.%-12s = %q  # unit %s\n", p, cfg.Processes[p], cfg.UnitName(p))
	}
	for _, h := range cfg.Hosts {
		port := "(ssh_config or 22)"
		if h.Port != 0 {
			port = fmt.Sprint(h.Port)
		}
		fmt.Fprintf(&b, "[host %s] address=%s user=%s port=%s apps_dir=%s url=%s\n", h.Name, h.Address, orDefault(h.User, "(ssh_config or local user)"), port, h.AppsDir, h.URL())
	}
	row("secrets.adapter", cfg.Secrets.Adapter)
	app.UI().Data(b.String())
	return nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// PrintenvCmd is `raijin printenv`.
type PrintenvCmd struct {
	Reveal bool `help:"Show secret values too."`
}

func (p *PrintenvCmd) Run(app *App) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	hosts, err := app.hosts(cfg)
	if err != nil {
		return err
	}
	adapter, err := builtins.NewSecretAdapter(cfg.Secrets.Adapter, cfg.Secrets.PasswordEnv)
	if err != nil {
		return err
	}
	for _, h := range hosts {
		env, err := runtime.LoadEnv(context.Background(), cfg, h, p.Reveal, adapter)
		if err != nil {
			return err
		}
		app.UI().Data(fmt.Sprintf("# host %s (%s)\n", h.Name, env.Source))
		if p.Reveal {
			// The user asked to see the values: print them as uploaded.
			fmt.Fprint(app.Stdout, env.Render())
		} else {
			app.UI().Data(env.Redacted())
		}
	}
	return nil
}

// RecipeCmd is `raijin recipe`.
type RecipeCmd struct {
	Show RecipeShowCmd `cmd:"" help:"Print the phases of the deploy and where each phase and hook comes from."`
}

// RecipeShowCmd is `raijin recipe show`.
type RecipeShowCmd struct {
	Recipe string `placeholder:"FILE" help:"Load this Lua recipe after the built-in one." type:"existingfile"`
	Flow   string `default:"deploy" help:"The flow to show (deploy, rollback)."`
}

func (r *RecipeShowCmd) Run(app *App) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	phases, err := runtime.Plan(runtime.Options{Config: cfg, Sources: runtime.SourcesFor(cfg, r.Recipe), Flow: r.Flow})
	if err != nil {
		return err
	}
	if app.JSON {
		app.UI().JSONValue(phases)
		return nil
	}
	var b strings.Builder
	if len(phases) > 0 {
		fmt.Fprintf(&b, "flow %s: phase list from %s\n", r.Flow, origin(phases[0].FlowSource))
	}
	for i, p := range phases {
		where := "host"
		if p.Local {
			where = "local"
		}
		fmt.Fprintf(&b, "%2d. %-10s %-5s  %s\n", i+1, p.Name, where, origin(p.Source))
		for _, s := range p.Before {
			fmt.Fprintf(&b, "      before    %s\n", origin(s))
		}
		for _, s := range p.Overrides {
			fmt.Fprintf(&b, "      override  %s\n", origin(s))
		}
		for _, s := range p.After {
			fmt.Fprintf(&b, "      after     %s\n", origin(s))
		}
		if p.Undo != "" {
			fmt.Fprintf(&b, "      undo      %s\n", origin(p.Undo))
		}
	}
	app.UI().Data(b.String())
	return nil
}

// origin labels where a phase, override or hook comes from.
func origin(src string) string {
	switch {
	case strings.HasPrefix(src, "recipes/"):
		return src + " (built-in)"
	case strings.Contains(src, "hooks/") && strings.HasSuffix(src, ".lua"):
		return src + " (hook file)"
	case strings.Contains(src, "hooks/") && !strings.Contains(src, ".lua:"):
		return src + " (executable hook, run on this machine)"
	}
	return src
}
