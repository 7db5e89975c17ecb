-- raijin.steps.sandbox: what confines the app's processes. The same
-- settings go into every unit of the app and, through .apprun, around
-- release_command and `raijin app exec|shell`, so that the app's code runs
-- the same way wherever it runs.
local raijin = require("raijin")
local templates = require("raijin.steps.templates")

local M = {}

-- ProtectHome= hides these; an app directory under one of them is bound
-- back into the sandbox, read-only.
local HOMES = { "/home/", "/root/", "/run/user/" }

local function under_home(dir)
  for _, h in ipairs(HOMES) do
    if dir:sub(1, #h) == h then return true end
  end
  return false
end

-- add appends the settings of a [Service] fragment (text) to lines: one
-- Name=value per line; blank lines, comments and the section header are
-- skipped. file names the project's own fragment, whose lines are checked.
local function add(lines, text, file)
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local l = line:match("^%s*(.-)%s*$")
    if l ~= "" and not l:match("^[#;]") and l ~= "[Service]" then
      if file and not l:match("^[A-Z][A-Za-z]*=") then
        error(file .. ":" .. n .. ": " .. string.format("%q", l) ..
          " is not a setting: write Name=value lines of a unit's [Service] section, such as ReadWritePaths=/srv/uploads", 0)
      end
      lines[#lines + 1] = l
    end
  end
end

-- lines: the settings of templates/sandbox.conf, then those of the
-- project's local_config_dir/sandbox.conf, which come later and so win
-- (a list setting such as ReadWritePaths= adds to the list).
function M.lines(ctx)
  local lines = {}
  add(lines, templates.render(ctx, "sandbox.conf", {
    home_layout = under_home(ctx.paths.app_dir),
    state_dir_name = ctx.paths.state_dir:gsub("^/var/lib/", ""),
  }))
  local own = raijin.path(ctx, ctx.config.local_config_dir .. "/sandbox.conf")
  if ctx["local"]:exists(own) then add(lines, ctx["local"]:read(own), own) end
  return lines
end

return M
