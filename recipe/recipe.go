package recipe

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/recipes"
)

// fnRef is a Lua function and where it was declared (file:line).
type fnRef struct {
	fn  *lua.LFunction
	src string
	// exec is set for an executable hook file run on the deploying machine.
	exec string
}

type phase struct {
	name      string
	local     bool
	once      bool // runs on one host of a run; the others wait for it
	builtin   bool // connect, finish: the engine's steps (builtin.go)
	base      fnRef
	overrides []fnRef
	before    []fnRef
	after     []fnRef
	undo      *fnRef
}

// registry is what loading a recipe declares, in one Lua state.
type registry struct {
	phases map[string]*phase
	flows  map[string][]string
	// flowSrc is where each flow's phase list was declared (file:line).
	flowSrc map[string]string
	// set while the built-in recipe loads: raijin.phase is allowed to define
	// phases; a project recipe may define new ones too.
}

func newRegistry() *registry {
	return &registry{phases: map[string]*phase{}, flows: map[string][]string{}, flowSrc: map[string]string{}}
}

// where is "file:line" of the Lua code calling the current Go function.
func where(L *lua.LState) string {
	w := strings.TrimSuffix(strings.TrimSpace(L.Where(1)), ":")
	return w
}

func (r *registry) knownPhases() string {
	var names []string
	for n := range r.phases {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func (r *registry) get(L *lua.LState, name, what string) *phase {
	p, ok := r.phases[name]
	if !ok {
		L.RaiseError("%s: no phase %q; the phases are: %s", what, name, r.knownPhases())
	}
	return p
}

// declareFuncs are the raijin functions that declare the recipe: its phases,
// flows, overrides, hooks and undo handlers. Their upvalue is the registry.
var declareFuncs = map[string]lua.LGFunction{
	"phase":    declarePhase,
	"phases":   declarePhases,
	"flow":     declareFlow,
	"override": declareOverride,
	"before":   declareBefore,
	"after":    declareAfter,
	"undo":     declareUndo,
}

// declare adds the recipe-declaring functions to the raijin module table.
func (r *registry) declare(L *lua.LState, m *lua.LTable) {
	ud := L.NewUserData()
	ud.Value = r
	L.SetFuncs(m, declareFuncs, ud)
}

// registryOf is the registry a declaring function was registered with.
func registryOf(L *lua.LState) *registry {
	return L.CheckUserData(lua.UpvalueIndex(1)).Value.(*registry)
}

// raijin.phase(name, [opts], fn) defines a phase, or redefines it.
func declarePhase(L *lua.LState) int {
	r := registryOf(L)
	name := L.CheckString(1)
	opts, _ := L.Get(2).(*lua.LTable)
	fnIdx := 3
	if opts == nil {
		fnIdx = 2
	}
	fn := L.CheckFunction(fnIdx)
	local, once := false, false
	if opts != nil {
		switch w := opts.RawGetString("where"); w {
		case lua.LNil, lua.LString("host"):
		case lua.LString("local"):
			local = true
		default:
			L.ArgError(2, fmt.Sprintf("where = %q: use \"local\" or \"host\"", w.String()))
		}
		switch o := opts.RawGetString("once"); o {
		case lua.LNil, lua.LFalse:
		case lua.LTrue:
			once = true
		default:
			L.ArgError(2, fmt.Sprintf("once = %s: use true or false", o.String()))
		}
		if once && local {
			L.ArgError(2, "once = true is for a host phase: a local phase runs once anyway")
		}
	}
	p, ok := r.phases[name]
	if !ok {
		p = &phase{name: name}
		r.phases[name] = p
	}
	if p.builtin {
		L.RaiseError("raijin.phase: %s is raijin's own phase (it connects, reads the facts and takes the deploy lock, or writes the audit line and releases it): hook it with raijin.before, raijin.after or raijin.override, whose default must run", name)
	}
	p.local, p.once = local, once
	p.base = fnRef{fn: fn, src: where(L)}
	return 0
}

// raijin.phases{...} is the deploy flow's phase list.
func declarePhases(L *lua.LState) int {
	registryOf(L).setFlow(L, "deploy", L.CheckTable(1))
	return 0
}

// raijin.flow(name, {...}) is another flow's phase list (rollback, prune, ...).
func declareFlow(L *lua.LState) int {
	registryOf(L).setFlow(L, L.CheckString(1), L.CheckTable(2))
	return 0
}

func (r *registry) setFlow(L *lua.LState, flow string, list *lua.LTable) {
	var names []string
	list.ForEach(func(_, v lua.LValue) {
		s, ok := v.(lua.LString)
		if !ok {
			L.RaiseError("raijin.phases: every entry must be a phase name, got %s", v.Type())
		}
		names = append(names, string(s))
	})
	if len(names) == 0 {
		L.RaiseError("raijin.phases: the list is empty")
	}
	r.flows[flow] = names
	r.flowSrc[flow] = where(L)
}

// raijin.override(name, fn): fn(ctx, default) runs instead of the phase.
func declareOverride(L *lua.LState) int {
	p := registryOf(L).get(L, L.CheckString(1), "raijin.override")
	p.overrides = append(p.overrides, fnRef{fn: L.CheckFunction(2), src: where(L)})
	return 0
}

// raijin.before(name, fn) runs fn before the phase.
func declareBefore(L *lua.LState) int {
	p := registryOf(L).get(L, L.CheckString(1), "raijin.before")
	p.before = append(p.before, fnRef{fn: L.CheckFunction(2), src: where(L)})
	return 0
}

// raijin.after(name, fn) runs fn after the phase.
func declareAfter(L *lua.LState) int {
	p := registryOf(L).get(L, L.CheckString(1), "raijin.after")
	p.after = append(p.after, fnRef{fn: L.CheckFunction(2), src: where(L)})
	return 0
}

// raijin.undo(name, fn): fn(ctx, err) undoes the phase when a later one fails.
func declareUndo(L *lua.LState) int {
	p := registryOf(L).get(L, L.CheckString(1), "raijin.undo")
	p.undo = &fnRef{fn: L.CheckFunction(2), src: where(L)}
	return 0
}

// validate checks, after loading, that every flow names defined phases.
func (r *registry) validate() error {
	if _, ok := r.flows["deploy"]; !ok {
		return fmt.Errorf("the recipe declares no phase list: call raijin.phases{...}")
	}
	for flow, names := range r.flows {
		for _, n := range names {
			if _, ok := r.phases[n]; !ok {
				return fmt.Errorf("%s: flow %s names phase %q, which no recipe defines (raijin.phase); the phases are: %s", r.flowSrc[flow], flow, n, r.knownPhases())
			}
		}
	}
	return nil
}

// Sources is what to load: the built-in recipe, the project's recipe and its
// hook files.
type Sources struct {
	Builtin   string // binary.lua or python.lua
	Recipe    string // absolute path of the project recipe, or ""
	RecipeRel string // how errors name it
	HooksDir  string // {local_config_dir}/hooks, absolute
	HooksRel  string
	Dir       string // project directory (require root)
}

// SourcesFor works out what a project loads.
func SourcesFor(cfg *config.Config, recipeFlag string) Sources {
	s := Sources{Builtin: "binary.lua", Dir: cfg.Dir}
	if cfg.InstallationMode == config.ModePython {
		s.Builtin = "python.lua"
	}
	rec := cfg.Recipe
	if recipeFlag != "" {
		rec = recipeFlag
	}
	if rec != "" {
		s.Recipe = cfg.Path(rec)
		s.RecipeRel = rec
		if rel, err := filepath.Rel(cfg.Dir, s.Recipe); err == nil && !strings.HasPrefix(rel, "..") {
			s.RecipeRel = rel
		}
	}
	s.HooksDir = cfg.Path(filepath.Join(cfg.LocalConfigDir, "hooks"))
	s.HooksRel = filepath.Join(cfg.LocalConfigDir, "hooks")
	return s
}

// load runs the built-in recipe, then the project's, then registers hook
// files, in L. Errors are configuration errors (exit 2).
func (s Sources) load(ctx context.Context, L *lua.LState, r *registry) error {
	src, err := fs.ReadFile(recipes.FS, s.Builtin)
	if err != nil {
		return err
	}
	if err := s.runFile(ctx, L, string(src), "recipes/"+s.Builtin); err != nil {
		return err
	}
	if s.Recipe != "" {
		data, err := os.ReadFile(s.Recipe)
		if err != nil {
			return errs.Usagef("check recipe = in raijin.toml or --recipe", "recipe %s: %v", s.RecipeRel, err)
		}
		if err := s.runFile(ctx, L, string(data), s.RecipeRel); err != nil {
			return err
		}
	}
	if err := s.loadHooks(L, r); err != nil {
		return err
	}
	if err := r.validate(); err != nil {
		return errs.Usagef("", "%v", err)
	}
	return nil
}

func (s Sources) runFile(ctx context.Context, L *lua.LState, src, chunk string) error {
	fn, err := loadChunk(L, src, chunk)
	if err != nil {
		return errs.WithCode(errs.CodeUsage, err, "fix the Lua syntax at that line")
	}
	if err := pcall(ctx, L, fn); err != nil {
		var le *Error
		if errors.As(err, &le) && le.Cancelled != nil {
			if le.TimedOut() {
				return errs.Usagef("a recipe only declares phases when it loads: do the work inside a phase",
					"loading %s took longer than %s: %s", chunk, loadTimeout, le.Msg)
			}
			return errs.Failedf("", "interrupted while loading %s", chunk)
		}
		msg := err.Error()
		if !luaWhereRE.MatchString(msg) {
			msg = "loading " + chunk + ": " + msg
		}
		hint := ""
		if strings.Contains(msg, ": no phase ") {
			hint = "name one of the phases listed, or declare a new phase with raijin.phase(name, fn)"
		}
		return errs.Usagef(hint, "%s", msg)
	}
	return nil
}

// loadHooks registers {hooks}/before_<phase>.lua and after_<phase>.lua as
// chunks receiving ctx, and executable before_<phase> / after_<phase> files as
// commands run on this machine.
func (s Sources) loadHooks(L *lua.LState, r *registry) error {
	entries, err := os.ReadDir(s.HooksDir)
	if err != nil {
		return nil
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") {
			continue
		}
		base := strings.TrimSuffix(name, ".lua")
		var when, ph string
		switch {
		case strings.HasPrefix(base, "before_"):
			when, ph = "before", strings.TrimPrefix(base, "before_")
		case strings.HasPrefix(base, "after_"):
			when, ph = "after", strings.TrimPrefix(base, "after_")
		default:
			continue
		}
		rel := filepath.Join(s.HooksRel, name)
		p, ok := r.phases[ph]
		if !ok {
			return errs.Usagef("rename the file after one of the phases: "+r.knownPhases(), "hook file %s: no phase %q", rel, ph)
		}
		var ref fnRef
		if strings.HasSuffix(name, ".lua") {
			data, err := os.ReadFile(filepath.Join(s.HooksDir, name))
			if err != nil {
				return err
			}
			fn, err := loadChunk(L, string(data), rel)
			if err != nil {
				return errs.WithCode(errs.CodeUsage, err, "fix the Lua syntax at that line")
			}
			ref = fnRef{fn: fn, src: rel}
		} else {
			info, err := e.Info()
			if err != nil || info.Mode()&0o111 == 0 {
				return errs.Usagef("chmod +x it, or name it "+name+".lua for a Lua hook", "hook file %s is not executable", rel)
			}
			ref = fnRef{exec: filepath.Join(s.HooksDir, name), src: rel}
		}
		if when == "before" {
			p.before = append(p.before, ref)
		} else {
			p.after = append(p.after, ref)
		}
	}
	return nil
}
