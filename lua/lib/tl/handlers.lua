-- tl.handlers: finding, loading and checking handler modules.
--
-- A handler is named by a word ([A-Za-z0-9_-]) and found as <dir>/<name>.lua
-- in one of the configured handler directories, and nowhere else: a name
-- can never be a path.  Loading runs the file in a protected call; syntax
-- and load-time errors come back as messages with file:line.
local schema = require 'tl.schema'
local device_options = require 'scsi.options'

local M = {}

local dirs = {}
for dir in (TL_HANDLER_DIRS or ''):gmatch('[^;]+') do
  dirs[#dirs + 1] = dir
end
M.dirs = dirs

local cache = {}
local deps = {}     -- handler name -> { module names it required }

-- Modules that must never be loaded twice in a lua_State (FFI cdefs, the
-- runtime and the library state they hold).
local keep = { ffi = true, bit = true, jit = true, ['tl.abi'] = true,
  ['tl.cdef'] = true, ['tl.runtime'] = true, ['tl.handlers'] = true,
  ['tl.schema'] = true, ['tl.log'] = true }

-- The same rule as tl_valid_handler_name() in C: 1..63 ASCII letters,
-- digits, _ and - (no '/', '.', NUL), so <dir>/<name>.lua stays in dir.
function M.valid_name(name)
  return type(name) == 'string' and #name > 0 and #name < 64
    and name:match('^[A-Za-z0-9_%-]+$') ~= nil
end

local callbacks = { 'open', 'close', 'reconfig', 'migrate', 'handle', 'read',
  'write', 'flush', 'unmap', 'write_same', 'compare_and_write', 'abort' }

-- What a handler table must look like; errors name the file.
local function check(h, path)
  if type(h) ~= 'table' then
    return nil, path .. ': a handler must return a table'
  end
  for _, cb in ipairs(callbacks) do
    if h[cb] ~= nil and type(h[cb]) ~= 'function' then
      return nil, ('%s: %s must be a function'):format(path, cb)
    end
  end
  if h.schema ~= nil and type(h.schema) ~= 'table' then
    return nil, path .. ': schema must be a table'
  end
  if not (h.handle or h.read) then
    return nil, path .. ': a handler needs handle() or read()'
  end
  return true
end

function M.find(name)
  if not M.valid_name(name) then return nil end
  for _, dir in ipairs(dirs) do
    local path = dir .. '/' .. name .. '.lua'
    local f = io.open(path, 'r')
    if f then
      f:close()
      return path
    end
  end
end

-- Load a handler.  fresh = true reads it from disk again (reload).
function M.load(name, fresh)
  if not M.valid_name(name) then
    return nil, ('invalid handler name %q (letters, digits, _ and - only)')
      :format(tostring(name))
  end
  if cache[name] and not fresh then return cache[name] end
  local path = M.find(name)
  if not path then
    return nil, ('no handler %q in %s'):format(name, table.concat(dirs, ';'))
  end
  local chunk, err = loadfile(path)
  if not chunk then return nil, err end
  -- A fresh load also re-reads the modules the handler required last time,
  -- so an edit to a helper module takes effect; the old ones come back if
  -- the new code fails.
  local saved = {}
  if fresh then
    for _, mod in ipairs(deps[name] or {}) do
      saved[mod] = package.loaded[mod] or false
      package.loaded[mod] = nil
    end
  end
  local before = {}
  for mod in pairs(package.loaded) do before[mod] = true end
  local ok, h = xpcall(chunk, debug.traceback, name)
  if not ok then
    for mod, v in pairs(saved) do package.loaded[mod] = v or nil end
    return nil, h
  end
  -- What it required: new modules, and the reloaded ones.  Sorted, so the
  -- signature below does not depend on table order.
  local mine = {}
  for mod in pairs(package.loaded) do
    if not keep[mod] and not before[mod] then
      mine[#mine + 1] = mod
    end
  end
  table.sort(mine)
  deps[name] = mine
  if type(h) == 'table' then h.signature = M.signature(path, mine) end
  local good, why = check(h, path)
  if not good then return nil, why end
  h.name = h.name or name
  h.path = path
  -- A fresh (reload) copy is only used once the whole reload succeeded:
  -- the runtime calls M.commit() then.
  if not fresh then cache[name] = h end
  return h
end

local function slurp(path)
  local f = io.open(path, 'rb')
  if not f then return '' end
  local s = f:read('*a')
  f:close()
  return s
end

-- The text of a handler and of the modules it required: a reload leaves a
-- device alone when this did not change.
function M.signature(path, mods)
  local parts = { slurp(path) }
  for _, mod in ipairs(mods) do
    local f = package.searchpath(mod, package.path)
    parts[#parts + 1] = mod .. '\0' .. (f and slurp(f) or '')
  end
  return table.concat(parts, '\0\0')
end

function M.commit(name, h)
  cache[name] = h
end

-- The files a loaded handler came from: its own and those of the modules
-- it required (as found on package.path).
function M.files(name, h)
  h = h or cache[name]
  if not h then return {} end
  local out = { h.path }
  for _, mod in ipairs(deps[name] or {}) do
    local f = package.searchpath(mod, package.path)
    if f then out[#out + 1] = f end
  end
  return out
end

-- Options for a device: from a Lua table constructor (YAML, specs), or
-- else from the configfs string.  Returns the validated table.
function M.config(h, conf_src, cfgstring, where)
  local conf
  if conf_src and conf_src ~= '' then
    local chunk, err = load('return ' .. conf_src, '=config', 't', {})
    if not chunk then return nil, 'bad options: ' .. err end
    local ok, t = pcall(chunk)
    if not ok or type(t) ~= 'table' then
      return nil, 'bad options: ' .. tostring(t)
    end
    conf = t
  else
    local err
    conf, err = schema.parse_cfgstring(cfgstring, h.cfgstring_key)
    if not conf then return nil, err end
  end
  return schema.validate(M.full_schema(h), conf, where or h.name)
end

-- A handler's options plus the device options every disk takes from the
-- SCSI library (vendor, serial, read_only, ...).  Cached per handler table.
function M.full_schema(h)
  if h._full_schema then return h._full_schema end
  local full = {}
  for k, v in pairs(device_options) do full[k] = v end
  for k, v in pairs(h.schema or {}) do full[k] = v end
  h._full_schema = full
  return full
end

return M
