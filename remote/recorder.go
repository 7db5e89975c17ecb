package remote

import (
	"context"
	"strings"
	"sync"
)

// Recorder is the Conn of --dry-run and of tests: it runs nothing, records
// every step it is sent, one round trip per Send, and answers as a server
// would where the Session needs an answer: a write changed its file, an
// upload's check finds the file missing (so the upload is shown), anything
// else succeeds with no output (DefaultAnswer). Respond, when set, answers
// instead: a step it gives a non-zero exit stops the round trip, as on a
// server, and an error is the connection's (the round trip is lost).
type Recorder struct {
	HostName string
	Respond  func(ctx context.Context, st Step) (Result, error)
	OnStep   func(trip int, st Step) // told of each step as it is sent

	mu    sync.Mutex
	Steps []Step
	Trips int
	dead  error
}

func (r *Recorder) Name() string                { return r.HostName }
func (r *Recorder) Addr() string                { return r.HostName + " (recorded)" }
func (r *Recorder) Alive(context.Context) error { r.mu.Lock(); defer r.mu.Unlock(); return r.dead }
func (r *Recorder) Drop(err error)              { r.mu.Lock(); r.dead = err; r.mu.Unlock() }

// Send records steps and answers each (see Recorder).
func (r *Recorder) Send(ctx context.Context, steps []Step, flags map[string]bool) ([]Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.dead != nil {
		err := r.dead
		r.mu.Unlock()
		return nil, err
	}
	r.Trips++
	trip := r.Trips
	r.mu.Unlock()
	set := map[string]bool{}
	for k, v := range flags {
		set[k] = v
	}
	var results []Result
	for _, st := range steps {
		if st.When != "" && !set[st.When] {
			results = append(results, Result{})
			continue
		}
		r.mu.Lock()
		r.Steps = append(r.Steps, st)
		r.mu.Unlock()
		if r.OnStep != nil {
			r.OnStep(trip, st)
		}
		res := DefaultAnswer(st)
		if r.Respond != nil {
			var err error
			if res, err = r.Respond(ctx, st); err != nil {
				return results, err
			}
		}
		if st.Flag != "" && strings.Contains(res.Stdout, "changed") {
			set[st.Flag] = true
		}
		results = append(results, res)
		if res.Code != 0 {
			break
		}
	}
	return results, nil
}

// DefaultAnswer is the Recorder's answer to st without Respond.
func DefaultAnswer(st Step) Result {
	switch st.Kind {
	case "write":
		return Result{Stdout: "changed\n"}
	case "check":
		return Result{Stdout: "send\n"}
	}
	return Result{}
}

// Describe lists each step's command line.
func (r *Recorder) Describe(steps []Step) []string {
	out := make([]string, len(steps))
	for i, st := range steps {
		out[i] = whenPrefix(st) + st.Line
	}
	return out
}
