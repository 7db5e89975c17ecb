package config

import (
	"slices"
	"strings"
	"testing"
)

const balanced = `app = "shop"
version = "1.0.0"
distfile = "dist/shop"

[webserver]
upstream = "localhost:8000"
health_check = "/up"

[processes]
web = "shop serve"
worker = "shop work"

[[hosts]]
name = "lb"
address = "203.0.113.1"
domain_name = "shop.example.com"
roles = ["loadbalancer"]

[[hosts]]
name = "web1"
address = "10.0.0.11"
domain_name = ":8080"
roles = ["web"]

[[hosts]]
name = "web2"
address = "10.0.0.12"
domain_name = "http://10.0.0.12:81"
roles = ["web", "worker"]

[[hosts]]
name = "web3"
address = "10.0.0.13"
roles = ["web"]

[[hosts]]
name = "jobs"
address = "10.0.0.21"
roles = ["worker"]
`

func TestBalancer(t *testing.T) {
	c, err := Load(project(t, balanced))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.BalancerUpstreams(); !slices.Equal(got, []string{"10.0.0.11:8080", "10.0.0.12:81", "10.0.0.13:80"}) {
		t.Errorf("upstreams %v", got)
	}
	if b := Balancers(c.Hosts); len(b) != 1 || b[0].Name != "lb" {
		t.Errorf("balancers %v", b)
	}
	if a := AppHosts(c.Hosts); len(a) != 4 || a[0].Name != "web1" {
		t.Errorf("app hosts %v", a)
	}
	if len(c.HostProcesses(c.Hosts[0])) != 0 {
		t.Errorf("the balancer runs %v", c.HostProcesses(c.Hosts[0]))
	}
}

func TestBalancerErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edits []string // old, new, ...
		want  string
	}{
		{"balancer and web on one host", []string{`roles = ["loadbalancer"]`, `roles = ["loadbalancer", "web"]`},
			`raijin.toml:17: hosts.0.roles: lb has the role loadbalancer and runs web: a load balancer runs no process of the app`},
		{"no health check", []string{`health_check = "/up"`, ``},
			`raijin.toml:17: hosts.0.roles: lb is a load balancer: it needs [webserver] health_check`},
		{"web host with TLS", []string{`domain_name = ":8080"`, `domain_name = "web1.example.com"`},
			`raijin.toml:22: hosts.1.domain_name: web host web1 behind the load balancer: domain_name "web1.example.com" is served with TLS`},
		{"web host by another name", []string{`domain_name = "http://10.0.0.12:81"`, `domain_name = "http://web2.internal"`},
			`hosts.2.domain_name: web host web2 behind the load balancer: domain_name "http://web2.internal" names web2.internal, but the balancer reaches this host at its address 10.0.0.12`},
		{"bad port", []string{`domain_name = ":8080"`, `domain_name = ":0"`}, `":0": "0" is not a TCP port`},
		{"no web host", []string{`roles = ["web"]`, `roles = ["worker"]`, `roles = ["web", "worker"]`, `roles = ["worker"]`}, `lb is a load balancer, but no host runs the web process`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(project(t, strings.NewReplacer(tc.edits...).Replace(balanced)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v\nwant %s", err, tc.want)
			}
		})
	}
}
