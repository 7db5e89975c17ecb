package config

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/raijin-deploy/raijin/errs"
)

// Process is one entry of [processes]: either the string form
// (name = "command") or the table form ([processes.NAME] with command,
// schedule, replicas).
type Process struct {
	Name    string `luar:"name" json:"name"`
	Command string `luar:"command" json:"command"`
	// Schedule is a systemd calendar event (OnCalendar=): the process runs
	// from a timer, once per event, instead of all the time. "" runs always.
	Schedule string `luar:"schedule" json:"schedule,omitempty"`
	// Replicas is how many instances run ({app}-NAME@1.service ...
	// @N.service, from one template unit); 0 when the file does not set
	// it: then one instance runs as {app}-NAME.service.
	Replicas int `luar:"replicas" json:"replicas,omitempty"`
}

// Scheduled reports whether the process runs from a timer.
func (p Process) Scheduled() bool { return p.Schedule != "" }

// Replicated reports whether the process runs as instances of a template
// unit ({app}-NAME@N.service): the file sets replicas.
func (p Process) Replicated() bool { return p.Replicas > 0 }

// Process is the process name of [processes]; ok is false when there is
// none.
func (c *Config) Process(name string) (p Process, ok bool) {
	p, ok = c.ProcessSpecs[name]
	return p, ok
}

// processKeys are the keys of a process's table form.
var processKeys = []string{"command", "schedule", "replicas"}

// resolveProcesses reads [processes] (each entry a command, or a table
// with command, schedule and replicas) into Processes and ProcessSpecs.
func (c *Config) resolveProcesses() error {
	if len(c.RawProcesses) == 0 {
		return errs.Usagef("add a [processes] table with at least web = \"COMMAND\"", "%s: missing [processes]: nothing to run", c.File)
	}
	names := make([]string, 0, len(c.RawProcesses))
	for name := range c.RawProcesses {
		names = append(names, name)
	}
	sort.Strings(names) // the first bad one is reported, the same each time
	c.Processes, c.ProcessSpecs = map[string]string{}, map[string]Process{}
	for _, name := range names {
		key := "processes." + name
		if !procRe.MatchString(name) {
			return c.keyError(key, "process name %q: use [a-z][a-z0-9-]{0,30}", name)
		}
		p, err := c.decodeProcess(name, c.RawProcesses[name])
		if err != nil {
			return err
		}
		c.Processes[name], c.ProcessSpecs[name] = p.Command, p
	}
	return nil
}

// decodeProcess reads one entry of [processes].
func (c *Config) decodeProcess(name string, raw any) (Process, error) {
	key := "processes." + name
	p := Process{Name: name}
	switch v := raw.(type) {
	case string:
		p.Command = v
	case map[string]any:
		for k := range v {
			if !slices.Contains(processKeys, k) {
				return p, c.keyErrorHint(key+"."+k, "a process's table takes "+strings.Join(processKeys, ", "), "unknown key %q", k)
			}
		}
		cmd, ok := v["command"]
		if !ok {
			return p, c.keyErrorHint(key, `add command = "..." to the table`, "the process has no command")
		}
		if p.Command, ok = cmd.(string); !ok {
			return p, c.keyError(key+".command", "expected a string, got %s", tomlKind(cmd))
		}
		if s, set := v["schedule"]; set {
			if p.Schedule, ok = s.(string); !ok {
				return p, c.keyError(key+".schedule", "expected a string (a systemd calendar event), got %s", tomlKind(s))
			}
			if err := CheckCalendar(p.Schedule); err != nil {
				return p, c.keyErrorHint(key+".schedule", `write a systemd OnCalendar= event: "daily", "hourly", "Mon..Fri *-*-* 09:00", "*:0/15" (every 15 minutes); see systemd.time(7)`,
					"%q is not a calendar event: %v", p.Schedule, err)
			}
		}
		if r, set := v["replicas"]; set {
			n, err := replicaCount(r)
			if err != nil {
				return p, c.keyErrorHint(key+".replicas", "write a whole number of instances, 1 or more (replicas = 3)", "%v", err)
			}
			p.Replicas = n
		}
	default:
		return p, c.keyError(key, "expected a command (a string) or a table with command, got %s", tomlKind(raw))
	}
	if strings.TrimSpace(p.Command) == "" || strings.ContainsAny(p.Command, "\n\r") {
		where := key
		if _, table := raw.(map[string]any); table {
			where += ".command"
		}
		return p, c.keyError(where, "the command must be one non-empty line")
	}
	if p.Scheduled() && p.Replicated() {
		return p, c.keyErrorHint(key+".replicas", "remove replicas: each event runs the command once", "a scheduled process (schedule) runs no replicas")
	}
	if name == "web" && p.Scheduled() {
		return p, c.keyErrorHint(key+".schedule", "give the scheduled job a process of its own ([processes.NAME])", "web serves requests all the time: it cannot run on a schedule")
	}
	if name == "web" && p.Replicated() {
		return p, c.keyErrorHint(key+".replicas", "run more workers in the one web process (gunicorn --workers, threads), or add hosts with the role web behind a load balancer",
			"web runs in one blue/green slot at a time, on one port or socket: it takes no replicas")
	}
	return p, nil
}

// replicaCount reads replicas: a whole number, at least 1.
func replicaCount(v any) (int, error) {
	switch n := v.(type) {
	case int64:
		if n < 1 {
			return 0, fmt.Errorf("%d: a process runs 1 instance or more (to stop it, remove it from [processes] or run `raijin app stop NAME`)", n)
		}
		if n > MaxReplicas {
			return 0, fmt.Errorf("%d: at most %d instances", n, MaxReplicas)
		}
		return int(n), nil
	case float64:
		if n == math.Trunc(n) && !math.IsInf(n, 0) {
			return 0, fmt.Errorf("%v: write it without a decimal point", n)
		}
		return 0, fmt.Errorf("%v is not a whole number", n)
	default:
		return 0, fmt.Errorf("expected a whole number, got %s", tomlKind(v))
	}
}

// MaxReplicas bounds replicas and `app scale`.
const MaxReplicas = 100

// CheckReplicas checks a count given on the command line (app scale).
func CheckReplicas(n int) error {
	_, err := replicaCount(int64(n))
	return err
}

// tomlKind names a decoded TOML value's type for an error.
func tomlKind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a number"
	case bool:
		return "true or false"
	case map[string]any:
		return "a table"
	case []any:
		return "an array"
	default:
		return fmt.Sprintf("a TOML %T", v)
	}
}

// ProcessUnit is the unit that runs proc on a host: {app}-{name}.service,
// the template {app}-{name}@.service for replicas, and for web the
// pattern of its slots' units.
func (c *Config) ProcessUnit(proc string) string {
	if p, ok := c.Process(proc); ok && p.Replicated() {
		return c.App + "-" + proc + "@.service"
	}
	return c.UnitName(proc)
}

// ReplicaUnit is instance i (from 1) of a replicated process.
func (c *Config) ReplicaUnit(proc string, i int) string {
	return fmt.Sprintf("%s-%s@%d.service", c.App, proc, i)
}

// TimerUnit is the timer of a scheduled process.
func (c *Config) TimerUnit(proc string) string { return c.App + "-" + proc + ".timer" }
