-- raijin.steps.maintenance: `raijin app maintenance [--message TEXT]` and
-- `raijin app live`. While the page ctx.paths.maintenance exists (under
-- /var/lib/raijin, owned by root), the app's Caddy site answers every
-- request but the health check with it: status 503 and a Retry-After
-- header. The app keeps running. Creating or deleting the page is all it
-- takes, no Caddy reload (the site's file matcher looks at it, as the
-- blue/green marker works), and a deploy leaves it alone, so the app stays
-- in maintenance until `raijin app live`.
--
-- Behind a load balancer, each web host answers so: the balancer sends the
-- page on as it gets it, and keeps the web hosts in (their health check is
-- not under maintenance), so that `app live` brings them back at once.
local raijin = require("raijin")
local templates = require("raijin.steps.templates")
local services = require("raijin.steps.services")
local proxy = require("raijin.steps.proxy")

local M = {}

M.default_message = "We are doing some maintenance and will be back shortly."

-- site_ready: the site must know the page. A site an older raijin made is
-- replaced (once: a validated Caddy reload); a project's own site must have
-- the route (see README: maintenance).
local function site_ready(ctx)
  local site = proxy.site(ctx)
  if site.own then
    if not site.content:find(ctx.paths.maintenance, 1, true) then
      error(ctx.config.local_config_dir .. "/" .. site.name .. " (your own Caddy site) has no maintenance route: add the one of "
        .. "`raijin app export-config --dry-run` (it names " .. ctx.paths.maintenance .. ")", 0)
    end
  end
  ctx.host:caddy_reload(ctx.paths.caddy_site, site.content)
end

-- on: write the page (0644, Caddy reads it), atomically.
function M.on(ctx)
  if not services.has_web(ctx) then
    raijin.log("no web process on this host: nothing to put in maintenance")
    return
  end
  local page = templates.render(ctx, "maintenance.html", { message = ctx.message or M.default_message })
  ctx.host:batch(function()
    site_ready(ctx)
    ctx.host:write(ctx.paths.maintenance, page, { mode = "0644", sudo = true })
  end)
  ctx.audit.maintenance = "on"
  raijin.log("in maintenance: the site answers 503 with the page " .. ctx.paths.maintenance)
end

-- off: delete the page.
function M.off(ctx)
  if not services.has_web(ctx) then
    raijin.log("no web process on this host: nothing to do")
    return
  end
  ctx.host:run('rm -f "$PAGE"', { sudo = true, env = { PAGE = ctx.paths.maintenance } })
  ctx.audit.maintenance = "off"
  raijin.log("live: the site serves the app again")
end

return M
