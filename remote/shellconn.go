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
// step's output followed by a marker line with its exit status. The marker
// is a secret: the script reads it from its stdin, so it is on no command
// line that another user of the server could read in ps, and a step's
// output cannot end the step early or fake its exit status.
type ShellConn struct {
	HostName string
	Address  string
	Exec     Executor
	marker   string
}

// NewShellConn sends steps to a server through exec.
func NewShellConn(name, addr string, exec Executor) *ShellConn {
	b := make([]byte, 16)
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
	script, inputs, n := batchScript(steps, flags, c.marker)
	res, err := c.Exec.Exec(ctx, script, Sized(io.MultiReader(inputs...), n))
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
// subshell, printing a marker with its exit status after it on stdout and
// stderr, and stopping at the first failure; stdin is what the script reads:
// the marker first, then each step's input. A step's input goes to it
// through a pipe, never through a file. Steps in a row that run as root run
// in one sudo (each sudo is a login of its own, logged and slow), unless a
// step after them depends on a flag one of them sets.
func batchScript(items []Step, flags map[string]bool, marker string) (script string, stdin []io.Reader, size int64) {
	var s strings.Builder
	s.WriteString(readMarker)
	add := func(r io.Reader, n int64) {
		stdin = append(stdin, r)
		size += n
	}
	add(strings.NewReader(marker+"\n"), int64(len(marker))+1)
	for f, on := range flags {
		if on {
			fmt.Fprintf(&s, "raijin_f_%s=1\n", f)
		}
	}
	for i := 0; i < len(items); {
		if j := rootGroupEnd(items, i); j > i {
			for _, it := range items[i:j] {
				if hasInput(it) {
					add(it.Input, it.Size)
				}
			}
			writeRootGroup(&s, items, i, j)
			i = j
			continue
		}
		it := items[i]
		if hasInput(it) {
			add(it.Input, it.Size)
		}
		s.WriteString(stepScript(it.Line, it, i))
		i++
	}
	s.WriteString("exit 0\n")
	return s.String(), stdin, size
}

// readMarker takes the marker from the first line of stdin (the shell's
// read takes no byte beyond the newline from a pipe).
const readMarker = "IFS= read -r raijin_m || exit 1\n"

func hasInput(it Step) bool { return it.Input != nil && it.Size > 0 }

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

// stepScript runs one step: its input, its flag and condition, its marker,
// and the stop at a failure. A step that has input reads exactly its bytes
// from stdin through a pipe (head -c reads no more than it is asked); what
// the step leaves unread is read and dropped after it, so that the next
// step's input starts where it should. The step does not see the marker.
func stepScript(line string, it Step, i int) string {
	cmd := fmt.Sprintf("( unset raijin_m; %s\n) </dev/null", line)
	skip := "rc=0"
	if hasInput(it) {
		cmd = fmt.Sprintf("head -c %d | { ( unset raijin_m; %s\n); rc=$?; IFS= read -r raijin_x 2>/dev/null && cat >/dev/null; exit $rc; }", it.Size, line)
		skip = fmt.Sprintf("head -c %d >/dev/null; rc=0", it.Size)
	}
	run := cmd + "; rc=$?"
	if it.Flag != "" {
		run = fmt.Sprintf("raijin_out=$(%s); rc=$?; printf '%%s\\n' \"$raijin_out\"; case $raijin_out in *changed*) raijin_f_%s=1;; esac", cmd, it.Flag)
	}
	if it.When != "" {
		run = fmt.Sprintf("if [ -n \"${raijin_f_%s:-}\" ]; then %s; else %s; fi", it.When, run, skip)
	}
	return run + "\n" + fmt.Sprintf("printf '\\n%%s %d %%d\\n' \"$raijin_m\" $rc; printf '\\n%%s %d %%d\\n' \"$raijin_m\" $rc >&2; [ $rc -eq 0 ] || exit $rc\n", i, i)
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

// writeRootGroup runs items[i:j] in one sudo, whose shell reads the marker
// and then each step's input from stdin, as the script does outside; the
// flags they test are handed in as arguments. Its stdin is a pipe that holds
// just those bytes, so a sudo that reads more than its command does (one
// that logs input, say) cannot take the input of a step after it.
func writeRootGroup(s *strings.Builder, items []Step, i, j int) {
	var inner strings.Builder
	var args []string
	used := map[string]bool{}
	for _, it := range items[i:j] {
		if it.When != "" && !used[it.When] {
			used[it.When] = true
			args = append(args, it.When)
		}
	}
	inner.WriteString(readMarker)
	for k, f := range args {
		fmt.Fprintf(&inner, "raijin_f_%s=${%d}\n", f, k+1)
	}
	inner.WriteString("shift $#\n") // the steps see no arguments, as outside
	for k, it := range items[i:j] {
		inner.WriteString(stepScript(it.Root, it, i+k))
	}
	inner.WriteString("exit 0\n")
	var n int64
	for _, it := range items[i:j] {
		if hasInput(it) {
			n += it.Size
		}
	}
	s.WriteString("{ printf '%s\\n' \"$raijin_m\"")
	if n > 0 {
		fmt.Fprintf(s, "; head -c %d", n)
	}
	fmt.Fprintf(s, "; } | sudo -n sh -c %s raijin", shell.Quote(inner.String()))
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
		if len(f) == 2 && f[0] == strconv.Itoa(len(codes)) {
			code, _ = strconv.Atoi(f[1])
		}
		codes = append(codes, code)
		rest = after
	}
}
