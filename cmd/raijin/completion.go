package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/alecthomas/kong"
	"github.com/posener/complete"
	"github.com/willabides/kongplete"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/errs"
)

// The scripts pass the command line to `raijin --completion complete` in
// COMP_LINE and COMP_POINT, as bash does for `complete -C` (the protocol of
// github.com/posener/complete, which kongplete builds on).

const bashScript = `# raijin completion for bash: eval "$(raijin --completion generate)"
_raijin() {
  local IFS=$'\n'
  COMPREPLY=($(COMP_LINE="$COMP_LINE" COMP_POINT="$COMP_POINT" raijin --completion complete 2>/dev/null))
}
complete -o default -F _raijin raijin
`

const zshScript = `#compdef raijin
# raijin completion for zsh: eval "$(raijin --completion generate)"
_raijin() {
  local -a reply
  reply=("${(@f)$(COMP_LINE="$BUFFER" COMP_POINT="$CURSOR" raijin --completion complete 2>/dev/null)}")
  compadd -a reply
}
compdef _raijin raijin
`

const fishScript = `# raijin completion for fish: raijin --completion generate | source
complete -c raijin -f -a '(env COMP_LINE=(commandline -cp) raijin --completion complete 2>/dev/null)'
`

// completion handles --completion generate|complete before kong parses, so
// it works on any command line, even an incomplete one.
func completion(parser *kong.Kong, args []string, stdout, stderr io.Writer) (int, bool) {
	mode := ""
	for i, a := range args {
		if a == "--" {
			break
		}
		if a == "--completion" && i+1 < len(args) {
			mode = args[i+1]
		} else if v, ok := strings.CutPrefix(a, "--completion="); ok {
			mode = v
		}
	}
	switch mode {
	case "":
		return 0, false
	case "generate":
		fmt.Fprint(stdout, completionScript(args))
		return 0, true
	case "complete":
		line := os.Getenv("COMP_LINE")
		if line == "" {
			fmt.Fprintln(stderr, "raijin: --completion complete: no COMP_LINE: it answers the script that --completion generate prints")
			return errs.CodeUsage, true
		}
		if n, err := strconv.Atoi(os.Getenv("COMP_POINT")); err == nil && n >= 0 && n < len(line) {
			line = line[:n]
		}
		words, err := answer(parser, line)
		if err != nil {
			fmt.Fprintf(stderr, "raijin: --completion complete: %v\n", err)
			return 1, true
		}
		for _, w := range words {
			fmt.Fprintln(stdout, w)
		}
		return 0, true
	}
	fmt.Fprintf(stderr, "raijin: --completion %q: use generate or complete\n", mode)
	return errs.CodeUsage, true
}

// completionScript is the script for the shell named in args, else $SHELL's.
func completionScript(args []string) string {
	shell := filepath.Base(os.Getenv("SHELL"))
	for i, a := range args {
		if (a == "bash" || a == "zsh" || a == "fish") && (i == 0 || args[i-1] != "-c") {
			shell = a
		}
	}
	switch shell {
	case "zsh":
		return zshScript
	case "fish":
		return fishScript
	}
	return bashScript
}

// answer is the reply to one completion request: the words that can follow
// the command line typed so far. kongplete walks the CLI's own model (commands, flags with their short
// names, enum values); predictors name the values that only the
// configuration knows: hosts, roles, processes and aliases.
func answer(parser *kong.Kong, line string) ([]string, error) {
	root := parser.Model.Node
	words, last := splitLine(line)
	cfg := sync.OnceValue(func() *config.Config {
		cfg, err := loadFor(root, words)
		if err != nil {
			return nil // nothing to offer from a configuration that does not load
		}
		return cfg
	})
	if i := aliasAt(root, words); i >= 0 && cfg() != nil {
		words = withAlias(words, i, cfg())
	}
	fromConfig := func(names func(*config.Config) []string) complete.Predictor {
		return complete.PredictFunc(func(complete.Args) []string {
			if c := cfg(); c != nil {
				return names(c)
			}
			return nil
		})
	}
	cmd, err := kongplete.Command(parser, kongplete.WithPredictors(map[string]complete.Predictor{
		"hosts": fromConfig(func(c *config.Config) []string {
			var names []string
			for _, h := range c.Hosts {
				names = append(names, h.Name)
			}
			return names
		}),
		"procs": fromConfig((*config.Config).ProcessNames),
		"destinations": complete.PredictFunc(func(complete.Args) []string {
			return config.Destinations(configFile(root, words))
		}),
		"roles":      fromConfig((*config.Config).Roles),
		"completion": complete.PredictSet("generate", "complete"),
		"cat":        complete.PredictSet(catWhat...),
	}))
	if err != nil {
		return nil, err
	}
	cmd.Args = complete.PredictOr(cmd.Args, fromConfig((*config.Config).AliasNames))

	a := complete.Args{All: append(withoutGlobalFlags(root, words), last), Last: last}
	a.Completed = a.All[:len(a.All)-1]
	if n := len(a.Completed); n > 0 {
		a.LastCompleted = a.Completed[n-1]
	}
	var out []string
	for _, w := range cmd.Predict(a) {
		if w != "" && strings.HasPrefix(w, last) {
			out = append(out, w)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// splitLine splits a command line into the words typed after the program
// name and the one being typed (empty after a space). In "--host=we" the
// word being typed is "we", after the word "--host".
func splitLine(line string) (words []string, last string) {
	words = strings.Fields(line)
	if len(words) > 0 {
		words = words[1:]
	}
	if line != "" && unicode.IsSpace(rune(line[len(line)-1])) {
		words = append(words, "")
	}
	if len(words) == 0 {
		return nil, ""
	}
	last, words = words[len(words)-1], words[:len(words)-1]
	parts := strings.Split(last, "=")
	return append(words, parts[:len(parts)-1]...), parts[len(parts)-1]
}

// withoutGlobalFlags drops the global flags typed so far, and their values,
// except a last one whose value is being typed. kong takes them anywhere,
// but the completion library would count them as positional arguments of a
// command: `raijin app logs -H web1 ` would offer no process.
func withoutGlobalFlags(root *kong.Node, words []string) []string {
	alone, takesValue := globalFlags(root)
	var out []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		name, _, hasValue := strings.Cut(w, "=")
		switch {
		case w == "--":
			return append(out, words[i:]...)
		case takesValue[w] && i == len(words)-1:
			out = append(out, w)
		case takesValue[w]:
			i++
		case alone[w], hasValue && takesValue[name]:
		default:
			out = append(out, w)
		}
	}
	return out
}
