-- raijin.steps.templates: raijin's templates (recipes/templates/) rendered
-- with the variables every one of them gets.
local raijin = require("raijin")

local M = {}

-- vars: app, app_dir, user (the deploy user), app_user (the app's own)
-- and local_config_dir, plus the table extra.
function M.vars(ctx, extra)
  local c = ctx.config
  local v = {
    app = c.app,
    app_dir = ctx.paths.app_dir,
    user = ctx.host and ctx.host.user or "",
    app_user = c.app_user,
    local_config_dir = c.local_config_dir,
  }
  for k, x in pairs(extra or {}) do v[k] = x end
  return v
end

-- render: the template `name` with M.vars(ctx, extra).
function M.render(ctx, name, extra)
  return raijin.template(name, M.vars(ctx, extra))
end

return M
