-- The built-in recipe for installation_mode = "python-package": the deploy of
-- a wheel, step by step. Each step is a function of a module in
-- recipes/steps/ (the Python environments: raijin.steps.venv); a project
-- changes any step with raijin.override / before / after in its deploy.lua,
-- or with hook files in .raijin/hooks/.
local deploy = require("raijin.deploy")
local secrets = require("raijin.steps.secrets")
local build = require("raijin.steps.build")
local requirements = require("raijin.steps.requirements")
local user = require("raijin.steps.user")
local transfer = require("raijin.steps.transfer")
local venv = require("raijin.steps.venv")
local install = require("raijin.steps.install")
local release = require("raijin.steps.release")
local services = require("raijin.steps.services")
local proxy = require("raijin.steps.proxy")
local versions = require("raijin.steps.versions")
local done = require("raijin.steps.done")

-- The app directory's entry point: .venv -> v{version}/.venv.
local function link(ctx)
  return { name = ".venv", target = ".venv" }
end

deploy.declare {
  link = link,

  -- 1. Resolve secrets: $name values of each host's env file, on this machine.
  secrets = secrets.resolve,

  -- 2. Build the wheel with build_command, on this machine; read the
  --    requirements file and find the local wheels it names.
  build = function(ctx)
    build.run(ctx)
    requirements.read(ctx)
  end,

  -- 3. User: the app's own system user (app_user), created when missing;
  --    the app directory becomes readable by its group, writable by the
  --    deploy user only. Deferred: it rides with transfer's round trip.
  user = user.ensure,

  -- 4. Transfer the wheel and the .env to {app_dir}/v{version}/, with
  --    requirements.txt and the local wheels it names (in wheels/).
  transfer = function(ctx)
    ctx.dist_sent = transfer.run(ctx, { mode = "0644" })
    requirements.send(ctx)
  end,

  -- 5. Install: the requirements (only when they changed), the version's own
  --    .venv with the wheel, .appenv; then switch .env and the .venv symlink
  --    to the new version, atomically. Everything before the switch leaves
  --    the previous version serving; if a later step fails, it is switched
  --    back.
  install = function(ctx)
    -- The server's systemd takes each schedule (processes.NAME.schedule)
    -- before anything is installed.
    services.check_schedules(ctx)
    local py = venv.interpreter(ctx)
    local deps = venv.dependencies(ctx, py)
    venv.version_venv(ctx, py, deps)
    install.appenv(ctx)
    install.switch(ctx, ctx.version, link(ctx))
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

  -- 10. Prune versions beyond versions_to_keep, then the .deps environments
  --    that no version left uses.
  prune = function(ctx)
    versions.prune(ctx)
    venv.prune(ctx)
  end,

  -- 11. Done: print the URL, run [hooks] post_deploy.
  done = done.run,
}
-- deploy.declare also declares rollback (switch .env and .venv back to an
-- older version: its environment is still there, nothing is installed;
-- restart), prune and down: see recipes/deploy.lua.

-- Server bootstrap and export-config: see recipes/server.lua.
require("raijin.server").declare()
