package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/engine"
	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/recipe"
	"github.com/raijin-deploy/raijin/secrets"
)

func parseDuration(s, flag string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errs.Usagef("use a duration such as 30s or 5m", "%s %q: %v", flag, s, err)
	}
	return d, nil
}

// ConfigCmd is `raijin config`: the resolved configuration by default, or
// the schema of raijin.toml.
type ConfigCmd struct {
	Show   ConfigShowCmd   `cmd:"" default:"1" help:"Print the resolved configuration and where each value came from (what raijin config alone does)."`
	Schema ConfigSchemaCmd `cmd:"" help:"Print the JSON Schema (draft-07) of raijin.toml, for editors: every key with its type, default and meaning."`
}

// ConfigSchemaCmd is `raijin config schema`. It reads no raijin.toml.
type ConfigSchemaCmd struct{}

func (c *ConfigSchemaCmd) Run(app *App) error {
	_, err := app.Stdout.Write(config.SchemaJSON())
	return err
}

// ConfigShowCmd is `raijin config` and `raijin config show`.
type ConfigShowCmd struct{}

func (c *ConfigShowCmd) Run(app *App) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	type row struct{ key, value, src string }
	var rows []row
	add := func(key, value string) {
		src := cfg.Source(key)
		if src == "default" && value == "" {
			src = "not set"
		}
		cfg.Sources[key] = src
		rows = append(rows, row{key, value, src})
	}
	if cfg.Destination != "" {
		rows = append(rows, row{"destination", cfg.Destination, "-d: " + cfg.DestinationFile + " over " + cfg.File})
	}
	add("app", cfg.App)
	add("version", cfg.Version)
	add("installation_mode", cfg.InstallationMode)
	add("build_command", cfg.BuildCommand)
	add("distfile", cfg.Distfile)
	if cfg.InstallationMode == "python-package" {
		add("requirements", cfg.Requirements)
		add("python_version", cfg.PythonVersion)
	}
	add("release_command", cfg.ReleaseCommand)
	add("versions_to_keep", fmt.Sprint(cfg.VersionsToKeep))
	add("recipe", cfg.Recipe)
	add("local_config_dir", cfg.LocalConfigDir)
	if cfg.ReleaseCommand != "" {
		if cfg.ReleaseOnAllHosts {
			add("release_on_all_hosts", "true  (release_command runs on every host)")
		} else {
			add("release_on_all_hosts", "false  (release_command runs once per deploy, on "+config.ReleaseHost(cfg.Hosts)+")")
		}
	}
	add("webserver.upstream", cfg.Webserver.Upstream)
	add("webserver.health_check", cfg.Webserver.HealthCheck)
	add("webserver.health_check_timeout", cfg.Webserver.HealthCheckTimeout)
	if cfg.IsBlueGreen() {
		add("webserver.blue_green", "true  (blue on "+cfg.SlotUpstream("blue")+", green on "+cfg.SlotUpstream("green")+")")
		add("webserver.drain_timeout", cfg.Webserver.DrainTimeout)
	} else {
		add("webserver.blue_green", "false  (restarted in place, on "+cfg.SlotUpstream("blue")+")")
	}
	for _, p := range cfg.ProcessNames() {
		unit := "unit " + cfg.UnitName(p)
		spec, _ := cfg.Process(p)
		switch {
		case p == "web":
			unit = "units " + cfg.SlotUnit("blue") + ", " + cfg.SlotUnit("green")
		case spec.Scheduled():
			unit = fmt.Sprintf("schedule %q: %s, from %s", spec.Schedule, unit, cfg.TimerUnit(p))
		case spec.Replicated():
			unit = fmt.Sprintf("%d replicas: %s .. %s", spec.Replicas, cfg.ReplicaUnit(p, 1), cfg.ReplicaUnit(p, spec.Replicas))
		}
		add("processes."+p, cfg.Processes[p]+"  ("+unit+")")
	}
	for i, h := range cfg.Hosts {
		k := fmt.Sprintf("hosts.%d.", i)
		add(k+"name", h.Name)
		add(k+"address", h.Address)
		add(k+"user", orDefault(h.User, "(ssh_config's User, else the local user)"))
		port := "(ssh_config's Port, else 22)"
		if h.Port != 0 {
			port = fmt.Sprint(h.Port)
		}
		add(k+"port", port)
		add(k+"proxy_jump", orDefault(h.ProxyJump, "(ssh_config's ProxyJump, else none: connected to directly)"))
		add(k+"domain_name", orDefault(h.DomainName, "(none: the address)")+"  (url "+h.URL()+")")
		add(k+"apps_dir", h.AppsDir)
		roles := strings.Join(h.Roles, ", ")
		if !h.RolesSet {
			roles += "  (default: every process)"
		}
		add(k+"roles", roles)
		if h.IsBalancer() {
			// Not a key of the file: what the balancer's site sends to.
			rows = append(rows, row{k + "balances", strings.Join(cfg.BalancerUpstreams(), ", ") + "  (health_uri " + cfg.Webserver.HealthCheck + ")", "the web hosts' sites"})
			continue
		}
		if h.Envfile != "" {
			add(k+"envfile", h.Envfile)
		} else {
			add(k+"env", fmt.Sprintf("(%d lines inline)", strings.Count(strings.TrimSpace(h.Env), "\n")+1))
		}
	}
	add("secrets.adapter", cfg.Secrets.Adapter)
	if cfg.Secrets.Adapter == "bitwarden" {
		add("secrets.password_env", cfg.Secrets.PasswordEnv)
	}
	for _, a := range sortedKeys(cfg.Aliases) {
		add("aliases."+a, cfg.Aliases[a])
	}
	if app.JSON {
		app.UI().JSONValue(cfg)
		return nil
	}
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%-32s = %-40q # %s\n", r.key, r.value, r.src)
	}
	app.UI().Data(b.String())
	return nil
}

func sortedKeys(m map[string]string) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
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

// hostEnvs reads and resolves the env of each selected host, with the
// [secrets] adapter: the first failure is the error.
func hostEnvs(app *App, cfg *config.Config, reveal bool) ([]config.Host, []*secrets.Env, error) {
	hosts, err := app.hosts(cfg)
	if err != nil {
		return nil, nil, err
	}
	adapter, err := app.secrets(cfg)
	if err != nil {
		return nil, nil, err
	}
	var envs []*secrets.Env
	for _, h := range hosts {
		env, err := engine.LoadEnv(context.Background(), cfg, h, reveal, adapter)
		if err != nil {
			return nil, nil, err
		}
		envs = append(envs, env)
	}
	return hosts, envs, nil
}

func (p *PrintenvCmd) Run(app *App) error {
	cfg, err := app.load()
	if err != nil {
		return err
	}
	hosts, envs, err := hostEnvs(app, cfg, p.Reveal)
	if err != nil {
		return err
	}
	for i, h := range hosts {
		env := envs[i]
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
	phases, err := engine.Plan(engine.Options{Config: cfg, Sources: recipe.SourcesFor(cfg, r.Recipe), Flow: r.Flow})
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
	width := 10
	for _, p := range phases {
		width = max(width, len(p.Name))
	}
	for i, p := range phases {
		where := "host"
		if p.Local {
			where = "local"
		}
		fmt.Fprintf(&b, "%2d. %-*s %-5s  %s\n", i+1, width, p.Name, where, origin(p.Source))
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
