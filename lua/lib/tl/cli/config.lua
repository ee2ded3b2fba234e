-- tl.cli.config: the daemon's YAML configuration, read for the sandbox.
--
-- The daemon reads the file in C (host/config.c, libyaml).  The sandbox
-- runs in Lua and reads the same format with the event parser of Debian's
-- lua-yaml package (the C module `yaml` under lyaml), building a tree
-- that remembers line and column, so mistakes are reported the daemon's
-- way: "ram.yaml:7:11: devices[0].size: expected a size like 64M".
-- Scalars are resolved as the daemon does (YAML 1.2 core: only true/false
-- are booleans).  Keys the sandbox has no use for (exports, workers...)
-- are checked to exist, not interpreted: there is no kernel to export to.
local fmt = string.format

local M = {}

-- Sizes as the daemon reads them: bytes, or K/M/G/T/P (powers of 1024),
-- optionally followed by B or iB.
function M.parse_size(s)
  s = tostring(s)
  local num, unit, rest = s:match('^(%d+)([KkMmGgTtPp]?)(.*)$')
  if not num then return nil end
  if unit == '' and rest ~= '' then return nil end
  if rest ~= '' and rest ~= 'B' and rest ~= 'iB' then return nil end
  local mul = 1
  if unit ~= '' then
    mul = 2 ^ (10 * (('KMGTP'):find(unit:upper(), 1, true)))
  end
  local v = tonumber(num) * mul
  if v >= 2 ^ 53 then return nil end
  return v
end

------------------------------------------------------------------------
-- YAML text -> nodes {kind = 'map'|'seq'|'scalar', line, col, ...}.

local function load_tree(text, name)
  local ok, yaml = pcall(require, 'yaml')
  if not ok then
    return nil, name .. ': reading YAML needs the lua-yaml package ' ..
      '(Debian: apt-get install lua-yaml); or give a handler name instead: ' ..
      'tcmu-lua sandbox ram 64M'
  end
  local next_event = yaml.parser(text)
  local ev
  local function advance()
    local good, e = pcall(next_event)
    if not good then
      -- "did not find expected key at document: 1, line: 4, column: 3 ..."
      local msg = tostring(e)
      local line, col = msg:match('line: (%d+), column: (%d+)')
      msg = msg:gsub(' at document: .*', ''):gsub('\n.*', '')
      if line then
        error(fmt('%s:%s:%s: YAML syntax error: %s', name, line, col, msg), 0)
      end
      error(fmt('%s: YAML syntax error: %s', name, msg), 0)
    end
    ev = e
    return tostring(ev.type)
  end
  local anchors = {}
  local node
  local function pos(n)
    n.line, n.col = ev.start_mark.line + 1, ev.start_mark.column + 1
    if ev.anchor then anchors[ev.anchor] = n end
    return n
  end
  -- Reads the node whose first event is current.
  function node(t)
    if t == 'SCALAR' then
      return pos { kind = 'scalar', value = ev.value, plain = tostring(ev.style) == 'PLAIN' }
    elseif t == 'ALIAS' then
      local n = anchors[ev.anchor]
      if not n then
        error(fmt('%s:%d:%d: unknown alias *%s', name, ev.start_mark.line + 1,
          ev.start_mark.column + 1, tostring(ev.anchor)), 0)
      end
      return n
    elseif t == 'SEQUENCE_START' then
      local n = pos { kind = 'seq', items = {} }
      while true do
        local tt = advance()
        if tt == 'SEQUENCE_END' then return n end
        n.items[#n.items + 1] = node(tt)
      end
    elseif t == 'MAPPING_START' then
      local n = pos { kind = 'map', pairs = {} }
      while true do
        local tt = advance()
        if tt == 'MAPPING_END' then return n end
        local k = node(tt)
        local v = node(advance())
        n.pairs[#n.pairs + 1] = { key = k, value = v }
      end
    end
    error(fmt('%s: unexpected YAML event %s', name, t), 0)
  end

  local good, root = pcall(function()
    assert(advance() == 'STREAM_START')
    local t = advance()
    if t == 'STREAM_END' then return nil end	-- an empty file
    assert(t == 'DOCUMENT_START')
    local r = node(advance())
    assert(advance() == 'DOCUMENT_END')
    if advance() ~= 'STREAM_END' then
      error(fmt('%s:%d:%d: only one YAML document is allowed', name,
        ev.start_mark.line + 1, ev.start_mark.column + 1), 0)
    end
    return r
  end)
  if not good then return nil, root end
  return root or false
end

------------------------------------------------------------------------
-- Checking, with errors that name file:line:column and the key.

local Err = {}
local function fail(ctx, n, path, msg, ...)
  local where = n and fmt('%s:%d:%d', ctx.name, n.line, n.col) or ctx.name
  error(setmetatable({ msg = fmt('%s: %s%s' .. msg, where, path,
    path ~= '' and ': ' or '', ...) }, Err), 0)
end

local function is_null(n)
  return n.kind == 'scalar' and n.plain and
    (n.value == '' or n.value == '~' or n.value == 'null' or n.value == 'Null' or n.value == 'NULL')
end

local function kind(n)
  if n.kind == 'map' then return 'a mapping' end
  if n.kind == 'seq' then return 'a list' end
  return is_null(n) and 'null' or 'a scalar'
end

local function expect_map(ctx, n, path, keys)
  if n.kind ~= 'map' then fail(ctx, n, path, 'expected a mapping, got %s', kind(n)) end
  local seen = {}
  for _, p in ipairs(n.pairs) do
    local k = p.key
    if k.kind ~= 'scalar' then fail(ctx, k, path, 'keys must be strings') end
    if keys and not keys[k.value] then
      local known = {}
      for name in pairs(keys) do known[#known + 1] = name end
      table.sort(known)
      fail(ctx, k, path, "unknown key '%s' (known: %s)", k.value, table.concat(known, ', '))
    end
    if seen[k.value] then fail(ctx, k, path, "duplicate key '%s'", k.value) end
    seen[k.value] = true
  end
  return n.pairs
end

local function str(ctx, n, path)
  if n.kind ~= 'scalar' or is_null(n) then fail(ctx, n, path, 'expected a string, got %s', kind(n)) end
  if n.value == '' then fail(ctx, n, path, 'must not be empty') end
  return n.value
end

local function bool(ctx, n, path)
  if n.kind == 'scalar' and n.plain then
    if n.value == 'true' or n.value == 'True' or n.value == 'TRUE' then return true end
    if n.value == 'false' or n.value == 'False' or n.value == 'FALSE' then return false end
  end
  fail(ctx, n, path, 'expected true or false')
end

local function uint(ctx, n, path, min, max)
  local v = n.kind == 'scalar' and n.plain and n.value:match('^%d+$') and tonumber(n.value)
  if not v then fail(ctx, n, path, 'expected a whole number') end
  if v < min or v > max then fail(ctx, n, path, '%d is out of range (%d..%d)', v, min, max) end
  return v
end

-- A plain scalar as a Lua value, YAML 1.2 core schema.
local SPECIAL = { ['.inf'] = math.huge, ['+.inf'] = math.huge, ['-.inf'] = -math.huge,
  ['.nan'] = 0 / 0 }
local function scalar_value(n)
  if not n.plain then return n.value end
  local s = n.value
  if is_null(n) then return nil end
  if s == 'true' or s == 'True' or s == 'TRUE' then return true end
  if s == 'false' or s == 'False' or s == 'FALSE' then return false end
  if SPECIAL[s:lower()] then return SPECIAL[s:lower()] end
  if s:match('^0x%x+$') then return tonumber(s:sub(3), 16) end
  if s:match('^[-+]?%d*%.?%d*$') or s:match('^[-+]?%d*%.?%d*[eE][-+]?%d+$') then
    local v = tonumber(s)
    if v then return v end
  end
  return s
end

-- The free-form options of a device -> a Lua table for the handler.
local function value(ctx, n, path, depth)
  if depth > 16 then fail(ctx, n, path, 'nested more than 16 levels deep') end
  if n.kind == 'scalar' then return scalar_value(n) end
  local t = {}
  if n.kind == 'seq' then
    for i, item in ipairs(n.items) do t[i] = value(ctx, item, fmt('%s[%d]', path, i - 1), depth + 1) end
    return t
  end
  for _, p in ipairs(expect_map(ctx, n, path)) do
    t[p.key.value] = value(ctx, p.value, path .. '.' .. p.key.value, depth + 1)
  end
  return t
end

local DAEMON_KEYS = { handler_dirs = true, workers = true, log_level = true,
  control_socket = true, pid_file = true, hba = true }
local DEVICE_KEYS = { name = true, handler = true, size = true, block_size = true,
  hw_max_sectors = true, max_data_area_mb = true, read_only = true,
  write_cache = true, options = true, exports = true }
local BLOCK_SIZES = { [512] = true, [1024] = true, [2048] = true, [4096] = true }

local function device(ctx, n, path)
  local d = { line = n.line, block_size = 512, options = {} }
  local size_node
  for _, p in ipairs(expect_map(ctx, n, path, DEVICE_KEYS)) do
    local k, v = p.key.value, p.value
    local sub = path .. '.' .. k
    if k == 'name' then
      d.name = str(ctx, v, sub)
      if not d.name:match('^[%w_%-%.:]+$') then
        fail(ctx, v, sub, 'letters, digits, _ - . and : only')
      end
    elseif k == 'handler' then
      d.handler = str(ctx, v, sub)
      if not d.handler:match('^[%w_%-]+$') then
        fail(ctx, v, sub, 'a handler name is letters, digits, _ and - only')
      end
    elseif k == 'size' then
      d.size = v.kind == 'scalar' and v.plain and M.parse_size(v.value)
      if not d.size or d.size == 0 then fail(ctx, v, sub, 'expected a size like 64M') end
      size_node = v
    elseif k == 'block_size' then
      d.block_size = uint(ctx, v, sub, 512, 4096)
      if not BLOCK_SIZES[d.block_size] then fail(ctx, v, sub, 'expected 512, 1024, 2048 or 4096') end
    elseif k == 'hw_max_sectors' then
      d.hw_max_sectors = uint(ctx, v, sub, 1, 65535)
    elseif k == 'max_data_area_mb' then
      d.max_data_area_mb = uint(ctx, v, sub, 1, 65536)
    elseif k == 'read_only' then
      d.read_only = bool(ctx, v, sub)
    elseif k == 'write_cache' then
      d.write_cache = bool(ctx, v, sub)
    elseif k == 'options' then
      if not is_null(v) then
        if v.kind ~= 'map' then fail(ctx, v, sub, 'expected a mapping, got %s', kind(v)) end
        d.options = value(ctx, v, sub, 0)
      end
    elseif k == 'exports' then
      d.exports = not is_null(v)
    end
  end
  local missing = not d.name and 'name' or not d.handler and 'handler' or not d.size and 'size'
  if missing then fail(ctx, n, path, "missing required key '%s'", missing) end
  if d.size % d.block_size ~= 0 then
    fail(ctx, size_node, path .. '.size', '%.0f is not a multiple of the block size %d',
      d.size, d.block_size)
  end
  return d
end

local function check(ctx, root)
  local cfg = { handler_dirs = {}, devices = {} }
  if not root or is_null(root) then return cfg end
  for _, p in ipairs(expect_map(ctx, root, '', { daemon = true, devices = true })) do
    local k, v = p.key.value, p.value
    if k == 'daemon' and not is_null(v) then
      for _, dp in ipairs(expect_map(ctx, v, 'daemon', DAEMON_KEYS)) do
        local dv = dp.value
        if dp.key.value == 'handler_dirs' then
          local list = dv.kind == 'seq' and dv.items or { dv }
          for i, item in ipairs(list) do
            local dir = str(ctx, item, dv.kind == 'seq' and fmt('daemon.handler_dirs[%d]', i - 1)
              or 'daemon.handler_dirs')
            if dir:find(';', 1, true) then
              fail(ctx, item, 'daemon.handler_dirs', "a directory name must not contain ';'")
            end
            cfg.handler_dirs[#cfg.handler_dirs + 1] = dir
          end
        end
      end
    elseif k == 'devices' and not is_null(v) then
      if v.kind ~= 'seq' then fail(ctx, v, 'devices', 'expected a list, got %s', kind(v)) end
      local names = {}
      for i, item in ipairs(v.items) do
        local path = fmt('devices[%d]', i - 1)
        local d = device(ctx, item, path)
        if names[d.name] then
          fail(ctx, item, path .. '.name', "duplicate device name '%s'", d.name)
        end
        names[d.name] = true
        cfg.devices[#cfg.devices + 1] = d
      end
    end
  end
  return cfg
end

-- Parse configuration text; name is used in messages.
function M.parse(text, name)
  local root, err = load_tree(text, name)
  if root == nil then return nil, err end
  local ok, cfg = pcall(check, { name = name }, root)
  if not ok then
    if getmetatable(cfg) == Err then return nil, cfg.msg end
    error(cfg, 0)
  end
  return cfg
end

function M.load(path)
  local f, err = io.open(path, 'r')
  if not f then return nil, err end
  local text = f:read('*a')
  f:close()
  return M.parse(text, path)
end

return M
