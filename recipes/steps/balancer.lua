-- raijin.steps.balancer: the load balancer in front of the web hosts (the
-- site of a host with the role loadbalancer), and a rolling deploy taking
-- each web host out of it while it restarts, and back.
local raijin = require("raijin")
local templates = require("raijin.steps.templates")
local services = require("raijin.steps.services")

local M = {}

-- How often the balancer checks each web host's health_check, and how long
-- it waits for the answer, in seconds: leave and join wait on them.
M.health_interval = 1
M.health_timeout = 1

-- site: the balancer's Caddy site: ctx.host.site_address (TLS ends here, as
-- on any site with a domain name), reverse_proxy to every web host of the
-- configuration, round robin, with passive and active health checks.
function M.site(ctx)
  local b = raijin.balancer(ctx)
  return templates.render(ctx, "balancer.caddy", {
    site = ctx.host.site_address, upstreams = b.upstreams, policy = "round_robin",
    try_duration = "5s", fail_duration = "10s", health_uri = b.health_uri,
    health_interval = M.health_interval .. "s", health_timeout = M.health_timeout .. "s",
  })
end

-- run: the step of the balancer flow, on a load balancer: its site goes to
-- /etc/caddy/conf.d/{app}.caddy, validated, then Caddy reloads gracefully
-- (not when the site did not change).
function M.run(ctx)
  ctx.host:caddy_reload(ctx.paths.caddy_site, M.site(ctx))
end

-- Whether this host is a web host that a rolling deploy takes out of the
-- balancer: the app has a load balancer and deploys in batches.
local function rolling_web(ctx)
  return ctx.rolling and raijin.balancer(ctx).balanced and services.has_web(ctx)
end

-- Out of the balancer: the health check answers 503 while $OUT exists
-- (the site's route, templates/site.caddy); then wait until the balancer
-- has checked. A site without that route yet (the first deploy behind the
-- balancer) cannot be taken out.
local LEAVE = [[
if grep -qF "$OUT" "$SITE" 2>/dev/null && systemctl is-active -q caddy; then
  touch "$OUT" && sleep "$WAIT" && echo out
fi]]

-- leave: before a rolling deploy installs the new version on a web host
-- behind a load balancer, the host fails the balancer's health check, which
-- then sends it no new request; the requests on their way finish (the
-- serving slot keeps running).
function M.leave(ctx)
  if not rolling_web(ctx) then return end
  local wait = 2 * M.health_interval + M.health_timeout
  local res = ctx.host:run(LEAVE, { sudo = true, env = { OUT = ctx.paths.out, SITE = ctx.paths.caddy_site, WAIT = tostring(wait) } })
  if ctx.dry_run or res.stdout:find("out", 1, true) then
    ctx.left_balancer = true
    raijin.log("out of the load balancer")
  else
    raijin.log("not taken out of the load balancer: its Caddy site has no route for it yet (the first deploy behind the balancer)")
  end
end

-- undo: a failed deploy puts the host back once the previous version serves
-- again (the undo of install runs before this one): the balancer's health
-- check decides when it gets requests again.
function M.undo(ctx)
  if not ctx.left_balancer then return end
  ctx.host:run('rm -f "$OUT"', { sudo = true, env = { OUT = ctx.paths.out } })
  raijin.log("back in the load balancer (its health check decides)")
end

-- join: once the new version serves (and the old slot has stopped), the
-- host passes the health check again, and waits until the balancer has
-- checked it. Deferred: it rides with the deploy's last round trip, after
-- record and prune, so the next batch starts once this one is back.
function M.join(ctx)
  if not ctx.left_balancer then return end
  local wait = 2 * M.health_interval
  ctx.host:defer(function()
    ctx.host:run('rm -f "$OUT" && sleep "$WAIT"', { sudo = true, env = { OUT = ctx.paths.out, WAIT = tostring(wait) } })
  end)
  raijin.log("back in the load balancer with the last round trip")
end

return M
