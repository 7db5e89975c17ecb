package engine

import (
	"errors"
	"fmt"
	"strings"

	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/recipe"
)

// HostError is a failure on one host in one phase.
type HostError struct {
	Host      string
	Phase     string
	Msg       string
	Traceback string
	Code      int
	Hint      string // what to do about it, when the cause said
	State     string // what the host is left with
}

func (e *HostError) Error() string {
	s := fmt.Sprintf("host %s: phase %s: %s", e.Host, e.Phase, e.Msg)
	if e.State != "" {
		s += "\n" + e.State
	}
	return s
}

// Unwrap gives errs.Code its exit code.
func (e *HostError) Unwrap() error { return &errs.Error{Code: e.Code, Msg: e.Msg, Hint: e.Hint} }

func (r *runner) hostError(host, phase string, err error) *HostError {
	he := &HostError{Host: host, Phase: phase, Msg: r.opts.Redactor.Redact(err.Error()), Code: errs.Code(err), Hint: errs.Hint(err)}
	var le *recipe.Error
	if errors.As(err, &le) {
		he.Traceback = r.opts.Redactor.Redact(le.Traceback)
		he.Code = errs.CodeFailed
		if le.Cancelled != nil {
			at := ""
			if line := le.Line(); line != "" {
				at = " at " + line
			} else if le.Where != "" {
				at = " in " + le.Where
			}
			if le.TimedOut() {
				he.Msg = fmt.Sprintf("interrupted%s: the phase ran longer than phase_timeout (%s)", at, r.opts.PhaseTimeout)
			} else {
				he.Msg = fmt.Sprintf("interrupted%s (Ctrl-C or SIGTERM): the commands it started were stopped", at)
			}
		}
	}
	if he.Code == 0 {
		he.Code = errs.CodeFailed
	}
	return he
}

// summarize makes the error of a run in which hosts failed. A single failed
// host keeps its own error (and exit code).
func summarize(rep *Report) error {
	var failed []HostResult
	for _, h := range rep.Hosts {
		if h.Err != nil {
			failed = append(failed, h)
		}
	}
	if len(failed) == 1 {
		return failed[0].Err
	}
	var msgs []string
	code := errs.CodeFailed
	for _, h := range failed {
		msgs = append(msgs, h.Err.Error())
		if c := errs.Code(h.Err); c != errs.CodeFailed {
			code = c
		}
	}
	return &errs.Error{Code: code, Msg: fmt.Sprintf("%d hosts failed:\n%s", len(failed), strings.Join(msgs, "\n"))}
}

// shortError is the first line of err, bounded, for the audit log.
func shortError(err error) string {
	text := err.Error()
	var he *HostError
	if errors.As(err, &he) {
		text = fmt.Sprintf("host %s: phase %s: %s", he.Host, he.Phase, he.Msg) // without what the host is left with
	}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	msg := lines[0]
	// A remote command's error ends with what it printed: its last line is
	// the reason, which releases' history should show too.
	if last := strings.TrimSpace(lines[len(lines)-1]); len(lines) > 1 && last != "" {
		msg += " " + last
	}
	if len(msg) > 300 {
		msg = msg[:297] + "..."
	}
	return msg
}
