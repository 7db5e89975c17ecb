package engine

import (
	"context"
	"path"
	"sync"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/recipe"
	"github.com/raijin-deploy/raijin/remote"
)

// EachHost connects to every host of opts in parallel and calls fn with the
// host and the app directory relative to the user's home (or absolute), for
// commands that read or fix a host without running a flow or taking the
// deploy lock (releases, lock status). Results come back in host order;
// the error is the first host's that failed.
func EachHost[T any](ctx context.Context, opts Options, fn func(ctx context.Context, h config.Host, host *remote.Session, rel string) (T, error)) ([]T, error) {
	out := make([]T, len(opts.Hosts))
	errList := make([]error, len(opts.Hosts))
	var wg sync.WaitGroup
	for i, h := range opts.Hosts {
		wg.Add(1)
		go func(i int, h config.Host) {
			defer wg.Done()
			conn, closeFn, err := opts.Connect(ctx, h)
			if err != nil {
				// Exit 1, or 2 for an ssh_config the connection cannot honour.
				errList[i] = &HostError{Host: h.Name, Phase: recipe.ConnectPhase, Msg: opts.Redactor.Redact(err.Error()), Code: errs.Code(err), Hint: errs.Hint(err)}
				return
			}
			defer closeFn()
			host := remote.NewSession(conn, opts.Observer, opts.Redactor, opts.Stats)
			out[i], errList[i] = fn(ctx, h, host, path.Join(h.AppsDir, opts.Config.App))
			if errList[i] != nil {
				errList[i] = &HostError{Host: h.Name, Phase: opts.Command, Msg: opts.Redactor.Redact(errList[i].Error()), Code: errs.Code(errList[i])}
			}
		}(i, h)
	}
	wg.Wait()
	for _, err := range errList {
		if err != nil {
			return out, err
		}
	}
	return out, nil
}
