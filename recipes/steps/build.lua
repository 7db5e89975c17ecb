-- raijin.steps.build: the build step (local).
local raijin = require("raijin")
local hooks = require("raijin.steps.hooks")

local M = {}

-- run: [hooks] pre_build, then build_command; the distfile must exist
-- afterwards (ctx.shared.dist), and so must the requirements file when one
-- is set (ctx.shared.requirements). [hooks] pre_deploy runs once the build is
-- done, before any host is touched.
function M.run(ctx)
  local c = ctx.config
  hooks.run(ctx, "pre_build")
  if c.build_command ~= "" then
    ctx["local"]:run(c.build_command, { env = { RAIJIN_VERSION = ctx.version } })
  end
  local dist = raijin.distfile(ctx)
  -- In --dry-run the build was only recorded, so there is nothing to check.
  if not ctx.dry_run and not ctx["local"]:exists(dist) then
    error("distfile " .. dist .. " does not exist after the build: check build_command and distfile in raijin.toml", 0)
  end
  ctx.shared.dist = { path = dist, name = raijin.basename(dist) }
  if c.requirements ~= "" then
    local req = raijin.path(ctx, c.requirements)
    if not ctx["local"]:exists(req) then
      error("requirements file " .. c.requirements .. " does not exist", 0)
    end
    ctx.shared.requirements = req
  end
  hooks.run(ctx, "pre_deploy")
end

return M
