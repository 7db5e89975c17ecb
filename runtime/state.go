// Package runtime runs raijin's Lua recipes: a sandboxed Lua state per host,
// the `raijin` module recipes call, phases with their overrides and hooks, and
// the per-host runs that carry them out. It is the only package that imports
// gopher-lua.
package runtime

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/raijin-deploy/raijin/recipes"
)

// newState returns a Lua state with only the safe standard libraries: no io,
// no os.execute/remove/getenv, no dofile/loadfile. require finds `raijin`,
// `raijin.common` and Lua files of the project directory.
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
	for _, name := range []string{"dofile", "loadfile", "load", "loadstring", "module", "collectgarbage"} {
		L.SetGlobal(name, lua.LNil)
	}
	// os: only the clock and dates.
	safeOS := L.NewTable()
	if osT, ok := L.GetGlobal("os").(*lua.LTable); ok {
		for _, k := range []string{"time", "clock", "date", "difftime"} {
			safeOS.RawSetString(k, osT.RawGetString(k))
		}
	}
	L.SetGlobal("os", safeOS)
	// table.unpack, as in Lua 5.2+, for recipes written against it.
	if t, ok := L.GetGlobal("table").(*lua.LTable); ok {
		t.RawSetString("unpack", L.GetGlobal("unpack"))
	}

	loaded := map[string]lua.LValue{}
	L.SetGlobal("require", L.NewFunction(func(L *lua.LState) int {
		name := L.CheckString(1)
		if v, ok := loaded[name]; ok {
			L.Push(v)
			return 1
		}
		var v lua.LValue
		switch {
		case name == "raijin":
			v = module(L)
		case strings.HasPrefix(name, "raijin."):
			src, err := fs.ReadFile(recipes.FS, strings.TrimPrefix(name, "raijin.")+".lua")
			if err != nil {
				L.RaiseError("module %q not found: raijin's own modules are raijin and raijin.common", name)
			}
			v = runModule(L, string(src), "recipes/"+strings.TrimPrefix(name, "raijin.")+".lua")
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

func runModule(L *lua.LState, src, chunk string) lua.LValue {
	fn, err := L.Load(strings.NewReader(src), chunk)
	if err != nil {
		L.RaiseError("%s", syntaxError(err))
	}
	L.Push(fn)
	L.Call(0, 1)
	v := L.Get(-1)
	L.Pop(1)
	return v
}

// syntaxError turns gopher-lua's compile error into "file:line: message".
func syntaxError(err error) string {
	msg := err.Error()
	if ae, ok := err.(*lua.ApiError); ok && ae.Object != nil {
		msg = strings.TrimSpace(ae.Object.String())
	}
	// gopher-lua says "deploy.lua line:4(column:3) near 'end':   syntax error".
	if m := luaParseErrRe.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("%s:%s: %s near '%s' (column %s)", m[1], m[2], strings.TrimSpace(m[5]), m[4], m[3])
	}
	return msg
}

var luaParseErrRe = regexp.MustCompile(`(?s)^(.*?) line:(\d+)\(column:(\d+)\) near '(.*?)':\s*(.*)$`)

// loadFile runs a recipe or hook file as a chunk with args.
func loadChunk(L *lua.LState, src, chunk string) (*lua.LFunction, error) {
	fn, err := L.Load(strings.NewReader(src), chunk)
	if err != nil {
		return nil, fmt.Errorf("%s", syntaxError(err))
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
	le := &LuaError{Msg: perr.Error()}
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

// LuaError is an error raised by recipe code (or a builtin it called).
type LuaError struct {
	Msg       string
	Traceback string
	Cancelled error
}

func (e *LuaError) Error() string { return e.Msg }
