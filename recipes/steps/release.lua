-- raijin.steps.release: the release step.
local M = {}

-- run: release_command in the app directory, with .appenv sourced.
function M.run(ctx)
  local cmd = ctx.config.release_command
  if cmd == "" then return end
  ctx.host:run(cmd, { cwd = ctx.paths.app_dir, appenv = true })
end

return M
