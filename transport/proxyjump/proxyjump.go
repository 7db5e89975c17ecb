// Package proxyjump reads the value of a ProxyJump line of ssh_config, which
// is also the syntax of proxy_jump in raijin.toml: jump hosts, comma
// separated, each [user@]host[:port] or ssh://[user@]host[:port].
package proxyjump

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Hop is one jump host as written; an empty User or a zero Port is left to
// ssh_config (then the defaults), as for a host connected to directly.
type Hop struct {
	User string
	Host string // a host name, an address or a Host alias of ssh_config
	Port int
}

// String is the hop as ProxyJump writes it.
func (h Hop) String() string {
	s := h.Host
	if h.Port != 0 {
		s = net.JoinHostPort(h.Host, strconv.Itoa(h.Port))
	} else if strings.Contains(h.Host, ":") {
		s = "[" + h.Host + "]"
	}
	if h.User != "" {
		s = h.User + "@" + s
	}
	return s
}

// IsNone reports whether v turns jump hosts off ("none", as in OpenSSH).
func IsNone(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "none") }

// Format writes hops back as one ProxyJump value.
func Format(hops []Hop) string {
	parts := make([]string, len(hops))
	for i, h := range hops {
		parts[i] = h.String()
	}
	return strings.Join(parts, ",")
}

// Parse reads a ProxyJump value: the first hop is connected to first. "none"
// is not a hop list: check it with IsNone before.
func Parse(v string) ([]Hop, error) {
	if strings.TrimSpace(v) == "" {
		return nil, fmt.Errorf("no jump host")
	}
	var hops []Hop
	for _, part := range strings.Split(v, ",") {
		h, err := parseHop(strings.TrimSpace(part))
		if err != nil {
			return nil, err
		}
		hops = append(hops, h)
	}
	return hops, nil
}

func parseHop(s string) (Hop, error) {
	var h Hop
	if s == "" {
		return h, fmt.Errorf("an empty jump host between commas")
	}
	if IsNone(s) {
		return h, fmt.Errorf("none in a list of jump hosts (none stands alone)")
	}
	rest := strings.TrimPrefix(s, "ssh://")
	uri := rest != s
	if uri {
		rest = strings.TrimSuffix(rest, "/")
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		h.User, rest = rest[:i], rest[i+1:]
		if h.User == "" {
			return h, fmt.Errorf("%q: an empty user before @", s)
		}
	}
	host, port := rest, ""
	switch {
	case strings.HasPrefix(rest, "["):
		hp, p, err := net.SplitHostPort(rest)
		if err != nil {
			if !strings.HasSuffix(rest, "]") {
				return h, fmt.Errorf("%q: %v", s, err)
			}
			hp = strings.TrimSuffix(strings.TrimPrefix(rest, "["), "]")
		}
		host, port = hp, p
	case strings.Count(rest, ":") == 1:
		host, port, _ = strings.Cut(rest, ":")
	}
	if host == "" {
		return h, fmt.Errorf("%q: no host", s)
	}
	if strings.ContainsFunc(host+h.User, func(r rune) bool {
		return r <= ' ' || r == 0x7f || strings.ContainsRune("/'\"`$;&|<>\\,", r)
	}) {
		return h, fmt.Errorf("%q is not [user@]host[:port]", s)
	}
	h.Host = host
	if port != "" {
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			return h, fmt.Errorf("%q: %s is not a port number", s, port)
		}
		h.Port = p
	}
	return h, nil
}
