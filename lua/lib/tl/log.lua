-- tl.log: the daemon's log from Lua (same lines, same levels as C).
local C = require('tl.abi').C

local M = { ERR = 0, WARN = 1, INFO = 2, DEBUG = 3 }

local function emit(level, fmt, ...)
  if level > C.tl_ffi_log_level() then return end
  local msg = select('#', ...) > 0 and fmt:format(...) or tostring(fmt)
  C.tl_ffi_log(level, msg)
end

function M.err(...) emit(0, ...) end
function M.warn(...) emit(1, ...) end
function M.info(...) emit(2, ...) end
function M.debug(...) emit(3, ...) end

return M
