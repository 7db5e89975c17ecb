-- The built-in recipe for installation_mode = "binary": the deploy, step by
-- step. A project changes any step with raijin.override / before / after in
-- its deploy.lua, or with hook files in .raijin/hooks/.
local raijin = require("raijin")
local common = require("raijin.common")

-- The app directory's entry point: {app} -> v{version}/{distfile name}.
local function link(ctx)
  return { name = ctx.config.app, target = "*" }
end

-- 1. Resolve secrets: $name values of each host's env file, on this machine.
raijin.phase("secrets", { where = "local" }, common.secrets)

-- 2. Build the application with build_command, on this machine.
raijin.phase("build", { where = "local" }, common.build)

-- 3. Transfer the binary and the .env to {app_dir}/v{version}/.
raijin.phase("transfer", common.transfer)

-- 4. Install: write .appenv, then switch .env and the {app} symlink to the
--    new version, atomically. If a later step fails, the previous version is
--    switched back (and restarted if it had been stopped).
--    The switch is deferred: it rides with the next round trip (release's),
--    as its first step.
raijin.phase("install", function(ctx)
  common.write_appenv(ctx)
  ctx.host:defer(function() common.switch(ctx, ctx.version, link(ctx)) end)
end)
raijin.undo("install", function(ctx) common.restore(ctx, link(ctx)) end)

-- 5. Release: release_command, in the app directory with .appenv sourced.
raijin.phase("release", common.release)

-- 6. Services: systemd units, daemon-reload, enable, restart, check.
raijin.phase("services", common.services)

-- 7. Proxy: the Caddy site, validated and reloaded.
raijin.phase("proxy", common.proxy)

-- 8. Record the version in .versions (newest first).
raijin.phase("record", common.record)

-- 9. Prune versions beyond versions_to_keep.
raijin.phase("prune", common.prune)

-- 10. Done: print the URL, run [hooks] post_deploy.
raijin.phase("done", { where = "local" }, common.done)

raijin.phases { "secrets", "build", "transfer", "install", "release", "services", "proxy", "record", "prune", "done" }

-- Rollback (switch the {app} symlink back, restart), prune and down: the
-- same flows as every built-in recipe, in recipes/common.lua.
common.other_flows(link)

-- Server bootstrap and export-config: see recipes/server.lua.
require("raijin.server").declare()
