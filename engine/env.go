package engine

import (
	"context"
	"os"
	"sync"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/secrets"
)

// envCache holds the hosts' envs of a run, each read and resolved once.
type envCache struct {
	mu   sync.Mutex
	envs map[string]*secrets.Env
}

// loadEnv reads and resolves a host's env once per run.
func (r *runner) loadEnv(ctx context.Context, h config.Host) (*secrets.Env, error) {
	r.envs.mu.Lock()
	defer r.envs.mu.Unlock()
	if e, ok := r.envs.envs[h.Name]; ok {
		return e, nil
	}
	env, err := ReadEnv(r.opts.Config, h)
	if err != nil {
		return nil, err
	}
	adapter := r.opts.Secrets
	if adapter == nil {
		adapter, err = secrets.NewSecretAdapter(r.opts.Config.Secrets.Adapter, r.opts.Config.Secrets.PasswordEnv)
		if err != nil {
			return nil, err
		}
	}
	if err := secrets.ResolveSecrets(ctx, env, adapter); err != nil {
		return nil, err
	}
	r.opts.Redactor.Add(env.SecretValues()...)
	if r.envs.envs == nil {
		r.envs.envs = map[string]*secrets.Env{}
	}
	r.envs.envs[h.Name] = env
	return env, nil
}

// LoadEnv reads host h's env and resolves its secrets (for printenv). Unless
// reveal, the values are only good for Redacted.
func LoadEnv(ctx context.Context, c *config.Config, h config.Host, reveal bool, adapter secrets.SecretAdapter) (*secrets.Env, error) {
	r := newRunner(Options{Config: c, Redactor: &secrets.Redactor{}, Secrets: adapter})
	return r.loadEnv(ctx, h)
}

// ReadEnv reads host h's env (its envfile, or its env in the configuration)
// without resolving its secrets: their values stay empty.
func ReadEnv(c *config.Config, h config.Host) (*secrets.Env, error) {
	var env *secrets.Env
	var err error
	switch {
	case h.Envfile != "":
		data, rerr := os.ReadFile(c.Path(h.Envfile))
		if rerr != nil {
			return nil, rerr
		}
		env, err = secrets.ParseEnv(h.Envfile, string(data))
	default:
		env, err = secrets.ParseEnv(c.HostsFile()+" [hosts "+h.Name+"] env", h.Env)
	}
	if err != nil {
		return nil, errs.WithCode(errs.CodeUsage, err, "")
	}
	return env, nil
}
