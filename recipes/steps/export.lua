-- raijin.steps.export: the step of `raijin app export-config`.
local raijin = require("raijin")
local services = require("raijin.steps.services")
local proxy = require("raijin.steps.proxy")

local M = {}

-- run: the units and the Caddy site this host would get, written to
-- local_config_dir. A file already there is the user's and is kept.
function M.run(ctx)
  local dir = ctx.config.local_config_dir
  local files = services.units(ctx)
  files[#files + 1] = proxy.site(ctx)
  for _, f in ipairs(files) do
    local rel = dir .. "/" .. f.name
    if f.own then
      raijin.log("kept " .. rel .. " (already yours)")
    else
      ctx["local"]:write(rel, f.content)
      if not ctx.dry_run then raijin.log("wrote " .. rel) end
    end
  end
end

return M
