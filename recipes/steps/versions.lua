-- raijin.steps.versions: the record and prune steps, on .versions and the
-- version directories.
local raijin = require("raijin")

local M = {}

-- record: the new version goes first in .versions. From here on the new
-- version is the current one: a later failure does not switch back (undo
-- asks the server, see raijin.steps.install). Deferred: it rides with the
-- last round trip.
function M.record(ctx)
  ctx.host:defer(function() raijin.versions.record(ctx, ctx.version) end)
end

-- prune: version directories beyond versions_to_keep (or `raijin prune
-- --keep N`) are deleted, never the current one. Deferred like record: what
-- to delete is known from the .versions and directories read at the start.
function M.prune(ctx)
  ctx.host:defer(function()
    local removed = raijin.versions.prune(ctx, ctx.keep or ctx.config.versions_to_keep)
    if #removed > 0 then ctx.audit.pruned = removed end
  end)
end

return M
