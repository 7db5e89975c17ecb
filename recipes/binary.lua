-- The built-in recipe for installation_mode = "binary": the deploy, step by
-- step. A project changes any step with raijin.override / before / after in
-- its deploy.lua, or with hook files in .raijin/hooks/.
local raijin = require("raijin")
local common = require("raijin.common")

-- The app directory's entry point: {app} -> v{version}/{distfile name}.
local function links(ctx)
  return { { name = ctx.config.app, target = "*" } }
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
--    Deferred: these steps ride with the next round trip (release's).
raijin.phase("install", function(ctx)
  ctx.host:defer(function()
    common.write_appenv(ctx)
    common.switch(ctx, ctx.version, links(ctx))
  end)
end)
raijin.undo("install", function(ctx) common.restore(ctx, links(ctx)) end)

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

-- Rollback: switch back to an older version already on the host and restart.
raijin.phase("switch", function(ctx) common.switch(ctx, ctx.version, links(ctx)) end)
raijin.phase("restart", function(ctx)
  ctx.restarted = true
  ctx.host:systemctl("restart", table.unpack(common.unit_names(ctx)))
  ctx.host:wait_healthy(common.unit_names(ctx))
end)
raijin.undo("switch", function(ctx) common.restore(ctx, links(ctx)) end)
raijin.flow("rollback", { "switch", "restart", "record" })

-- Prune: `raijin prune [--keep N]` is the prune step on its own.
raijin.flow("prune", { "prune" })

-- Down: `raijin down [--full]` stops the app and removes it from the host.
raijin.phase("disable_units", common.disable_units)
raijin.phase("remove_site", common.remove_site)
raijin.phase("remove_app", common.remove_app)
raijin.phase("remove_caddy", common.remove_caddy)
raijin.flow("down", { "disable_units", "remove_site", "remove_app", "remove_caddy" })
