package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/raijin-deploy/raijin/errs"
)

// A destination (staging, production, ...) is a second file beside
// raijin.toml, raijin.NAME.toml, read over it: its [[hosts]] replace the
// base hosts when it has any, and its other keys override the base's, table
// by table, key by key. Any other array is replaced as a whole.

var destinationRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)

// CheckDestination refuses a destination name that cannot name a file
// beside raijin.toml: empty, or with a path separator, a dot or a space.
func CheckDestination(name string) error {
	if !destinationRe.MatchString(name) {
		return errs.Usagef("", "destination %q: not a name for raijin.NAME.toml: use letters, digits, '-' and '_', starting with a letter or digit (such as -d staging)", name)
	}
	return nil
}

// DestinationFile is the file of destination name for the configuration
// file path: raijin.toml's staging is raijin.staging.toml beside it.
func DestinationFile(path, name string) string {
	return filepath.Join(filepath.Dir(path), strings.TrimSuffix(filepath.Base(path), ".toml")+"."+name+".toml")
}

// Destinations lists, sorted, the destinations that have a file beside the
// configuration file path (raijin.*.toml beside raijin.toml).
func Destinations(path string) []string {
	stem := strings.TrimSuffix(filepath.Base(path), ".toml") + "."
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), stem)
		if name, isTOML := strings.CutSuffix(name, ".toml"); ok && isTOML && !e.IsDir() && destinationRe.MatchString(name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// LoadDestination reads path with destination name's file over it (name ""
// is path alone, as Load). A destination without a file is an error that
// lists those that have one.
func LoadDestination(path, name string) (*Config, error) {
	if name == "" {
		return Load(path)
	}
	if err := CheckDestination(name); err != nil {
		return nil, err
	}
	base, err := readConfigFile(path)
	if err != nil {
		return nil, err
	}
	file := DestinationFile(path, name)
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		hint := fmt.Sprintf("write %s (its keys override %s's, its [[hosts]] replace the base hosts)", file, path)
		if known := Destinations(path); len(known) > 0 {
			hint = fmt.Sprintf("the destinations beside %s are: %s; or %s", path, strings.Join(known, ", "), hint)
		}
		return nil, errs.Usagef(hint, "%s: no such file, for destination %q (-d)", file, name)
	}
	if err != nil {
		return nil, errs.Usagef("", "%s: %v", file, err)
	}
	return parseLayers(name, []layer{{path, base}, {file, data}})
}

// layer is one file of the configuration: raijin.toml, then a
// destination's file over it.
type layer struct {
	file string
	data []byte
}

// decodeLayers decodes each layer strictly, so that an unknown key or a bad
// type is reported in its own file at its line, and merges them into one
// Config, with the layer whose [[hosts]] are used.
func decodeLayers(layers []layer) (c *Config, tree map[string]any, hostsFrom int, err error) {
	var trees []map[string]any
	for i, l := range layers {
		c = &Config{}
		dec := toml.NewDecoder(bytes.NewReader(l.data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(c); err != nil {
			return nil, nil, 0, decodeError(l.file, err)
		}
		var t map[string]any
		if err := toml.Unmarshal(l.data, &t); err != nil {
			return nil, nil, 0, decodeError(l.file, err)
		}
		if _, ok := t["hosts"]; ok {
			hostsFrom = i
		}
		trees = append(trees, t)
	}
	tree = trees[0]
	if len(trees) == 1 {
		return c, tree, hostsFrom, nil
	}
	for _, t := range trees[1:] {
		liftProcesses(tree, t)
		mergeTables(tree, t)
	}
	merged, err := toml.Marshal(tree)
	if err == nil {
		c = &Config{}
		err = toml.Unmarshal(merged, c)
	}
	if err != nil {
		return nil, nil, 0, errs.Usagef("", "%s over %s: %v", layers[len(layers)-1].file, layers[0].file, err)
	}
	return c, tree, hostsFrom, nil
}

// liftProcesses turns a process given as a command in base into its table
// form ({command = ...}) where over sets a table for it, so that over's
// keys (replicas, schedule) add to the command instead of replacing it.
func liftProcesses(base, over map[string]any) {
	bp, _ := base["processes"].(map[string]any)
	op, _ := over["processes"].(map[string]any)
	for name, v := range op {
		cmd, isCmd := bp[name].(string)
		if _, isTable := v.(map[string]any); isTable && isCmd {
			bp[name] = map[string]any{"command": cmd}
		}
	}
}

// mergeTables sets over's keys in base: a table merges key by key, anything
// else (a value, an array, the [[hosts]] array of tables) replaces base's.
func mergeTables(base, over map[string]any) {
	for k, v := range over {
		sub, isTable := v.(map[string]any)
		baseSub, baseIsTable := base[k].(map[string]any)
		if isTable && baseIsTable {
			mergeTables(baseSub, sub)
			continue
		}
		base[k] = v
	}
}

// locate finds the file and line that set key (dotted: "webserver.upstream",
// "hosts.1.address"): the last layer that sets it, and for a host's key the
// file whose [[hosts]] are used. line is 0 when no file sets it, with the
// file that would.
func (c *Config) locate(key string) (file string, line int) {
	layers := c.layers
	if strings.HasPrefix(key, "hosts.") {
		layers = layers[c.hostsFrom : c.hostsFrom+1]
	}
	for i := len(layers) - 1; i >= 0; i-- {
		if n := findKeyLine(layers[i].data, key); n > 0 {
			return layers[i].file, n
		}
	}
	return layers[len(layers)-1].file, 0
}

// written is "FILE:LINE" of the line that sets key, or "" when no file does.
func (c *Config) written(key string) string {
	if file, line := c.locate(key); line > 0 {
		return fmt.Sprintf("%s:%d", file, line)
	}
	return ""
}

// at is where an error about key points: the line that sets it, else for a
// host's key that no file writes (a default, such as its name) its
// [[hosts]] header, else the file alone.
func (c *Config) at(key string) string {
	if w := c.written(key); w != "" {
		return w
	}
	// A key of a process's table (processes.NAME.replicas) written
	// inline or dotted: the line that names the process.
	if parts := strings.Split(key, "."); parts[0] == "processes" && len(parts) == 3 {
		if w := c.written("processes." + parts[1]); w != "" {
			return w
		}
	}
	if parts := strings.Split(key, "."); parts[0] == "hosts" && len(parts) == 3 {
		l := c.layers[c.hostsFrom]
		var idx int
		if _, err := fmt.Sscanf(parts[1], "%d", &idx); err == nil {
			if line := findArrayTableLine(l.data, "hosts", idx); line > 0 {
				return fmt.Sprintf("%s:%d", l.file, line)
			}
		}
		return l.file
	}
	return c.File
}

// HostsFile is the file whose [[hosts]] are used: raijin.toml, or the
// destination's file when it has hosts of its own.
func (c *Config) HostsFile() string { return c.layers[c.hostsFrom].file }

// sets reports whether a file sets the dotted key (after the merge).
func (c *Config) sets(key string) bool {
	var v any = c.tree
	for _, k := range strings.Split(key, ".") {
		t, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if v, ok = t[k]; !ok {
			return false
		}
	}
	return true
}
