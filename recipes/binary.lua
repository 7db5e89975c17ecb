-- The built-in recipe for installation_mode = "binary": the deploy, step by
-- step. Each step is a function of a module in recipes/steps/; a project
-- changes any step with raijin.override / before / after in its deploy.lua,
-- or with hook files in .raijin/hooks/.
local deploy = require("raijin.deploy")
local secrets = require("raijin.steps.secrets")
local build = require("raijin.steps.build")
local user = require("raijin.steps.user")
local transfer = require("raijin.steps.transfer")
local install = require("raijin.steps.install")
local release = require("raijin.steps.release")
local services = require("raijin.steps.services")
local proxy = require("raijin.steps.proxy")
local versions = require("raijin.steps.versions")
local done = require("raijin.steps.done")

-- The app directory's entry point: {app} -> v{version}/{distfile name}.
local function link(ctx)
  return { name = ctx.config.app, target = "*" }
end

deploy.declare {
  link = link,

  -- 1. Resolve secrets: $name values of each host's env file, on this machine.
  secrets = secrets.resolve,

  -- 2. Build the application with build_command, on this machine.
  build = build.run,

  -- 3. User: the app's own system user (app_user), created when missing;
  --    the app directory becomes readable by its group, writable by the
  --    deploy user only. Deferred: it rides with transfer's round trip.
  user = user.ensure,

  -- 4. Transfer the binary (mode 0755) and the .env to {app_dir}/v{version}/.
  transfer = transfer.run,

  -- 5. Install: write .appenv, check the schedules of scheduled processes
  --    with the server's systemd, then switch .env and the {app} symlink to
  --    the new version, atomically. If a later step fails, the previous version
  --    is switched back (and restarted if it had been stopped). The switch
  --    is deferred, as are the writes: they ride with the next round trip
  --    (release's), as its first steps.
  install = function(ctx)
    install.appenv(ctx)
    ctx.host:defer(function()
      -- The server's systemd takes each schedule (processes.NAME.schedule)
      -- before anything switches.
      services.check_schedules(ctx)
      install.switch(ctx, ctx.version, link(ctx))
    end)
  end,

  -- 6. Release: release_command, as the app's user in its sandbox, in the
  --    app directory with the app's env.
  release = release.run,

  -- 7. Services: systemd units, daemon-reload, enable, restart, check.
  services = services.run,

  -- 8. Proxy: the Caddy site, validated and reloaded.
  proxy = proxy.run,

  -- 9. Record the version in .versions (newest first).
  record = versions.record,

  -- 10. Prune versions beyond versions_to_keep.
  prune = versions.prune,

  -- 11. Done: print the URL, run [hooks] post_deploy.
  done = done.run,
}
-- deploy.declare also declares rollback (switch the {app} symlink back,
-- restart), prune and down: see recipes/deploy.lua.

-- Server bootstrap and export-config: see recipes/server.lua.
require("raijin.server").declare()
