// Package server holds the operations raijin performs on a server through a
// remote.Host: systemd units, the Caddy site, the versions and their
// pruning, the deploy lock, the audit log, releases and health checks. Each
// builds its remote script from fixed text and quoted values (package shell).
package server
