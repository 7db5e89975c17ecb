// Command raijin deploys an application (a Python wheel or a single binary) to
// Linux servers over SSH, runs it under systemd behind Caddy, and keeps
// versions for rollback.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/alecthomas/kong"

	"github.com/raijin-deploy/raijin/errs"
)

func main() {
	os.Exit(Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Run is the whole command line: it parses args, runs the command and prints
// any error in one place. It returns the exit code.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(kongExit); ok {
				code = int(e)
				return
			}
			panic(r)
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var cli CLI
	parser, err := kong.New(&cli,
		kong.Name("raijin"),
		kong.Description("Deploy an app (a Python wheel or a single binary) to Linux servers over SSH, under systemd behind Caddy, with versions to roll back to."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(c int) { panic(kongExit(c)) }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, Summary: true}),
		kong.Vars{"version": buildVersion()},
	)
	if err != nil {
		fmt.Fprintf(stderr, "raijin: %v\n", err)
		return 1
	}
	if code, done := completion(parser, args, stdout, stderr); done {
		return code
	}
	args, cfg, err := expandAlias(parser.Model.Node, args)
	if err != nil {
		return (&App{Globals: &cli.Globals, Stdout: stdout, Stderr: stderr}).fail(err)
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		var pe *kong.ParseError
		if errors.As(err, &pe) {
			fmt.Fprintf(stderr, "raijin: %v\n", err)
			fmt.Fprintf(stderr, "  run `%s` for usage\n", strings.Join(strings.Fields("raijin "+commandPath(pe.Context)+" -h"), " "))
			return errs.CodeUsage
		}
		fmt.Fprintf(stderr, "raijin: %v\n", err)
		return errs.CodeUsage
	}
	app := &App{Globals: &cli.Globals, ctx: ctx, Stdin: stdin, Stdout: stdout, Stderr: stderr, loaded: cfg}
	kctx.Bind(app)
	err = kctx.Run(app)
	app.jumps.Close()
	if err == nil {
		return 0
	}
	return app.fail(err)
}

// kongExit carries kong's exit (after -h) out of the parse.
type kongExit int

func commandPath(ctx *kong.Context) string {
	if ctx == nil {
		return ""
	}
	var parts []string
	for _, p := range ctx.Path {
		if p.Command != nil {
			parts = append(parts, p.Command.Name)
		}
	}
	return strings.Join(parts, " ")
}
