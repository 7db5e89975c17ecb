-- raijin.server: the flows around a deploy that the binary and the Python
-- recipes share. Requiring it declares nothing; M.declare does.
local raijin = require("raijin")
local bootstrap = require("raijin.steps.bootstrap")
local export = require("raijin.steps.export")

local M = {}

-- declare declares, in the recipe that calls it:
--
--   bootstrap      (`raijin server bootstrap`, `raijin up`): prepare a fresh
--                  Debian/Ubuntu server: packages, caddy, apps_dir, and
--                  the app's own user (the deploy's user phase).
--   export-config  (`raijin app export-config`): write the generated units and
--                  Caddy site into local_config_dir for the user to own.
--
-- A project changes any of these steps with raijin.override / before /
-- after, like the deploy phases.
function M.declare()
  raijin.phase("packages", bootstrap.packages)
  raijin.phase("caddy", bootstrap.caddy)
  raijin.phase("apps_dir", bootstrap.apps_dir)
  raijin.flow("bootstrap", { "packages", "caddy", "apps_dir", "user" })
  raijin.phase("export", export.run)
  raijin.flow("export-config", { "export" })
end

return M
