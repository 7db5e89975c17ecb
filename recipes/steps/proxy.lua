-- raijin.steps.proxy: the app's Caddy site, and the proxy step.
local raijin = require("raijin")
local templates = require("raijin.steps.templates")

local M = {}

-- site: the Caddy site of this app for this host: {name, content, own}. The
-- user's own {local_config_dir}/{app}.caddy is used as it is when present
-- (own); otherwise it is generated from templates/site.caddy.
function M.site(ctx)
  local c = ctx.config
  local name = c.app .. ".caddy"
  local own = raijin.path(ctx, c.local_config_dir .. "/" .. name)
  if ctx["local"]:exists(own) then
    return { name = name, content = ctx["local"]:read(own), own = true }
  end
  local statics = {}
  for path, dir in c.webserver.statics() do
    statics[#statics + 1] = { path = path, dir = dir }
  end
  -- The longest path first, as Caddy sorts path matchers.
  table.sort(statics, function(a, b)
    if #a.path ~= #b.path then return #a.path > #b.path end
    return a.path < b.path
  end)
  for i, s in ipairs(statics) do
    -- What handle_path would strip: /static/* strips /static.
    s.name = c.app .. "_static" .. i
    s.prefix = s.path:gsub("/?%*$", "")
  end
  local vars = {
    site = ctx.host.site_address, upstream = raijin.slot(ctx, "blue").upstream,
    statics = statics, try_duration = "30s",
  }
  if raijin.balancer(ctx).balanced and ctx.paths.out then
    -- The route that takes this host out of the load balancer.
    vars.out, vars.health_uri = ctx.paths.out, c.webserver.health_check
    vars.out_dir, vars.out_file = ctx.paths.out:match("^(.*)/([^/]+)$")
  end
  if ctx.paths.maintenance then
    -- The maintenance page's route (raijin.steps.maintenance), taken while
    -- the page exists; not for the health check, which the deploy and a
    -- load balancer ask.
    vars.maintenance = ctx.paths.maintenance
    vars.maintenance_dir, vars.maintenance_file = ctx.paths.maintenance:match("^(.*)/([^/]+)$")
    vars.maintenance_health = c.webserver.health_check ~= "" and c.webserver.health_check or nil
    vars.retry_after = 300
  end
  if c.webserver.blue_green then
    -- The green slot's route, taken while the live marker exists.
    local live = ctx.paths.live
    vars.green = raijin.slot(ctx, "green").upstream
    vars.live = live
    vars.live_dir, vars.live_file = live:match("^(.*)/([^/]+)$")
  end
  return { name = name, content = templates.render(ctx, "site.caddy", vars) }
end

-- run: the site goes to /etc/caddy/conf.d/{app}.caddy, validated, then Caddy
-- reloads (not when the site did not change). A redeploy leaves it alone.
-- Deferred: it needs no answer, so it rides with the deploy's last round
-- trip (with record, prune, the audit line and the lock's release); a
-- failure there still undoes the deploy.
function M.run(ctx)
  -- A host without the role web has no site (the services step removes
  -- the one an earlier deploy left).
  if ctx.redeploy or not require("raijin.steps.services").has_web(ctx) then return end
  local site = M.site(ctx).content
  -- The services step installed this very site with the switch (its
  -- batch would have failed otherwise): nothing to look at again.
  if ctx.site_installed == site then return end
  ctx.host:defer(function() ctx.host:caddy_reload(ctx.paths.caddy_site, site) end)
end

return M
