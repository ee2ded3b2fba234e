-- tl.cli.config: the daemon's YAML configuration, for the sandbox.
--
-- The parsing is the daemon's own (host/config.c through the FFI), so a
-- file means the same thing, and a mistake gets the same message
-- ("ram.yaml:7:11: devices[0].size: expected a size like 64M"), in both.
local ffi = require 'ffi'
local C = require('tl.abi').C

local M = {}

-- Sizes as the daemon reads them: bytes, or K/M/G/T/P (powers of 1024),
-- optionally followed by B or iB.  nil when it is not a size.
function M.parse_size(s)
  local out = ffi.new('uint64_t[1]')
  if C.tl_ffi_parse_size(tostring(s), out) ~= 0 then return nil end
  return tonumber(out[0])
end

local function options_table(src)
  local chunk = load('return ' .. src, '=options', 't', {})
  local ok, t = pcall(chunk)
  return ok and t or {}
end

-- The C configuration as plain Lua tables.
local function convert(cfg)
  local out = { devices = {}, handler_dirs = {} }
  for i = 0, C.tl_ffi_config_ndirs(cfg) - 1 do
    out.handler_dirs[#out.handler_dirs + 1] = ffi.string(C.tl_ffi_config_dir(cfg, i))
  end
  local v = ffi.new('struct tl_cfg_device_view')
  for i = 0, C.tl_ffi_config_ndevices(cfg) - 1 do
    C.tl_ffi_config_device(cfg, i, v)
    out.devices[#out.devices + 1] = {
      name = ffi.string(v.name), handler = ffi.string(v.handler),
      options = options_table(ffi.string(v.options)),
      size = tonumber(v.size), block_size = v.block_size,
      hw_max_sectors = v.hw_max_sectors, read_only = v.read_only ~= 0,
      write_cache = v.write_cache ~= 0, line = v.line,
    }
  end
  C.tl_ffi_config_free(cfg)
  return out
end

-- Parse configuration text; name is used in messages.
function M.parse(text, name)
  local err = ffi.new('char[1024]')
  local cfg = C.tl_ffi_config_parse(name, text, #text, err, 1024)
  if cfg == nil then return nil, ffi.string(err) end
  return convert(cfg)
end

function M.load(path)
  local err = ffi.new('char[1024]')
  local cfg = C.tl_ffi_config_load(path, err, 1024)
  if cfg == nil then return nil, ffi.string(err) end
  return convert(cfg)
end

return M
