package config

import (
	"strings"
	"testing"

	"github.com/raijin-deploy/raijin/errs"
)

// withProcs is minimal with [processes] replaced by procs (lines from 5).
func withProcs(procs string) string {
	return "app = \"shop\"\nversion = \"1.0.0\"\ndistfile = \"dist/shop\"\n\n" + procs + "\n[[hosts]]\naddress = \"203.0.113.10\"\n"
}

func TestProcessTableForm(t *testing.T) {
	c, err := Load(project(t, withProcs(`[processes]
web = "shop serve"
mail = { command = "shop mail", replicas = 3 }

[processes.report]
command = "shop report"
schedule = "Mon..Fri *-*-* 06:00:00"
`)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Processes["web"] != "shop serve" || c.Processes["report"] != "shop report" || c.Processes["mail"] != "shop mail" {
		t.Errorf("commands %v", c.Processes)
	}
	if p, _ := c.Process("web"); p.Scheduled() || p.Replicated() || p.Command != "shop serve" {
		t.Errorf("web %+v", p)
	}
	if p, _ := c.Process("mail"); p.Replicas != 3 || p.Scheduled() {
		t.Errorf("mail %+v", p)
	}
	if p, _ := c.Process("report"); p.Schedule != "Mon..Fri *-*-* 06:00:00" || p.Replicated() {
		t.Errorf("report %+v", p)
	}
	if _, ok := c.Process("nope"); ok {
		t.Error("a process that does not exist")
	}
	if got := c.ProcessNames(); strings.Join(got, " ") != "web mail report" {
		t.Errorf("names %v", got)
	}
	if c.UnitName("mail") != "shop-mail@*.service" || c.ProcessUnit("mail") != "shop-mail@.service" || c.ReplicaUnit("mail", 2) != "shop-mail@2.service" {
		t.Errorf("units %s %s", c.UnitName("mail"), c.ProcessUnit("mail"))
	}
	if c.UnitName("report") != "shop-report.service" || c.TimerUnit("report") != "shop-report.timer" {
		t.Errorf("units %s %s", c.UnitName("report"), c.TimerUnit("report"))
	}
}

func TestProcessErrors(t *testing.T) {
	for _, tc := range []struct{ name, procs, want string }{
		{"bad schedule", "[processes]\nweb = \"a\"\n\n[processes.report]\ncommand = \"r\"\nschedule = \"every tuesday-ish\"\n",
			`:10: processes.report.schedule: "every tuesday-ish" is not a calendar event: "every" is neither a day of the week`},
		{"schedule not a string", "[processes]\nweb = \"a\"\nreport = { command = \"r\", schedule = 5 }\n",
			`:7: processes.report.schedule: expected a string (a systemd calendar event), got an integer`},
		{"replicas zero", "[processes]\nweb = \"a\"\n\n[processes.mail]\ncommand = \"m\"\nreplicas = 0\n",
			`:10: processes.mail.replicas: 0: a process runs 1 instance or more`},
		{"replicas negative", "[processes]\nweb = \"a\"\n\n[processes.mail]\ncommand = \"m\"\nreplicas = -2\n",
			`:10: processes.mail.replicas: -2: a process runs 1 instance or more`},
		{"replicas fraction", "[processes]\nweb = \"a\"\n\n[processes.mail]\ncommand = \"m\"\nreplicas = 1.5\n",
			`:10: processes.mail.replicas: 1.5 is not a whole number`},
		{"replicas a string", "[processes]\nweb = \"a\"\n\n[processes.mail]\ncommand = \"m\"\nreplicas = \"3\"\n",
			`:10: processes.mail.replicas: expected a whole number, got a string`},
		{"replicas inline", "[processes]\nweb = \"a\"\nmail = { command = \"m\", replicas = 0 }\n",
			`:7: processes.mail.replicas: 0: a process runs 1 instance or more`},
		{"too many replicas", "[processes]\nweb = \"a\"\n\n[processes.mail]\ncommand = \"m\"\nreplicas = 1000\n",
			`:10: processes.mail.replicas: 1000: at most 100 instances`},
		{"replicas on web", "[processes.web]\ncommand = \"a\"\nreplicas = 2\n",
			`:7: processes.web.replicas: web runs in one blue/green slot at a time`},
		{"schedule on web", "[processes.web]\ncommand = \"a\"\nschedule = \"daily\"\n",
			`:7: processes.web.schedule: web serves requests all the time`},
		{"schedule and replicas", "[processes]\nweb = \"a\"\n\n[processes.r]\ncommand = \"m\"\nschedule = \"daily\"\nreplicas = 2\n",
			`:11: processes.r.replicas: a scheduled process (schedule) runs no replicas`},
		{"unknown key", "[processes]\nweb = \"a\"\n\n[processes.mail]\ncommand = \"m\"\nreplica = 2\n",
			`:10: processes.mail.replica: unknown key "replica"`},
		{"no command", "[processes]\nweb = \"a\"\n\n[processes.mail]\nreplicas = 2\n",
			`:8: processes.mail: the process has no command`},
		{"empty command", "[processes]\nweb = \"a\"\n\n[processes.mail]\ncommand = \" \"\n",
			`:9: processes.mail.command: the command must be one non-empty line`},
		{"a number", "[processes]\nweb = \"a\"\nmail = 3\n",
			`:7: processes.mail: expected a command (a string) or a table with command, got an integer`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := project(t, withProcs(tc.procs))
			_, err := Load(p)
			if err == nil {
				t.Fatal("no error")
			}
			if c := errs.Code(err); c != errs.CodeUsage {
				t.Errorf("exit code %d, want %d", c, errs.CodeUsage)
			}
			if want := p + tc.want; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error:\n  %s\nwant prefix:\n  %s", err, want)
			}
		})
	}
}

func TestCheckCalendar(t *testing.T) {
	for _, ok := range []string{"daily", "hourly", "weekly", "minutely", "monthly", "quarterly", "semiannually", "yearly", "annually",
		"Mon *-*-* 00:00:00", "Mon..Fri 09:00", "Sat,Sun 10:30", "*:0/15", "*-*-01 04:00", "2026-12-24 18:00:00",
		"*-02~01", "12-25", "*:*:0/5", "9..17:00", "Tuesday", "03:00 UTC", "*-*-* 02:00 Europe/Berlin", "*:00:00.5", "Mon,Wed..Fri *-*-* 8,12,18:00"} {
		if err := CheckCalendar(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "every tuesday-ish", "Funday", "25:00", "*:60", "*-13-01", "*-*-32", "*:0/0", "daily 03:00", "Mon Tue",
		"10:00; reboot", "17..9:00", "1969-01-01", "$(id)", "*:1.5", "now"} {
		if err := CheckCalendar(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// A destination's file may set a process's table keys over raijin.toml's:
// staging runs one replica, production three.
func TestProcessTableInDestination(t *testing.T) {
	p := project(t, withProcs("[processes]\nweb = \"a\"\n\n[processes.mail]\ncommand = \"shop mail\"\nreplicas = 3\n"),
		"raijin.staging.toml", "[processes.mail]\nreplicas = 1\n")
	c, err := LoadDestination(p, "staging")
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := c.Process("mail"); m.Replicas != 1 || m.Command != "shop mail" {
		t.Errorf("mail in staging: %+v", m)
	}
	// A process given as a command in raijin.toml takes the table's keys
	// of the destination's file.
	str := project(t, withProcs("[processes]\nweb = \"a\"\nmail = \"shop mail\"\n"), "raijin.staging.toml", "[processes.mail]\nreplicas = 2\n")
	if c, err := LoadDestination(str, "staging"); err != nil {
		t.Errorf("replicas over a command: %v", err)
	} else if m, _ := c.Process("mail"); m.Replicas != 2 || m.Command != "shop mail" {
		t.Errorf("mail in staging, over a command: %+v", m)
	}
	bad := project(t, withProcs("[processes]\nweb = \"a\"\n\n[processes.mail]\ncommand = \"shop mail\"\nreplicas = 3\n"),
		"raijin.staging.toml", "\n[processes.mail]\nreplicas = 0\n")
	if _, err := LoadDestination(bad, "staging"); err == nil || !strings.Contains(err.Error(), "raijin.staging.toml:3: processes.mail.replicas: 0: a process runs 1 instance or more") {
		t.Errorf("replicas = 0 in the destination's file: %v", err)
	}
}
