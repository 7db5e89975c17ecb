package transport

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kevinburke/ssh_config"
	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/transport/proxyjump"
)

// sshOption is one line of ~/.ssh/config (or a file it includes) that
// applies to the host being connected.
type sshOption struct {
	key, value string
	file       string // as shown in messages: ~/.ssh/config
	line       int
	block      string // "Host web1 *.example.com", "" before any Host line
}

// where is the option's place for messages: "~/.ssh/config line 7: Host web1".
func (o sshOption) where() string {
	if o.block == "" {
		return fmt.Sprintf("%s line %d (before any Host line, so for every host)", o.file, o.line)
	}
	return fmt.Sprintf("%s line %d: %s", o.file, o.line, o.block)
}

// sshConfigOptions reads ~/.ssh/config and the files it includes and
// returns the options that apply to alias, in the order ssh reads them. As
// in OpenSSH, the first value of an option wins, except for those that add
// up (IdentityFile); the lines a first value overrides are left out.
// /etc/ssh/ssh_config is not read.
func sshConfigOptions(alias string) ([]sshOption, error) {
	path := filepath.Join(homeDir(), ".ssh", "config")
	cfg, err := decodeSSHConfig(path)
	if err != nil || cfg == nil {
		return nil, err
	}
	w := &configWalk{alias: alias, hostname: alias, seen: map[string]bool{}}
	if err := w.walk(cfg, "~/.ssh/config", 0); err != nil {
		return nil, err
	}
	return w.opts, nil
}

func decodeSSHConfig(path string) (*ssh_config.Config, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cfg, err := ssh_config.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", shortPath(path), err)
	}
	return cfg, nil
}

type configWalk struct {
	alias    string
	hostname string // HostName so far: what a Match host line is matched against
	seen     map[string]bool
	opts     []sshOption
}

func (w *configWalk) walk(cfg *ssh_config.Config, file string, depth int) error {
	for i, h := range cfg.Hosts {
		header := strings.TrimSpace(strings.SplitN(h.String(), "\n", 2)[0])
		block := ""
		if i > 0 { // the first block is the lines before any Host line
			block = strings.TrimSpace(strings.SplitN(header, "#", 2)[0])
		}
		isMatch := strings.HasPrefix(strings.ToLower(block), "match")
		if isMatch && !h.Matches(w.hostname) || !isMatch && !h.Matches(w.alias) {
			continue
		}
		for _, n := range h.Nodes {
			switch n := n.(type) {
			case *ssh_config.KV:
				w.add(sshOption{key: n.Key, value: n.Value, file: file, line: n.Pos().Line, block: block})
			case *ssh_config.Include:
				if err := w.include(n, file, depth); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (w *configWalk) add(o sshOption) {
	k := strings.ToLower(o.key)
	if k == "identityfile" || !w.seen[k] {
		w.seen[k] = true
		w.opts = append(w.opts, o)
		if k == "hostname" {
			w.hostname = strings.ReplaceAll(o.value, "%h", w.alias)
		}
	}
}

// include reads the files of an Include line in place, in the order of
// their names, as OpenSSH does (ssh_config reads them too, but does not
// say from which file a line came).
func (w *configWalk) include(inc *ssh_config.Include, file string, depth int) error {
	if depth >= 5 {
		return fmt.Errorf("%s line %d: Include nested too deeply", file, inc.Pos().Line)
	}
	line := strings.TrimSpace(strings.SplitN(inc.String(), "#", 2)[0])
	line = strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(line, "Include"), "include"))
	line = strings.TrimSpace(strings.TrimPrefix(line, "="))
	for _, pattern := range strings.Fields(line) {
		p := expandHome(pattern)
		if !filepath.IsAbs(p) {
			p = filepath.Join(homeDir(), ".ssh", p)
		}
		matches, err := filepath.Glob(p)
		if err != nil {
			return fmt.Errorf("%s line %d: Include %s: %w", file, inc.Pos().Line, pattern, err)
		}
		sort.Strings(matches)
		for _, m := range matches {
			cfg, err := decodeSSHConfig(m)
			if err != nil {
				return err
			}
			if cfg != nil {
				if err := w.walk(cfg, shortPath(m), depth+1); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// shortPath writes a path under the home directory with ~.
func shortPath(p string) string {
	if rel, err := filepath.Rel(homeDir(), p); err == nil && !strings.HasPrefix(rel, "..") {
		return "~/" + rel
	}
	return p
}

// sshSettings is how raijin connects to one host: its Target with
// ~/.ssh/config applied.
type sshSettings struct {
	hostname, user string
	port           int
	identityFiles  []string // key_filename first, then IdentityFile, else ~/.ssh/id_*
	identitiesOnly bool     // offer the agent's keys only when they are one of identityFiles
	agentSocket    string   // "": no agent
	knownHosts     []string // checked; the first records a new host key
	globalKnown    []string // also checked, never written
	hashKnownHosts bool
	acceptNew      bool
	timeout        time.Duration
	jumps          []proxyjump.Hop // ProxyJump: the jump hosts, the first connected to first
	jumpsFrom      string          // where ProxyJump was set, for messages
}

// loadSSHConfig applies the options of ~/.ssh/config that apply to t's
// address. raijin.toml's user and port win. An option raijin cannot honour
// and that is not harmless to ignore is an error (exit 2) naming its file
// and line: raijin never connects in a way the user's config forbids, and
// never turns off the host-key check.
func loadSSHConfig(t Target) (sshSettings, error) {
	s := sshSettings{hostname: t.Address, user: t.User, port: t.Port, acceptNew: t.AcceptNew, timeout: t.Timeout,
		agentSocket: os.Getenv("SSH_AUTH_SOCK")}
	opts, err := sshConfigOptions(t.Address)
	if err != nil {
		return s, errs.WithCode(errs.CodeUsage, err, "")
	}
	var problems []string
	var identities []sshOption
	var knownHosts, globalKnown *sshOption
	for _, o := range opts {
		key := strings.ToLower(o.key)
		switch key {
		case "identityfile":
			identities = append(identities, o)
		case "userknownhostsfile":
			knownHosts = &o
		case "globalknownhostsfile":
			globalKnown = &o
		default:
			if p := s.apply(key, o, t); p != "" {
				problems = append(problems, p)
			}
		}
	}
	if p := s.setJumps(t); p != "" {
		problems = append(problems, p)
	}
	s.fillDefaults()
	// The file names may use %r and %p: they are expanded last.
	tokens := s.tokens(t.Address)
	problems = append(problems, s.setIdentityFiles(t.KeyFile, identities, tokens)...)
	problems = append(problems, s.setKnownHosts(knownHosts, globalKnown, tokens)...)
	if len(problems) > 0 {
		return s, errs.Usagef("", "%s", strings.Join(problems, "\n"))
	}
	return s, nil
}

// fillDefaults is what neither raijin.toml nor ~/.ssh/config set.
func (s *sshSettings) fillDefaults() {
	if s.user == "" {
		s.user = os.Getenv("USER")
	}
	if s.user == "" {
		s.user = "root"
	}
	if s.port == 0 {
		s.port = 22
	}
	if s.timeout == 0 {
		s.timeout = 15 * time.Second
	}
}

// setIdentityFiles: key_filename, then the IdentityFile lines; as in
// OpenSSH, the usual ~/.ssh/id_* only when neither names a key
// (IdentityFile none names none).
func (s *sshSettings) setIdentityFiles(keyFile string, identities []sshOption, tokens map[byte]string) []string {
	var problems []string
	if keyFile != "" {
		s.identityFiles = append(s.identityFiles, expandHome(keyFile))
	}
	for _, o := range identities {
		if strings.EqualFold(o.value, "none") {
			continue
		}
		f, err := expandPath(o.value, tokens)
		if err != nil {
			problems = append(problems, o.unexpanded(err))
			continue
		}
		s.identityFiles = append(s.identityFiles, f)
	}
	if keyFile == "" && len(identities) == 0 {
		for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			s.identityFiles = append(s.identityFiles, filepath.Join(homeDir(), ".ssh", n))
		}
	}
	return problems
}

// setKnownHosts: UserKnownHostsFile, else ~/.ssh/known_hosts; and the
// GlobalKnownHostsFile when set (raijin reads no global file by default).
func (s *sshSettings) setKnownHosts(user, global *sshOption, tokens map[byte]string) []string {
	var problems []string
	s.knownHosts = []string{filepath.Join(homeDir(), ".ssh", "known_hosts")}
	if user != nil {
		files, p := knownHostsFiles(*user, tokens)
		if p != "" {
			problems = append(problems, p)
		} else {
			s.knownHosts = files
		}
	}
	if global != nil {
		files, p := knownHostsFiles(*global, tokens)
		if p != "" {
			problems = append(problems, p)
		}
		s.globalKnown = files
	}
	return problems
}

// apply uses one option that raijin honours, or checks that ignoring it is
// harmless; it returns what is wrong, if anything.
func (s *sshSettings) apply(key string, o sshOption, t Target) string {
	v := o.value
	switch key {
	case "hostname":
		hn, err := expandTokens(v, map[byte]string{'h': t.Address})
		if err != nil {
			return o.unexpanded(err)
		}
		s.hostname = hn
	case "user":
		if s.user == "" {
			s.user = v
		}
	case "port":
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 || p > 65535 {
			return o.refuse("which is not a port number", "write a number from 1 to 65535")
		}
		if s.port == 0 {
			s.port = p
		}
	case "identitiesonly":
		return o.setFlag(&s.identitiesOnly)
	case "identityagent":
		switch {
		case strings.EqualFold(v, "none"):
			s.agentSocket = ""
		case v == "SSH_AUTH_SOCK":
		case strings.HasPrefix(v, "$"):
			s.agentSocket = os.Getenv(strings.Trim(v[1:], "{}"))
		default:
			p, err := expandPath(v, map[byte]string{'d': homeDir(), 'h': t.Address, 'u': localUser()})
			if err != nil {
				return o.unexpanded(err)
			}
			s.agentSocket = p
		}
	case "stricthostkeychecking":
		switch strings.ToLower(v) {
		case "yes", "ask", "true":
			// raijin never asks: an unknown host is refused, as with yes.
		case "accept-new":
			s.acceptNew = true
		default:
			return o.refuse("which would let a server's key in unverified: raijin always verifies host keys",
				"remove it for this host; to record a new server's key once, run raijin with --accept-new-host-key")
		}
	case "hashknownhosts":
		return o.setFlag(&s.hashKnownHosts)
	case "connecttimeout":
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return o.refuse("which is not a number of seconds", "write a whole number of seconds")
		}
		if t.Timeout == 0 {
			s.timeout = time.Duration(n) * time.Second
		}
	case "proxyjump":
		if t.ProxyJump != "" || proxyjump.IsNone(v) {
			break // raijin.toml's proxy_jump wins
		}
		hops, err := proxyjump.Parse(v)
		if err != nil {
			return o.refuse("which raijin cannot read ("+err.Error()+")", "write jump hosts as [user@]host[:port], comma separated, or none")
		}
		s.jumps, s.jumpsFrom = hops, o.where()
	case "proxycommand":
		if !strings.EqualFold(v, "none") {
			return o.refuse("which raijin does not support: it connects to each server directly", unsupportedHint(t.Address))
		}
	default:
		r, known := ignoredOptions[key]
		if !known || !r.harmless(v) {
			why := "which raijin does not support"
			if known && r.does != "" {
				why += " (" + r.does + ")"
			}
			return o.refuse(why, unsupportedHint(t.Address))
		}
	}
	return ""
}

// setJumps takes raijin.toml's proxy_jump, which wins over ssh_config's
// ProxyJump, as user and port do.
func (s *sshSettings) setJumps(t Target) string {
	if t.ProxyJump == "" {
		return ""
	}
	s.jumps, s.jumpsFrom = nil, "proxy_jump in raijin.toml"
	if t.proxyJumpFrom != "" {
		s.jumpsFrom = t.proxyJumpFrom
	}
	if proxyjump.IsNone(t.ProxyJump) {
		return ""
	}
	hops, err := proxyjump.Parse(t.ProxyJump)
	if err != nil {
		return fmt.Sprintf("%s %q: %v: write jump hosts as [user@]host[:port], comma separated, or none", s.jumpsFrom, t.ProxyJump, err)
	}
	s.jumps = hops
	return ""
}

func unsupportedHint(alias string) string {
	return "remove it, or keep it from applying to " + alias + " (add !" + alias + " to that Host line)"
}

// setFlag sets *b from a yes or no.
func (o sshOption) setFlag(b *bool) string {
	v, ok := yesNo(o.value)
	if !ok {
		return o.refuse("which is neither yes nor no", "write yes or no")
	}
	*b = v
	return ""
}

// unexpanded refuses a value with a token or a variable raijin does not
// expand.
func (o sshOption) unexpanded(err error) string {
	return o.refuse("whose "+err.Error()+" raijin does not expand", "write it out in full")
}

// refuse says which line sets what, why raijin refuses it, and what to do.
func (o sshOption) refuse(why, todo string) string {
	return fmt.Sprintf("%s sets %s %s, %s: %s", o.where(), o.key, o.value, why, todo)
}

// ignoredRule is an option raijin does not act on, and the values for
// which that is harmless.
type ignoredRule struct {
	harmless func(v string) bool
	does     string // what raijin does instead, for the error
}

// ignoredOptions are the options raijin accepts without acting on them,
// because what they change is the way ssh itself behaves and not which
// server is reached, as whom, with which keys, how its host key is checked
// or what runs: raijin's own behaviour is the safe value, or the option only
// tunes speed and messages. README.md lists them.
var ignoredOptions = map[string]ignoredRule{
	// Messages and speed.
	"loglevel":      {harmless: anyValue},
	"visualhostkey": {harmless: anyValue},
	"compression":   {harmless: anyValue},
	// raijin keeps its one connection alive itself (a keepalive every 15s,
	// the connection closed after 3 unanswered) and opens no shared one.
	"serveraliveinterval": {harmless: anyValue},
	"serveralivecountmax": {harmless: anyValue},
	"tcpkeepalive":        {harmless: anyValue},
	"controlmaster":       {harmless: anyValue},
	"controlpath":         {harmless: anyValue},
	"controlpersist":      {harmless: anyValue},
	// raijin never prompts, so never reads a passphrase to add a key to the
	// agent or the keychain.
	"batchmode":      {harmless: anyValue},
	"addkeystoagent": {harmless: anyValue},
	"usekeychain":    {harmless: anyValue},
	"ignoreunknown":  {harmless: anyValue},
	// The host key of the name dialled is checked against known_hosts all
	// the same; these only add a warning or learn more keys.
	"checkhostip":    {harmless: anyValue},
	"updatehostkeys": {harmless: anyValue},
	// sshd takes only the variables its AcceptEnv lists (LANG, LC_*), and
	// raijin's commands set what they need.
	"sendenv": {harmless: anyValue},
	// raijin logs in with keys only.
	"preferredauthentications":        {harmless: listsPublickey, does: "it logs in with keys only"},
	"pubkeyauthentication":            {harmless: isNot("no"), does: "it logs in with keys only"},
	"passwordauthentication":          {harmless: isNot("yes"), does: "it logs in with keys only"},
	"kbdinteractiveauthentication":    {harmless: isNot("yes"), does: "it logs in with keys only"},
	"challengeresponseauthentication": {harmless: isNot("yes"), does: "it logs in with keys only"},
	"gssapiauthentication":            {harmless: isNot("yes"), does: "it logs in with keys only"},
	"hostbasedauthentication":         {harmless: isNot("yes"), does: "it logs in with keys only"},
	// raijin forwards nothing.
	"forwardagent":        {harmless: isNot("yes"), does: "it never forwards the agent"},
	"forwardx11":          {harmless: isNot("yes"), does: "it never forwards X11"},
	"clearallforwardings": {harmless: anyValue},
}

func anyValue(string) bool { return true }

// isNot is harmless for yes or no but bad.
func isNot(bad string) func(string) bool {
	return func(v string) bool {
		b, ok := yesNo(v)
		return ok && b != (bad == "yes")
	}
}

func listsPublickey(v string) bool {
	for _, m := range strings.Split(v, ",") {
		if strings.EqualFold(strings.TrimSpace(m), "publickey") {
			return true
		}
	}
	return false
}

func yesNo(v string) (value, ok bool) {
	switch strings.ToLower(v) {
	case "yes", "true":
		return true, true
	case "no", "false":
		return false, true
	}
	return false, false
}

// tokens are the values of the %-tokens of a path in ssh_config.
func (s *sshSettings) tokens(alias string) map[byte]string {
	host, _ := os.Hostname()
	short, _, _ := strings.Cut(host, ".")
	return map[byte]string{
		'd': homeDir(), 'h': s.hostname, 'i': strconv.Itoa(os.Getuid()), 'L': short, 'l': host,
		'n': alias, 'p': strconv.Itoa(s.port), 'r': s.user, 'u': localUser(),
	}
}

func localUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

// expandPath is a path of ssh_config: ~ and its %-tokens expanded.
func expandPath(v string, tokens map[byte]string) (string, error) {
	if strings.Contains(v, "${") {
		return "", fmt.Errorf("${...}")
	}
	p, err := expandTokens(v, tokens)
	if err != nil {
		return "", err
	}
	return expandHome(p), nil
}

// expandTokens replaces %% and the %-tokens given; any other is an error
// naming it.
func expandTokens(v string, tokens map[byte]string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		if i++; i == len(v) {
			return "", fmt.Errorf("a %% at the end")
		}
		if v[i] == '%' {
			b.WriteByte('%')
			continue
		}
		r, ok := tokens[v[i]]
		if !ok {
			return "", fmt.Errorf("%%%c", v[i])
		}
		b.WriteString(r)
	}
	return b.String(), nil
}

// knownHostsFiles are the files of a UserKnownHostsFile or
// GlobalKnownHostsFile line. A UserKnownHostsFile of only /dev/null (or
// none) would trust any server: refused.
func knownHostsFiles(o sshOption, tokens map[byte]string) ([]string, string) {
	var files []string
	for _, f := range strings.Fields(o.value) {
		p, err := expandPath(f, tokens)
		if err != nil {
			return nil, o.unexpanded(err)
		}
		if p != "/dev/null" && !strings.EqualFold(p, "none") {
			files = append(files, p)
		}
	}
	if len(files) == 0 && strings.EqualFold(o.key, "UserKnownHostsFile") {
		return nil, o.refuse("which would check host keys against nothing: raijin always verifies host keys",
			"remove it for this host (raijin then uses ~/.ssh/known_hosts), or name a known_hosts file")
	}
	return files, ""
}
