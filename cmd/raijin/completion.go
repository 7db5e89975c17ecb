package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/pelletier/go-toml/v2"
)

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
		shell := filepath.Base(os.Getenv("SHELL"))
		for i, a := range args {
			if (a == "bash" || a == "zsh" || a == "fish") && (i == 0 || args[i-1] != "-c") {
				shell = a
			}
		}
		switch shell {
		case "zsh":
			fmt.Fprint(stdout, zshScript)
		case "fish":
			fmt.Fprint(stdout, fishScript)
		default:
			fmt.Fprint(stdout, bashScript)
		}
		return 0, true
	case "complete":
		line := os.Getenv("COMP_LINE")
		if p := os.Getenv("COMP_POINT"); p != "" {
			var n int
			if _, err := fmt.Sscan(p, &n); err == nil && n <= len(line) {
				line = line[:n]
			}
		}
		for _, c := range complete(parser, line) {
			fmt.Fprintln(stdout, c)
		}
		return 0, true
	}
	fmt.Fprintf(stderr, "raijin: --completion %q: use generate or complete\n", mode)
	return 2, true
}

// complete answers one completion request for the command line typed so far.
func complete(parser *kong.Kong, line string) []string {
	words := strings.Fields(line)
	partial := ""
	if len(words) > 0 && !strings.HasSuffix(line, " ") {
		partial = words[len(words)-1]
		words = words[:len(words)-1]
	}
	if len(words) > 0 {
		words = words[1:] // the program name
	}
	node := parser.Model.Node
	cfgFile := "raijin.toml"
	prev := ""
	for _, w := range words {
		if prev == "-c" || prev == "--config" {
			cfgFile = w
		} else if v, ok := strings.CutPrefix(w, "--config="); ok {
			cfgFile = v
		}
		for _, child := range node.Children {
			if child.Name == w && !strings.HasPrefix(w, "-") {
				node = child
			}
		}
		prev = w
	}
	var out []string
	add := func(c string) {
		if strings.HasPrefix(c, partial) {
			out = append(out, c)
		}
	}
	switch prev {
	case "-H", "--host":
		for _, h := range configNames(cfgFile, "hosts") {
			add(h)
		}
		return out
	case "-c", "--config", "--recipe":
		return nil // the shell's own file completion
	}
	if strings.HasPrefix(partial, "-") {
		for n := node; n != nil; n = n.Parent {
			for _, f := range n.Flags {
				if !f.Hidden {
					add("--" + f.Name)
				}
			}
		}
		sort.Strings(out)
		return out
	}
	for _, child := range node.Children {
		if !child.Hidden {
			add(child.Name)
		}
	}
	// Commands that take a process name complete the app's processes.
	for _, pos := range node.Positional {
		if pos.Name == "proc" {
			for _, p := range configNames(cfgFile, "processes") {
				add(p)
			}
		}
	}
	return out
}

// configNames reads host names or process names from raijin.toml without
// validating it, for completion.
func configNames(file, what string) []string {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var raw struct {
		Hosts []struct {
			Name    string `toml:"name"`
			Address string `toml:"address"`
		} `toml:"hosts"`
		Processes map[string]string `toml:"processes"`
	}
	if toml.Unmarshal(data, &raw) != nil {
		return nil
	}
	var out []string
	if what == "hosts" {
		for _, h := range raw.Hosts {
			if h.Name != "" {
				out = append(out, h.Name)
			} else {
				out = append(out, h.Address)
			}
		}
	} else {
		for p := range raw.Processes {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}
