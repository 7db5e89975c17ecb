package recipe

import (
	lua "github.com/yuin/gopher-lua"
)

// builtinSource is what `raijin recipe show` says of the built-in phases.
const builtinSource = "raijin (built in)"

// declareBuiltins declares the phases connect and finish, whose steps are
// the engine's (Target.Connect, Target.Finish), so that a recipe sees them
// in its flows and hooks them like its own.
func (s *hostState) declareBuiltins(L *lua.LState, reg *registry) {
	reg.phases[ConnectPhase] = &phase{name: ConnectPhase, builtin: true,
		base: fnRef{fn: L.NewFunction(s.connectStep), src: builtinSource}}
	reg.phases[FinishPhase] = &phase{name: FinishPhase, builtin: true,
		base: fnRef{fn: L.NewFunction(s.finishStep), src: builtinSource}}
}

// connectStep is the built-in connect phase: the engine reads the host's
// facts and takes the deploy lock; ctx gets the facts (paths, versions,
// previous, version) and ctx.host.user.
func (s *hostState) connectStep(L *lua.LState) int {
	if s.connect == nil {
		return 0
	}
	f, err := s.connect(s.ctx(L))
	s.check(L, err)
	s.user, s.paths, s.versions, s.dirs = f.User, f.Paths, f.Versions, f.Dirs
	ctx := L.CheckTable(1)
	ctx.RawSetString("paths", luaValue(L, f.Paths))
	if f.Versions != nil {
		ctx.RawSetString("versions", luaValue(L, f.Versions))
	}
	if f.Version != "" {
		ctx.RawSetString("version", lua.LString(f.Version))
	}
	if f.Previous != "" {
		ctx.RawSetString("previous", lua.LString(f.Previous))
	}
	if f.Live != "" {
		ctx.RawSetString("live", lua.LString(f.Live))
	}
	ctx.RawSetString("old_web", lua.LBool(f.OldWeb))
	ctx.RawSetString("live_unit", lua.LBool(f.LiveUnit))
	return 0
}

// finishStep is the built-in finish phase: the steps still deferred, then
// the audit line and the lock's release, in one round trip.
func (s *hostState) finishStep(L *lua.LState) int {
	if s.finish != nil {
		s.check(L, s.finish(s.ctx(L)))
	}
	return 0
}
