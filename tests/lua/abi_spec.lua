-- The FFI view of the core matches what the C compiler built.
local ffi = require 'ffi'
local abi = require 'tl.abi'
local C = abi.C

-- The size of a field as LuaJIT sees it.  Arrays, structs, pointers and
-- 64-bit integers come back as cdata with a size; smaller integers come
-- back as numbers, so write all ones into a zeroed object and see which
-- bytes change (that checks the offset once more too).
local function field_size(ctype, field, offset)
  local obj = ffi.new(ctype)
  local v = obj[field]
  if type(v) ~= 'number' then return ffi.sizeof(v) end
  obj[field] = -1
  local bytes = ffi.cast('uint8_t *', obj)
  local first, last
  for i = 0, ffi.sizeof(ctype) - 1 do
    if bytes[i] ~= 0 then
      first = first or i
      last = i
    end
  end
  assert.equals(offset, first, ctype .. '.' .. field .. ' written at')
  return last - first + 1
end

describe('the FFI ABI', function()
  it('lays out every struct exactly as the C compiler does', function()
    local t = C.tl_ffi_abi_layout()
    local i, checked = 0, 0
    while t[i].type ~= nil do
      local e = t[i]
      local ctype = 'struct ' .. ffi.string(e.type)
      local field = ffi.string(e.field)
      if field == '' then
        assert.equals(tonumber(e.size), ffi.sizeof(ctype), ctype)
      else
        assert.equals(tonumber(e.offset), ffi.offsetof(ctype, field),
          ctype .. '.' .. field .. ' offset')
        assert.equals(tonumber(e.size), field_size(ctype, field, tonumber(e.offset)),
          ctype .. '.' .. field .. ' size')
      end
      checked = checked + 1
      i = i + 1
    end
    assert.is_true(checked > 60, 'only ' .. checked .. ' entries')
  end)

  it('speaks the version the Lua library expects', function()
    assert.equals(abi.VERSION, C.tl_ffi_abi_version())
    assert.equals(C.TL_ABI_VERSION, C.tl_ffi_abi_version())
  end)
end)
