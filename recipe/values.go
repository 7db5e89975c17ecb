package recipe

import (
	"reflect"
	"sort"

	lua "github.com/yuin/gopher-lua"
	luar "layeh.com/gopher-luar"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/secrets"
)

// goValue copies a Lua value out of its state, so that what local phases put
// in ctx.shared reaches every host's state. Functions are not carried over.
func goValue(v lua.LValue) any {
	switch x := v.(type) {
	case lua.LString:
		return string(x)
	case lua.LNumber:
		return float64(x)
	case lua.LBool:
		return bool(x)
	case *lua.LUserData:
		if e, ok := x.Value.(*secrets.Env); ok {
			return e
		}
		return nil
	case *lua.LTable:
		if n := x.Len(); n > 0 {
			arr := make([]any, 0, n)
			for i := 1; i <= n; i++ {
				arr = append(arr, goValue(x.RawGetInt(i)))
			}
			return arr
		}
		m := map[string]any{}
		x.ForEach(func(k, val lua.LValue) {
			if ks, ok := k.(lua.LString); ok {
				if gv := goValue(val); gv != nil {
					m[string(ks)] = gv
				}
			}
		})
		return m
	}
	return nil
}

// luaValue makes a Go value (as goValue returns) into a Lua value of L.
func luaValue(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case nil:
		return lua.LNil
	case string:
		return lua.LString(x)
	case float64:
		return lua.LNumber(x)
	case int:
		return lua.LNumber(x)
	case bool:
		return lua.LBool(x)
	case *secrets.Env:
		return envValue(L, x)
	case []any:
		t := L.NewTable()
		for _, e := range x {
			t.Append(luaValue(L, e))
		}
		return t
	case []string:
		t := L.NewTable()
		for _, e := range x {
			t.Append(lua.LString(e))
		}
		return t
	case map[string]any:
		t := L.NewTable()
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			t.RawSetString(k, luaValue(L, x[k]))
		}
		return t
	case map[string]string:
		t := L.NewTable()
		for k, e := range x {
			t.RawSetString(k, lua.LString(e))
		}
		return t
	}
	return lua.LNil
}

// envValue wraps an env file for Lua: it can be written to a host and its
// keys listed, but its values (secrets among them) are never Lua strings.
func envValue(L *lua.LState, e *secrets.Env) *lua.LUserData {
	ud := L.NewUserData()
	ud.Value = e
	mt := L.NewTypeMetatable("raijin.env")
	if mt.RawGetString("__index") == lua.LNil {
		mt.RawSetString("__index", L.SetFuncs(L.NewTable(), map[string]lua.LGFunction{"keys": envKeys}))
		mt.RawSetString("__tostring", L.NewFunction(envString))
	}
	L.SetMetatable(ud, mt)
	return ud
}

// checkEnv is the env a method is called on.
func checkEnv(L *lua.LState) *secrets.Env {
	if ud, ok := L.Get(1).(*lua.LUserData); ok {
		if e, ok := ud.Value.(*secrets.Env); ok {
			return e
		}
	}
	L.ArgError(1, "env expected: call the method with a colon, env:keys()")
	return nil
}

// env:keys() lists the env's keys.
func envKeys(L *lua.LState) int {
	L.Push(luaValue(L, checkEnv(L).Keys()))
	return 1
}

// tostring(env) says where the env comes from and its keys, not its values.
func envString(L *lua.LState) int {
	L.Push(lua.LString(checkEnv(L).String()))
	return 1
}

// configValue exposes the resolved configuration to Lua with gopher-luar,
// read-only: every type reachable from it gets a __newindex that raises, so
// no recipe can change what the other phases and hosts see.
func configValue(L *lua.LState, c config.Config) lua.LValue {
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		if seen[t] {
			return
		}
		seen[t] = true
		switch t.Kind() {
		case reflect.Struct, reflect.Map, reflect.Slice, reflect.Array, reflect.Ptr:
		default:
			return
		}
		if mt := luar.MT(L, reflect.Zero(t).Interface()); mt != nil {
			mt.RawSetString("__newindex", L.NewFunction(func(L *lua.LState) int {
				L.RaiseError("ctx.config is read-only (cannot set %s): it is the resolved raijin.toml; keep your own values in a local variable or in ctx", L.ToStringMeta(L.Get(2)).String())
				return 0
			}))
		}
		switch t.Kind() {
		case reflect.Struct:
			for i := 0; i < t.NumField(); i++ {
				walk(t.Field(i).Type)
			}
		case reflect.Map:
			walk(t.Elem())
		case reflect.Slice, reflect.Array, reflect.Ptr:
			walk(t.Elem())
		}
	}
	walk(reflect.TypeOf(c))
	walk(reflect.TypeOf(&c))
	return luar.New(L, c)
}
