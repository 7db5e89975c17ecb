-- raijin.steps.release: the release step.
local M = {}

-- run: release_command as the app's user, in its sandbox (see
-- raijin.steps.sandbox), in the app directory with the app's env: what it
-- writes to keep goes to $STATE_DIRECTORY.
function M.run(ctx)
  local cmd = ctx.config.release_command
  if cmd == "" then return end
  ctx.host:run(cmd, { app = true })
end

return M
