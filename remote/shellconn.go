package remote

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/raijin-deploy/raijin/shell"
)

// Executor runs one shell script on a server, with stdin: an SSH connection
// (transport.Client).
type Executor interface {
	Exec(ctx context.Context, script string, stdin io.Reader) (Result, error)
	Alive(ctx context.Context) error
}

// ShellConn is a Conn that sends a batch of steps as one shell script, each
// step's output followed by a marker line with its exit status.
type ShellConn struct {
	HostName string
	Address  string
	Exec     Executor
	marker   string
}

// NewShellConn sends steps to a server through exec.
func NewShellConn(name, addr string, exec Executor) *ShellConn {
	b := make([]byte, 6)
	rand.Read(b)
	return &ShellConn{HostName: name, Address: addr, Exec: exec, marker: "@@raijin-" + hex.EncodeToString(b)}
}

func (c *ShellConn) Name() string                    { return c.HostName }
func (c *ShellConn) Addr() string                    { return c.Address }
func (c *ShellConn) Alive(ctx context.Context) error { return c.Exec.Alive(ctx) }

// DiedError says that a batch's script stopped before step Index without
// that step failing (the shell was killed, say); Res is what it printed.
type DiedError struct {
	Index int
	Res   Result
}

func (e *DiedError) Error() string {
	return fmt.Sprintf("the script stopped before step %d", e.Index+1)
}

// Send runs steps as one script (see Conn.Send). A single step without flags
// goes as it is: no wrapper to read in -v or in errors.
func (c *ShellConn) Send(ctx context.Context, steps []Step, flags map[string]bool) ([]Result, error) {
	if len(steps) == 1 && steps[0].Flag == "" && steps[0].When == "" {
		res, err := c.Exec.Exec(ctx, steps[0].Line, steps[0].Input)
		if err != nil {
			return nil, err
		}
		return []Result{res}, nil
	}
	var inputs []io.Reader
	var n int64
	for _, st := range steps {
		if st.Input != nil {
			inputs = append(inputs, st.Input)
			n += st.Size
		}
	}
	var input io.Reader
	if len(inputs) > 0 {
		input = Sized(io.MultiReader(inputs...), n)
	}
	res, err := c.Exec.Exec(ctx, batchScript(steps, flags, c.marker), input)
	if err != nil {
		return nil, err
	}
	outs, codes, outTail := splitOutput(res.Stdout, c.marker)
	errs, _, errTail := splitOutput(res.Stderr, c.marker)
	var results []Result
	for i := range codes {
		r := Result{Stdout: outs[i], Code: codes[i]}
		if i < len(errs) {
			r.Stderr = errs[i]
		}
		results = append(results, r)
	}
	if len(results) < len(steps) && (len(results) == 0 || results[len(results)-1].Code == 0) {
		i := len(results)
		// What the script printed after the last step that ended.
		return results, &DiedError{Index: i, Res: Result{Stdout: outTail, Stderr: shell.LastLines(errTail, 8), Code: res.Code}}
	}
	return results, nil
}

// batchScript is the shell script that runs items in order, each in a
// subshell with its own stdin (read from the script's stdin, exactly its
// size), printing a marker with its exit status after it on stdout and
// stderr, and stopping at the first failure. Steps in a row that run as root
// run in one sudo (each sudo is a login of its own, logged and slow), unless
// a step after them depends on a flag one of them sets.
func batchScript(items []Step, flags map[string]bool, marker string) string {
	var s strings.Builder
	// Inside raijin's worker, its directory holds the inputs; else a file of
	// our own.
	s.WriteString("if [ -n \"${raijin_w:-}\" ]; then raijin_in=$raijin_w/in; else raijin_in=$(mktemp); trap 'rm -f \"$raijin_in\" \"$raijin_in\".*' EXIT; fi\n")
	for f, on := range flags {
		if on {
			fmt.Fprintf(&s, "raijin_f_%s=1\n", f)
		}
	}
	for i := 0; i < len(items); {
		if j := rootGroupEnd(items, i); j > i {
			writeRootGroup(&s, items, i, j, marker)
			i = j
			continue
		}
		it := items[i]
		in := "</dev/null"
		if it.Input != nil {
			fmt.Fprintf(&s, "head -c %d > \"$raijin_in\"\n", it.Size)
			in = `<"$raijin_in"`
		}
		s.WriteString(stepScript(it.Line, in, it, i, marker))
		i++
	}
	s.WriteString("exit 0\n")
	return s.String()
}

// rootGroupEnd is where the steps from i on that share one sudo end, or i
// when step i does not start such a group: two or more root steps in a row,
// unless a step after them depends on a flag one of them sets.
func rootGroupEnd(items []Step, i int) int {
	j := i
	for j < len(items) && items[j].Root != "" {
		j++
	}
	if j-i >= 2 && !flagsUsedAfter(items, i, j) {
		return j
	}
	return i
}

// Describe is what Send sends for steps, a line per command as the server
// runs it, for -v: root steps that share one sudo are shown as that sudo.
func (c *ShellConn) Describe(steps []Step) []string {
	var out []string
	for i := 0; i < len(steps); {
		if j := rootGroupEnd(steps, i); j > i && len(steps) > 1 {
			var inner []string
			for _, st := range steps[i:j] {
				inner = append(inner, whenPrefix(st)+st.Root)
			}
			out = append(out, fmt.Sprintf("sudo -n sh -c %s   # one sudo for %d steps", shell.Quote(strings.Join(inner, "\n")), j-i))
			i = j
			continue
		}
		out = append(out, whenPrefix(steps[i])+steps[i].Line)
		i++
	}
	return out
}

func whenPrefix(st Step) string {
	if st.When == "" {
		return ""
	}
	return "[only if " + st.When + " changed] "
}

// stepScript runs one step: its flag and condition, its marker, and the stop
// at a failure.
func stepScript(line, in string, it Step, i int, marker string) string {
	run := fmt.Sprintf("( %s\n) %s; rc=$?", line, in)
	if it.Flag != "" {
		run = fmt.Sprintf("raijin_out=$( ( %s\n) %s); rc=$?; printf '%%s\\n' \"$raijin_out\"; case $raijin_out in *changed*) raijin_f_%s=1;; esac", line, in, it.Flag)
	}
	if it.When != "" {
		run = fmt.Sprintf("if [ -n \"${raijin_f_%s:-}\" ]; then %s; else rc=0; fi", it.When, run)
	}
	return run + "\n" + fmt.Sprintf("printf '\\n%s %d %%d\\n' $rc; printf '\\n%s %d %%d\\n' $rc >&2; [ $rc -eq 0 ] || exit $rc\n", marker, i, marker, i)
}

// flagsUsedAfter reports whether a step after items[i:j] runs only if a
// flag one of them sets: a flag set inside a shared sudo stays there.
func flagsUsedAfter(items []Step, i, j int) bool {
	set := map[string]bool{}
	for _, it := range items[i:j] {
		if it.Flag != "" {
			set[it.Flag] = true
		}
	}
	for _, it := range items[j:] {
		if set[it.When] {
			return true
		}
	}
	return false
}

// writeRootGroup runs items[i:j] in one sudo: their inputs are read into
// files of their own first, and the flags they test are handed in.
func writeRootGroup(s *strings.Builder, items []Step, i, j int, marker string) {
	var inner strings.Builder
	var args []string
	used := map[string]bool{}
	for _, it := range items[i:j] {
		if it.When != "" && !used[it.When] {
			used[it.When] = true
			args = append(args, it.When)
		}
	}
	inner.WriteString("raijin_in=$1\n")
	for k, f := range args {
		fmt.Fprintf(&inner, "raijin_f_%s=${%d}\n", f, k+2)
	}
	inner.WriteString("shift $#\n") // the steps see no arguments, as outside
	for k, it := range items[i:j] {
		in := "</dev/null"
		if it.Input != nil {
			// Only the deploy user may read what goes to a root step.
			fmt.Fprintf(s, "(umask 077; head -c %d > \"$raijin_in.%d\")\n", it.Size, k)
			in = fmt.Sprintf(`<"$raijin_in.%d"`, k)
		}
		inner.WriteString(stepScript(it.Root, in, it, i+k, marker))
	}
	inner.WriteString("exit 0\n")
	fmt.Fprintf(s, "sudo -n sh -c %s raijin \"$raijin_in\"", shell.Quote(inner.String()))
	for _, f := range args {
		fmt.Fprintf(s, " \"${raijin_f_%s:-}\"", f)
	}
	s.WriteString("; rc=$?; [ $rc -eq 0 ] || exit $rc\n")
}

// splitOutput cuts a stream at the markers: out[i] is item i's output and
// codes[i] its exit status, for the items that ran.
func splitOutput(stream, marker string) (outs []string, codes []int, tail string) {
	rest := stream
	for {
		k := strings.Index(rest, "\n"+marker+" ")
		if k < 0 {
			return outs, codes, rest
		}
		outs = append(outs, rest[:k])
		rest = rest[k+len(marker)+2:]
		line, after, _ := strings.Cut(rest, "\n")
		f := strings.Fields(line)
		code := -1
		if len(f) == 2 {
			code, _ = strconv.Atoi(f[1])
		}
		codes = append(codes, code)
		rest = after
	}
}
