-- scsi/dataops.lua: how the library moves bytes in and out of a command.
--
-- In the daemon these are the C functions of bindings/tl_abi.h, reached
-- through the FFI.  The table is the one seam specs use to run under a
-- plain luajit (scsi.set_data_ops): every module calls through this table,
-- so replacing its fields replaces the functions everywhere.
local ffi = require('ffi')

local M = {}

local function missing(name)
	return function()
		error('scsi: ' .. name .. ' is not available (run inside tcmu-lua, '
			.. 'or install data ops with scsi.set_data_ops)', 2)
	end
end

local names = {
	copy_to = 'tl_ffi_copy_to',	-- (cmd, off, src, len) memory -> data-in
	copy_from = 'tl_ffi_copy_from',	-- (cmd, off, dst, len) data-out -> memory
	fill = 'tl_ffi_fill',		-- (cmd, off, byte, len)
	memcmp = 'tl_ffi_memcmp',	-- (cmd, off, buf, len, size_t *mismatch)
}

for field, cname in pairs(names) do
	local ok, fn = pcall(function() return ffi.C[cname] end)
	M[field] = ok and fn or missing(cname)
end

-- Replace some or all of the functions (specs only).
function M.set(t)
	for field in pairs(names) do
		if t[field] then M[field] = t[field] end
	end
end

return M
