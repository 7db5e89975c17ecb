-- raijin.steps.secrets: the secrets step (local).
local raijin = require("raijin")

local M = {}

-- resolve: read each host's env file and resolve its $secret values with
-- the [secrets] adapter, before any connection is opened. The envs go to
-- ctx.shared.env, by host name.
function M.resolve(ctx)
  ctx.shared.env = {}
  for _, h in ctx.config.hosts() do
    ctx.shared.env[h.name] = raijin.env.load(h)
  end
end

return M
