-- raijin.steps.hooks: the [hooks] commands of raijin.toml (pre_build,
-- pre_deploy, post_deploy). They run on this machine, in the project
-- directory, and know what is being deployed, as the executable hook files
-- do: RAIJIN_APP, RAIJIN_VERSION and RAIJIN_COMMAND are set.
local M = {}

-- run: [hooks] `name`, when it is set.
function M.run(ctx, name)
  local cmd = ctx.config.hooks[name]
  if cmd == "" then return end
  ctx["local"]:run(cmd, { env = { RAIJIN_APP = ctx.app, RAIJIN_VERSION = ctx.version, RAIJIN_COMMAND = ctx.command } })
end

return M
