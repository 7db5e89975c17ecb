package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// --json writes one event per line on stdout: phases started and finished
// on each host with durations, every remote command with its host, upload
// progress, and a final result with what the deploy cost. -v echoes each
// remote command with its host; no colours when not on a terminal.
func TestDeployJSONEventsAndVerboseEcho(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "json", Hosts: []*TestHost{h}})
	r := p.MustRaijin("deploy", "--json")
	if strings.TrimSpace(r.Stderr) != "" {
		t.Errorf("--json should leave stderr empty, got:\n%s", r.Stderr)
	}
	type ev = map[string]any
	var events []ev
	for _, l := range strings.Split(strings.TrimRight(r.Stdout, "\n"), "\n") {
		var e ev
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("stdout line is not one JSON object: %q", l)
		}
		if _, ok := e["event"].(string); !ok {
			t.Fatalf("event without an \"event\" field: %q", l)
		}
		if _, ok := e["time"].(string); !ok {
			t.Fatalf("event without a \"time\" field: %q", l)
		}
		events = append(events, e)
	}
	started, finished := map[string]bool{}, map[string]bool{}
	var commands, uploads int
	for _, e := range events {
		switch e["event"] {
		case "phase_started":
			started[e["host"].(string)+"/"+e["phase"].(string)] = true
		case "phase_finished":
			finished[e["host"].(string)+"/"+e["phase"].(string)] = true
			if _, ok := e["seconds"].(float64); !ok || e["ok"] != true {
				t.Errorf("phase_finished needs seconds and ok=true: %v", e)
			}
		case "command":
			commands++
			if e["host"] != h.Name && e["host"] != "local" || e["command"] == "" {
				t.Errorf("command event without its host or command: %v", e)
			}
		case "upload":
			uploads++
			if e["host"] != h.Name || e["total"].(float64) <= 0 || e["sent"].(float64) > e["total"].(float64) {
				t.Errorf("upload event: %v", e)
			}
		}
	}
	for _, ph := range []string{"local/build", h.Name + "/connect", h.Name + "/transfer", h.Name + "/services", h.Name + "/proxy", "local/done"} {
		if !started[ph] || !finished[ph] {
			t.Errorf("no phase_started/phase_finished pair for %s", ph)
		}
	}
	if commands < 3 || uploads < 1 {
		t.Errorf("want command and upload events, got %d commands, %d uploads", commands, uploads)
	}
	last := events[len(events)-1]
	if last["event"] != "result" || last["ok"] != true || last["version"] != "1.0.0" {
		t.Fatalf("the last event should be the result: %v", last)
	}
	for _, k := range []string{"connections", "remote_commands", "steps", "uploads", "bytes_sent", "seconds"} {
		if v, ok := last[k].(float64); !ok || v <= 0 {
			t.Errorf("result %s = %v, want a positive number", k, last[k])
		}
	}
	if last["connections"].(float64) != 1 {
		t.Errorf("one SSH connection per host, got %v", last["connections"])
	}
	if urls, _ := last["urls"].([]any); len(urls) != 1 || urls[0] != p.SiteURL(h) {
		t.Errorf("result urls = %v", last["urls"])
	}

	// A failure ends with a result event too, with the error and exit code.
	r = p.Raijin("deploy", "--json", "--set-version", "bad/version")
	var fail map[string]any
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &fail); err != nil || fail["event"] != "result" || fail["ok"] != false || fail["exit_code"] != float64(r.Code) || r.Code != 2 {
		t.Errorf("a failed run's last event: %v (exit %d)", fail, r.Code)
	}

	// -v: each remote command echoed with its host; an unchanged build is
	// not sent again; no escape codes off a terminal.
	r = p.MustRaijin("deploy", "-v")
	if !strings.Contains(r.Stderr, "["+h.Name+"] ") || !strings.Contains(r.Stderr, "systemctl") {
		t.Errorf("-v should echo remote commands as [%s] CMD:\n%s", h.Name, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "unchanged on the server (same SHA-256): not sent") || !strings.Contains(r.Stderr, " 0 uploads") {
		t.Errorf("a redeploy of the same build should send nothing:\n%s", r.Stderr)
	}
	if strings.Contains(r.Stderr+r.Stdout, "\x1b[") {
		t.Errorf("escape codes in output that is not a terminal")
	}
}
