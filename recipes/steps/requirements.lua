-- raijin.steps.requirements: the requirements file of a Python app
-- (requirements = in raijin.toml), read on this machine and shipped with the
-- version, with the local wheels it names.
local raijin = require("raijin")

local M = {}

-- A requirement line that names a local file: the path, else nil.
-- Recognised: ./x.whl, ../x.whl, /abs/x.whl, x.whl (also .tar.gz, .zip),
-- file:PATH, and "name @ file:PATH". Other lines are left to the index.
local function local_path(spec)
  local url = spec:match("^[%w%._%-%[%],]+%s*@%s*(%S+)$") or spec
  local p = url:match("^file://(/.*)$") or url:match("^file:(.*)$")
  if p then return p end
  if url:find("://", 1, true) or url:sub(1, 1) == "-" then return nil end
  if url:match("^%.%.?/") or url:sub(1, 1) == "/" or url:match("%.whl$") or url:match("%.tar%.gz$") or url:match("%.zip$") then
    return url
  end
  return nil
end

-- read (local, after the build): reads requirements.txt into ctx.shared.req
-- = {text, files, offline}. Lines that name local files are rewritten to
-- ./wheels/{name}, and the files are shipped in v{version}/wheels/. When
-- every requirement is such a file the server installs with --no-index: no
-- network needed. Nothing to do without a requirements file.
function M.read(ctx)
  if not ctx.shared.requirements then return end
  local c = ctx.config
  local text = ctx["local"]:read(ctx.shared.requirements)
  local req = { lines = {}, files = {}, offline = true }
  local seen = {}
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local spec = line:gsub("%s+#.*$", ""):match("^%s*(.-)%s*$")
    local target, marker = spec:match("^(.-)%s*(;.*)$")
    target, marker = target or spec, marker or ""
    local p = spec ~= "" and local_path(target) or nil
    local opt = spec:match("^(%-%-?[%a-]+)")
    if spec == "" or spec:sub(1, 1) == "#" then
      req.lines[#req.lines + 1] = line
    elseif opt == "-r" or opt == "--requirement" or opt == "-c" or opt == "--constraint" or opt == "-e" or opt == "--editable"
      or ((opt == "-f" or opt == "--find-links") and not spec:find("://", 1, true)) then
      error(c.requirements .. ":" .. n .. ": " .. spec .. ": raijin ships one requirements file and the files it names; " ..
        "write the requirements in it, each local wheel by its path (pip wheel -w wheels ...)", 0)
    elseif p then
      local file = raijin.path(ctx, p)
      if not ctx["local"]:exists(file) then
        error(c.requirements .. ":" .. n .. ": local requirement " .. p .. " does not exist (paths are relative to the project directory)", 0)
      end
      if not (p:match("%.whl$") or p:match("%.tar%.gz$") or p:match("%.zip$")) then
        error(c.requirements .. ":" .. n .. ": " .. p .. " is not a wheel or sdist file: build it with `pip wheel` and name the .whl", 0)
      end
      local name = raijin.basename(p)
      if not seen[name] then
        seen[name] = true
        req.files[#req.files + 1] = { path = file, name = name }
      end
      req.lines[#req.lines + 1] = "./wheels/" .. name .. (marker ~= "" and " " .. marker or "")
    else
      req.offline = false
      req.lines[#req.lines + 1] = line
    end
  end
  while #req.lines > 0 and req.lines[#req.lines] == "" do req.lines[#req.lines] = nil end
  req.text = table.concat(req.lines, "\n") .. "\n"
  req.lines = nil
  ctx.shared.req = req
end

-- send: requirements.txt and the local wheels it names, into
-- v{version}/ and v{version}/wheels/. Nothing to do without a requirements
-- file.
function M.send(ctx)
  local req = ctx.shared.req
  if not req then return end
  local vdir = ctx.paths.version_dir
  ctx.host:write(vdir .. "/requirements.txt", req.text, { mode = "0644" })
  for _, f in ipairs(req.files) do
    ctx.host:upload(f.path, vdir .. "/wheels/" .. f.name, { mode = "0644" })
  end
end

return M
