package recipe

import (
	"context"
	"sort"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// SetLoadTimeout sets how long loading a recipe may take, until restore.
func SetLoadTimeout(d time.Duration) (restore func()) {
	old := loadTimeout
	loadTimeout = d
	return func() { loadTimeout = old }
}

// APINames lists what a recipe loaded for t can reach, as docs/recipes.md
// spells it: "raijin.override(" for a function of the raijin module,
// "ctx.host:run(" for a method, "ctx.host.name`" for a field.
func APINames(c Config, t Target) ([]string, error) {
	st, err := Load(context.Background(), c, t)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	L := st.vm
	var names []string
	var walk func(prefix, sep string, t *lua.LTable)
	walk = func(prefix, sep string, t *lua.LTable) {
		t.ForEach(func(k, v lua.LValue) {
			switch x := v.(type) {
			case *lua.LFunction:
				names = append(names, prefix+sep+k.String()+"(")
			case *lua.LTable:
				walk(prefix+"."+k.String(), ".", x)
			default:
				names = append(names, prefix+"."+k.String()+"`")
			}
		})
	}
	// An object's methods and fields, as Lua finds them through its metatable.
	walkObject := func(prefix string, obj lua.LValue, methods map[string]lua.LGFunction, fields map[string]lua.LValue) {
		var keys []string
		for k := range methods {
			keys = append(keys, k)
		}
		for k := range fields {
			keys = append(keys, k)
		}
		for _, k := range keys {
			switch L.GetField(obj, k).(type) {
			case *lua.LFunction:
				names = append(names, prefix+":"+k+"(")
			case *lua.LNilType:
			default:
				names = append(names, prefix+"."+k+"`")
			}
		}
	}
	walk("raijin", ".", st.s.module(st.reg)(L))
	st.ctx.RawSetString("shared", L.NewTable())
	st.ctx.RawSetString("hosts", L.NewTable())
	st.ctx.ForEach(func(k, v lua.LValue) {
		key := k.String()
		switch key {
		case "host":
			walkObject("ctx.host", v, hostMethods, v.(*lua.LUserData).Value.(*hostObject).fields)
		case "local":
			walkObject(`ctx.local`, v, localMethods, nil)
		case "paths":
			walk("ctx.paths", ".", v.(*lua.LTable))
		}
		names = append(names, "ctx."+key+"`")
	})
	sort.Strings(names)
	return names, nil
}
