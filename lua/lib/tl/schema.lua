-- tl.schema: checking a handler's options against the schema it declares.
--
-- A schema maps each option name to a description:
--   { type = 'string'|'integer'|'number'|'boolean'|'size'|'enum'|'list'|'table',
--     required = true, default = <value>, values = {...} (enum), doc = '...' }
-- Values coming from a configfs string are text; they are converted here.
-- Unknown options are an error that names the option.
local M = {}

local units = { K = 2^10, M = 2^20, G = 2^30, T = 2^40, P = 2^50 }

-- "64M", "1.5G", "4096", 4096 -> bytes (an integer), or nil.
function M.parse_size(v)
  if type(v) == 'number' then
    return (v >= 0 and v == math.floor(v)) and v or nil
  end
  if type(v) ~= 'string' then return nil end
  local num, unit = v:match('^%s*([%d%.]+)%s*([KMGTPkmgtp]?)[iI]?[bB]?%s*$')
  num = tonumber(num)
  if not num then return nil end
  local bytes = num * (unit ~= '' and units[unit:upper()] or 1)
  if bytes ~= math.floor(bytes) then return nil end
  return bytes
end

local function convert(kind, v, spec)
  if kind == 'string' then
    if type(v) == 'string' then return v end
    if type(v) == 'number' then return tostring(v) end
  elseif kind == 'integer' or kind == 'number' then
    local n = tonumber(v)
    if n and (kind == 'number' or n == math.floor(n)) then return n end
  elseif kind == 'boolean' then
    if type(v) == 'boolean' then return v end
    if v == 'true' or v == '1' or v == 'yes' or v == 'on' then return true end
    if v == 'false' or v == '0' or v == 'no' or v == 'off' then return false end
  elseif kind == 'size' then
    return M.parse_size(v)
  elseif kind == 'enum' then
    for _, allowed in ipairs(spec.values or {}) do
      if v == allowed then return v end
    end
    return nil, 'one of ' .. table.concat(spec.values or {}, ', ')
  elseif kind == 'list' then
    if type(v) == 'table' then return v end
  elseif kind == 'table' then
    if type(v) == 'table' then return v end
  else
    return nil, 'a known type (schema says ' .. tostring(kind) .. ')'
  end
  return nil, 'a ' .. kind
end

-- Returns a new table with defaults filled in, or nil and a message.
function M.validate(schema, conf, where)
  where = where and (where .. ': ') or ''
  schema = schema or {}
  conf = conf or {}
  local out = {}
  for key, value in pairs(conf) do
    local spec = schema[key]
    if type(key) ~= 'string' or not spec then
      return nil, ('%sunknown option %q'):format(where, tostring(key))
    end
    local v, want = convert(spec.type or 'string', value, spec)
    if v == nil then
      return nil, ('%soption %q: expected %s, got %q'):format(
        where, key, want or spec.type, tostring(value))
    end
    out[key] = v
  end
  for key, spec in pairs(schema) do
    if out[key] == nil then
      if spec.required then
        return nil, ('%smissing required option %q'):format(where, key)
      end
      out[key] = spec.default
    end
  end
  return out
end

-- A configfs handler string: "key=value;key=value" (or ','), or, for a
-- handler that names a positional option (cfgstring_key), the bare value.
function M.parse_cfgstring(str, positional)
  local conf = {}
  if str == nil or str == '' then return conf end
  if not str:find('=', 1, true) then
    if not positional then
      return nil, ('cannot interpret config string %q'):format(str)
    end
    conf[positional] = str
    return conf
  end
  for item in str:gmatch('[^;,]+') do
    local k, v = item:match('^%s*([%w_]+)%s*=%s*(.-)%s*$')
    if not k then
      return nil, ('bad item %q in config string'):format(item)
    end
    conf[k] = v
  end
  return conf
end

return M
