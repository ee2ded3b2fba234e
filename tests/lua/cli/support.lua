-- Run the tcmu-lua binary the specs are running in, as a user would, and
-- collect what it prints and its exit status.
local ffi = require 'ffi'

if not pcall(ffi.typeof, 'ssize_t') then ffi.cdef 'typedef long ssize_t;' end
pcall(ffi.cdef, 'ssize_t readlink(const char *path, char *buf, size_t len);')

local M = {}

local function self_exe()
  local buf = ffi.new('char[4096]')
  local n = ffi.C.readlink('/proc/self/exe', buf, 4096)
  assert(n > 0, 'cannot read /proc/self/exe')
  return ffi.string(buf, n)
end

M.exe = self_exe()
M.source_dir = os.getenv('TL_SOURCE_DIR') or '.'

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
M.quote = quote

local function slurp(path)
  local f = io.open(path, 'rb')
  if not f then return '' end
  local s = f:read('*a')
  f:close()
  return s
end
M.slurp = slurp

-- run({'decode', '28', ...}, stdin_text, {VAR = value}) -> stdout,
-- stderr, exit status.  Runs in the source directory, without a terminal.
function M.run(args, stdin, env)
  local parts = {}
  for k, v in pairs(env or {}) do parts[#parts + 1] = k .. '=' .. quote(v) end
  parts[#parts + 1] = quote(M.exe)
  for _, a in ipairs(args) do parts[#parts + 1] = quote(a) end
  local errf, inf = os.tmpname(), nil
  local cmd = table.concat(parts, ' ') .. ' 2>' .. quote(errf)
  if stdin then
    inf = os.tmpname()
    local f = assert(io.open(inf, 'wb'))
    f:write(stdin)
    f:close()
    cmd = cmd .. ' <' .. quote(inf)
  else
    cmd = cmd .. ' </dev/null'
  end
  -- LuaJIT's popen():close() does not give the status: print it last.
  local p = assert(io.popen('cd ' .. quote(M.source_dir) .. ' && ' .. cmd .. '; echo "<rc=$?>"'))
  local out = p:read('*a')
  p:close()
  local err = slurp(errf)
  os.remove(errf)
  if inf then os.remove(inf) end
  local body, rc = out:match('^(.-)<rc=(%d+)>\n?$')
  return body, err, tonumber(rc)
end

return M
