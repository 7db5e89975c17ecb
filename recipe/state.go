// Package recipe is raijin's Lua side: a sandboxed Lua state per host, the
// recipe and hook files loaded into it, the `raijin` module and the ctx table
// recipes are given, and calling a phase with its hooks and overrides. It is
// the only package that imports gopher-lua.
package recipe

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/raijin-deploy/raijin/recipes"
)

// newState returns a Lua state with only the safe standard libraries: no io,
// no os.execute/remove/getenv, no dofile/loadfile. require finds `raijin`,
// the modules of the built-in recipes (`raijin.deploy`, `raijin.steps.build`,
// ...) and Lua files of the project directory.
func newState(projectDir string, module func(*lua.LState) *lua.LTable) *lua.LState {
	L := lua.NewState(lua.Options{SkipOpenLibs: true, IncludeGoStackTrace: false})
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
		{lua.OsLibName, lua.OpenOs},
	} {
		L.Push(L.NewFunction(lib.fn))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	// What the sandbox leaves out raises an error that says so, rather than
	// "attempt to call a nil value".
	const useBuiltins = "a recipe reaches files and commands only through ctx.host and ctx.local, so that --dry-run and -v show everything it does"
	for _, name := range []string{"dofile", "loadfile", "load", "loadstring"} {
		L.SetGlobal(name, forbidden(L, name, "use require for Lua files of the project"))
	}
	for _, name := range []string{"module", "collectgarbage"} {
		L.SetGlobal(name, forbidden(L, name, "raijin manages the Lua state"))
	}
	for _, name := range []string{"io", "debug", "package"} {
		L.SetGlobal(name, forbiddenTable(L, L.NewTable(), name, useBuiltins))
	}
	// os: only the clock and dates.
	safeOS := L.NewTable()
	if osT, ok := L.GetGlobal("os").(*lua.LTable); ok {
		for _, k := range []string{"time", "clock", "date", "difftime"} {
			safeOS.RawSetString(k, osT.RawGetString(k))
		}
	}
	L.SetGlobal("os", forbiddenTable(L, safeOS, "os", useBuiltins))
	// table.unpack, as in Lua 5.2+, for recipes written against it.
	if t, ok := L.GetGlobal("table").(*lua.LTable); ok {
		t.RawSetString("unpack", L.GetGlobal("unpack"))
	}

	loaded := map[string]lua.LValue{}
	loading := map[string]bool{}
	L.SetGlobal("require", L.NewFunction(func(L *lua.LState) int {
		name := L.CheckString(1)
		if v, ok := loaded[name]; ok {
			L.Push(v)
			return 1
		}
		if loading[name] {
			L.RaiseError("module %q requires itself (through the modules it requires)", name)
		}
		loading[name] = true
		defer delete(loading, name)
		var v lua.LValue
		switch {
		case name == "raijin":
			v = module(L)
		case strings.HasPrefix(name, "raijin."):
			src, chunk, ok := builtinModule(name)
			if !ok {
				L.RaiseError("module %q not found: raijin's own modules are raijin, %s", name, strings.Join(builtinModuleNames(), ", "))
			}
			v = runModule(L, src, chunk)
		default:
			rel := strings.ReplaceAll(name, ".", "/") + ".lua"
			if strings.Contains(name, "..") || strings.HasPrefix(name, "/") || projectDir == "" {
				L.RaiseError("module %q not found: require finds raijin and Lua files of the project directory", name)
			}
			src, err := os.ReadFile(filepath.Join(projectDir, rel))
			if err != nil {
				L.RaiseError("module %q not found: no %s in %s", name, rel, projectDir)
			}
			v = runModule(L, string(src), rel)
		}
		if v == lua.LNil {
			v = lua.LTrue
		}
		loaded[name] = v
		L.Push(v)
		return 1
	}))
	return L
}

// forbidden is a stand-in for a function the sandbox leaves out.
func forbidden(L *lua.LState, name, hint string) *lua.LFunction {
	return L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("%s is not available in a raijin recipe (sandbox): %s", name, hint)
		return 0
	})
}

// forbiddenTable makes t raise on any key it lacks: io.open, os.execute.
func forbiddenTable(L *lua.LState, t *lua.LTable, name, hint string) *lua.LTable {
	mt := L.NewTable()
	mt.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("%s.%s is not available in a raijin recipe (sandbox): %s", name, L.ToStringMeta(L.Get(2)).String(), hint)
		return 0
	}))
	L.SetMetatable(t, mt)
	return t
}

func runModule(L *lua.LState, src, chunk string) lua.LValue {
	fn, err := L.Load(strings.NewReader(src), chunk)
	if err != nil {
		L.RaiseError("%s", syntaxError(err, src))
	}
	L.Push(fn)
	L.Call(0, 1)
	v := L.Get(-1)
	L.Pop(1)
	return v
}

// builtinRecipes are the embedded recipes, which raijin loads itself, once;
// require does not.
var builtinRecipes = map[string]bool{"binary.lua": true, "python.lua": true}

// builtinModule finds module raijin.NAME among the embedded recipes: the
// dots of NAME are directories, so raijin.deploy is recipes/deploy.lua and
// raijin.steps.build is recipes/steps/build.lua.
func builtinModule(name string) (src, chunk string, ok bool) {
	rel := strings.ReplaceAll(strings.TrimPrefix(name, "raijin."), ".", "/") + ".lua"
	if !fs.ValidPath(rel) || builtinRecipes[rel] {
		return "", "", false
	}
	data, err := fs.ReadFile(recipes.FS, rel)
	if err != nil {
		return "", "", false
	}
	return string(data), "recipes/" + rel, true
}

// builtinModuleNames lists the modules builtinModule finds, sorted.
func builtinModuleNames() []string {
	var names []string
	fs.WalkDir(recipes.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && path.Ext(p) == ".lua" && !builtinRecipes[p] {
			names = append(names, "raijin."+strings.ReplaceAll(strings.TrimSuffix(p, ".lua"), "/", "."))
		}
		return nil
	})
	sort.Strings(names)
	return names
}

// gopher-lua words a compile error "file line:5(column:3) near 'end':   msg".
// At the end of the input it says "file at EOF:   msg".
var (
	syntaxRE    = regexp.MustCompile(`(?s)^(.*?) line:(\d+)\(column:(\d+)\) near '(.*)':\s+(.*)$`)
	syntaxEOFRE = regexp.MustCompile(`^(.*) at EOF:\s+(.*)$`)
)

// syntaxError turns gopher-lua's compile error into "file:line: message".
func syntaxError(err error, src string) string {
	msg := err.Error()
	if ae, ok := err.(*lua.ApiError); ok && ae.Object != nil {
		msg = ae.Object.String()
	}
	msg = strings.TrimSpace(msg)
	if m := syntaxEOFRE.FindStringSubmatch(msg); m != nil {
		last := strings.Count(strings.TrimRight(src, "\n"), "\n") + 1
		what := strings.TrimSpace(m[2])
		hint := " (a missing end, ) or }?)"
		if strings.HasPrefix(what, "unterminated") {
			hint = ""
		}
		return fmt.Sprintf("%s:%d: %s at the end of the file%s", m[1], last, what, hint)
	}
	if m := syntaxRE.FindStringSubmatch(msg); m != nil {
		file, tok, what := m[1], m[4], strings.TrimSpace(m[5])
		line, _ := strconv.Atoi(m[2])
		if strings.HasPrefix(what, "unterminated string") && m[3] == "0" {
			// The lexer stops at the newline that ends the string and counts
			// it first: the string began that many lines up (more when it
			// went on over escaped newlines).
			line -= 1 + strings.Count(tok, "\n")
		}
		near := ""
		if tok != "" && tok != "EOF" {
			near = " near '" + tok + "'"
		} else if tok == "EOF" {
			near = " at the end of the file"
		}
		return fmt.Sprintf("%s:%d: %s%s", file, line, what, near)
	}
	return msg
}

// loadChunk compiles a recipe or hook file; a syntax error reads "file:line: message".
func loadChunk(L *lua.LState, src, chunk string) (*lua.LFunction, error) {
	fn, err := L.Load(strings.NewReader(src), chunk)
	if err != nil {
		return nil, fmt.Errorf("%s", syntaxError(err, src))
	}
	return fn, nil
}

// pcall calls fn(args...) with a traceback handler; the error carries the Lua
// message and the traceback.
func pcall(ctx context.Context, L *lua.LState, fn lua.LValue, args ...lua.LValue) (err error) {
	if ctx != nil {
		L.SetContext(ctx)
		defer L.RemoveContext()
	}
	L.Push(fn)
	for _, a := range args {
		L.Push(a)
	}
	perr := L.PCall(len(args), 0, nil)
	if perr == nil {
		return nil
	}
	le := &Error{Msg: perr.Error()}
	if ae, ok := perr.(*lua.ApiError); ok {
		if ae.Object != nil {
			le.Msg = ae.Object.String()
		}
		le.Traceback = ae.StackTrace
		if ae.Cause != nil && ctx != nil && ctx.Err() != nil {
			le.Msg = ctx.Err().Error()
		}
	}
	if ctx != nil && ctx.Err() != nil {
		le.Cancelled = ctx.Err()
	}
	return le
}

// Error is an error raised by recipe code (or a builtin it called).
type Error struct {
	Msg       string
	Traceback string
	Cancelled error  // the run's context ended: Ctrl-C, or the phase timed out
	Where     string // the hook file, for an executable hook
	Err       error  // what made an executable hook fail
}

func (e *Error) Error() string { return e.Msg }

// TimedOut says whether the recipe was stopped because its time ran out
// (phase_timeout, or the load's), not by Ctrl-C or SIGTERM.
func (e *Error) TimedOut() bool {
	return e.Cancelled != nil && errors.Is(e.Cancelled, context.DeadlineExceeded)
}

func (e *Error) Unwrap() error { return e.Err }

// Line is the "file.lua:LINE" the message starts with, or "".
func (e *Error) Line() string {
	if m := luaWhereRE.FindStringSubmatch(e.Msg); m != nil {
		return m[1]
	}
	return ""
}

// luaWhereRE finds the "file.lua:LINE" an error message starts with.
var luaWhereRE = regexp.MustCompile(`^([^\s:]+\.lua:\d+):`)
