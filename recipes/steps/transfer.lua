-- raijin.steps.transfer: the transfer step.
local M = {}

-- run: the distfile and the .env (mode 0640) into v{version}/. Uploads go
-- to a temporary name and are renamed; a file the server already has with
-- the same SHA-256 is not sent again. opts.mode is the distfile's mode
-- (default 0755, an executable). The check and the .env go in one round trip
-- (a batch), the distfile's bytes right after it when they are needed: only
-- what changed against the live version's distfile of the same name, when
-- this machine still has a copy of that one. Returns whether the distfile
-- was sent.
function M.run(ctx, opts)
  local p = ctx.paths
  local mode = (opts and opts.mode) or "0755"
  local dist = p.version_dir .. "/" .. ctx.shared.dist.name
  ctx.host:batch(function()
    local basis = ctx.previous and (p.app_dir .. "/v" .. ctx.previous .. "/" .. ctx.shared.dist.name)
    -- series: the next version's upload rebuilds from this one, the first
    -- version's too (it gets a sum note).
    ctx.host:upload(ctx.shared.dist.path, dist, { mode = mode, basis = basis, series = true })
    -- 0640: the app's group reads it (the app directory's group), nobody
    -- else; the app cannot change it.
    ctx.host:write(p.version_dir .. "/.env", ctx.shared.env[ctx.host.name], { mode = "0640" })
  end)
  return ctx.host:sent(dist)
end

return M
