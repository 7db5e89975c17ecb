package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// A host with the role loadbalancer runs Caddy in front of the app's web
// hosts: its site (its domain_name, where TLS ends) spreads the requests
// over every web host of the configuration, at the address and port of the
// web host's own Caddy site, which serves plain HTTP there.

// Balancers are the load balancers among hosts.
func Balancers(hosts []Host) []Host {
	var out []Host
	for _, h := range hosts {
		if h.IsBalancer() {
			out = append(out, h)
		}
	}
	return out
}

// AppHosts are the hosts of hosts that run the app: all but the balancers.
func AppHosts(hosts []Host) []Host {
	var out []Host
	for _, h := range hosts {
		if !h.IsBalancer() {
			out = append(out, h)
		}
	}
	return out
}

// Balanced reports whether the configuration has a load balancer.
func (c *Config) Balanced() bool { return len(Balancers(c.Hosts)) > 0 }

// WebHosts are the hosts of the configuration that run the web process.
func (c *Config) WebHosts() []Host {
	var out []Host
	for _, h := range c.Hosts {
		if !h.IsBalancer() && h.HasRole("web") && c.Processes["web"] != "" {
			out = append(out, h)
		}
	}
	return out
}

// BalancerUpstreams are where a load balancer sends requests: the site of
// each web host of the configuration (selected or not), as host:port.
func (c *Config) BalancerUpstreams() []string {
	var out []string
	for _, h := range c.WebHosts() {
		u, _ := BalancerUpstream(h) // checked at load
		out = append(out, u)
	}
	return out
}

// BalancerUpstream is where a load balancer reaches web host h: its address
// and the port of its Caddy site, which must serve plain HTTP there (TLS
// ends on the balancer). The balancer sends the upstream's address as the
// Host, so the site must answer any name (":8080") or that address.
func BalancerUpstream(h Host) (string, error) {
	d := h.DomainName
	port := "80"
	switch {
	case d == "":
	case strings.HasPrefix(d, ":"):
		port = d[1:]
	case strings.HasPrefix(d, "http://"):
		hostport := strings.TrimSuffix(strings.TrimPrefix(d, "http://"), "/")
		name, p, err := net.SplitHostPort(hostport)
		if err != nil {
			name, p = hostport, "80"
		}
		if name != h.Address {
			return "", fmt.Errorf("domain_name %q names %s, but the balancer reaches this host at its address %s", d, name, h.Address)
		}
		port = p
	default:
		return "", fmt.Errorf("domain_name %q is served with TLS, but the balancer reaches this host over plain HTTP at its address %s", d, h.Address)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("domain_name %q: %q is not a TCP port", d, port)
	}
	return net.JoinHostPort(h.Address, port), nil
}

// checkBalancers checks what a load balancer needs: web hosts whose sites
// it can reach over plain HTTP, and a health check to watch them with.
func (c *Config) checkBalancers() error {
	if !c.Balanced() {
		return nil
	}
	first := -1
	for i, h := range c.Hosts {
		if h.IsBalancer() && first < 0 {
			first = i
		}
	}
	rolesKey := fmt.Sprintf("hosts.%d.roles", first)
	if len(c.WebHosts()) == 0 {
		return c.keyErrorHint(rolesKey, "give the web role to the hosts behind the balancer (or remove the loadbalancer role)",
			"%s is a load balancer, but no host runs the web process", c.Hosts[first].Name)
	}
	if c.Webserver.HealthCheck == "" {
		return c.keyErrorHint(rolesKey, `set [webserver] health_check = "/up" (a path the app answers with a 2xx when it is healthy)`,
			"%s is a load balancer: it needs [webserver] health_check, to check the web hosts and to take each out while a rolling deploy restarts it", c.Hosts[first].Name)
	}
	for i, h := range c.Hosts {
		if h.IsBalancer() || !h.HasRole("web") {
			continue
		}
		if _, err := BalancerUpstream(h); err != nil {
			return c.keyErrorHint(fmt.Sprintf("hosts.%d.domain_name", i), fmt.Sprintf(`behind a load balancer, a web host serves plain HTTP: domain_name = ":8080" (any name) or "http://%s"; the balancer's own domain_name gets TLS`, h.Address),
				"web host %s behind the load balancer: %v", h.Name, err)
		}
	}
	return nil
}
