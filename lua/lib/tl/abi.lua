-- tl.abi: the FFI view of the C core, declared once per lua_State.
--
-- The declarations come from bindings/tl_abi.h, embedded in the binary by
-- the build (package.preload['tl.cdef']), so Lua and C cannot disagree.
-- This module is cached in package.loaded and never reloaded: running
-- ffi.cdef twice on the same struct is an error in LuaJIT.
local ffi = require 'ffi'

local EXPECTED_ABI = 1

local ok = pcall(ffi.typeof, 'struct tl_cmd')
if not ok then
  ffi.cdef(require 'tl.cdef')
end

local C = ffi.C
local have, version = pcall(function() return C.tl_ffi_abi_version() end)
if not have then
  error('tl.abi: not running inside tcmu-lua (tl_ffi_* symbols missing)', 0)
end
if version ~= EXPECTED_ABI then
  error(('tl.abi: Lua library speaks ABI %d but the core speaks %d'):format(
    EXPECTED_ABI, version), 0)
end

return {
  C = C,
  VERSION = version,
  cmd_ptr = ffi.typeof('struct tl_cmd *'),
  dev_ptr = ffi.typeof('struct tl_dev *'),
  worker_ptr = ffi.typeof('struct tl_worker *'),
}
