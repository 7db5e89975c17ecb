package main

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/raijin-deploy/raijin/config"
)

// expandAlias replaces the first word of args, when it names no command, with
// the [aliases] entry of that name: shell = "app exec -i bash" makes
// `raijin -H prod shell` run `raijin -H prod app exec -i bash`. The config
// package splits the entry into words. It returns the configuration it read
// (nil if none), for the command to use rather than read the file again.
func expandAlias(root *kong.Node, args []string) ([]string, *config.Config, error) {
	i := aliasAt(root, args)
	if i < 0 {
		return args, nil, nil
	}
	file := configFile(root, args[:i])
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		return args, nil, nil // no configuration, no aliases: kong names the unknown command
	}
	cfg, err := loadFor(root, args[:i])
	if err != nil {
		return nil, nil, err
	}
	return withAlias(args, i, cfg), cfg, nil
}

// withAlias is args with args[i] replaced by the words of the alias it names,
// if it names one.
func withAlias(args []string, i int, cfg *config.Config) []string {
	words, ok := cfg.Alias(args[i])
	if !ok {
		return args
	}
	return slices.Concat(args[:i], words, args[i+1:])
}

// aliasAt is the index of the first word of args that is neither a global
// flag nor a flag's value, if that word names no command (so it may be an
// alias); -1 otherwise.
func aliasAt(root *kong.Node, args []string) int {
	_, takesValue := globalFlags(root)
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return -1
		case takesValue[a]:
			i++
		case strings.HasPrefix(a, "-"):
		case isCommand(root, a):
			return -1
		default:
			return i
		}
	}
	return -1
}

func isCommand(root *kong.Node, word string) bool {
	for _, c := range root.Children {
		if c.Name == word || slices.Contains(c.Aliases, word) {
			return true
		}
	}
	return false
}

// globalFlags are the spellings (--name, -n) of the flags every command
// takes, split into those that stand alone and those followed by a value.
func globalFlags(root *kong.Node) (alone, takesValue map[string]bool) {
	alone, takesValue = map[string]bool{}, map[string]bool{}
	for _, f := range root.Flags {
		set := takesValue
		if f.IsBool() || f.IsCounter() {
			set = alone
		}
		set["--"+f.Name] = true
		if f.Short != 0 {
			set["-"+string(f.Short)] = true
		}
		for _, a := range f.Aliases {
			set["--"+a] = true
		}
	}
	return alone, takesValue
}

// loadFor reads the configuration that words (global flags) name: -c, and
// -d or RAIJIN_DESTINATION.
func loadFor(root *kong.Node, words []string) (*config.Config, error) {
	return config.LoadDestination(configFile(root, words), globalValue(root, words, "destination"))
}

// configFile is the configuration file that words name with -c or --config,
// else the flag's default.
func configFile(root *kong.Node, words []string) string {
	return globalValue(root, words, "config")
}

// globalValue is the value that words give the global flag name (the last
// one wins, as in kong), else its environment variable's, else its default.
func globalValue(root *kong.Node, words []string, name string) string {
	var flag *kong.Flag
	for _, f := range root.Flags {
		if f.Name == name {
			flag = f
		}
	}
	value := flag.Default
	for _, env := range flag.Envs {
		if v, ok := os.LookupEnv(env); ok {
			value = v
			break
		}
	}
	for i, w := range words {
		switch {
		case w == "--":
			return value
		case (w == "--"+flag.Name || w == "-"+string(flag.Short)) && i+1 < len(words):
			value = words[i+1]
		case strings.HasPrefix(w, "--"+flag.Name+"="):
			value = strings.TrimPrefix(w, "--"+flag.Name+"=")
		}
	}
	return value
}
