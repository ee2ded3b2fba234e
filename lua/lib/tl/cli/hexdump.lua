-- tl.cli.hexdump: bytes typed by people, and bytes shown to them.
--
--   parse("28 00 0x10 2a00")  -> "\x28\x00\x10\x2a\x00"  or nil, message
--   dump(bytes, opts)         -> array of lines: offset, hex, ASCII
--
-- parse() is forgiving about layout (spaces, commas, colons, 0x prefixes,
-- runs of digits without spaces) and strict about content: anything that is
-- not hex, or a run with an odd number of digits, is an error that names
-- the offending word.
local fmt = string.format

local M = {}

-- Turn one word ("0x2800", "28", "8") into bytes.  A lone digit is a byte
-- ("28 0 0" is what people type); longer runs must have an even length.
local function word_bytes(w)
  local digits = w:gsub('^0[xX]', '', 1)
  if digits == '' or not digits:match('^%x+$') then
    return nil, fmt('%q is not hex', w)
  end
  if #digits == 1 then return string.char(tonumber(digits, 16)) end
  if #digits % 2 == 1 then
    return nil, fmt('%q has an odd number of hex digits', w)
  end
  return (digits:gsub('%x%x', function(h) return string.char(tonumber(h, 16)) end))
end

function M.parse(s)
  local out = {}
  for w in s:gmatch('[^%s,:;]+') do
    local b, err = word_bytes(w)
    if not b then return nil, 'bad hex: ' .. err end
    out[#out + 1] = b
  end
  return table.concat(out)
end

-- "28 00 00 ..." for a byte string.
function M.spaced(bytes, sep)
  return (bytes:gsub('.', function(c) return fmt('%02x', c:byte()) .. (sep or ' ') end)
    :gsub('%s+$', ''))
end

local function printable(b)
  return (b >= 0x20 and b < 0x7f) and string.char(b) or '.'
end

-- Lines of "0010  68 65 6c 6c 6f 00 ...  |hello...|", 16 bytes a line.
-- opts.collapse (default true): runs of identical lines become one "*"
-- line, as hexdump -C does, so a mostly empty block stays short.
-- opts.max: stop once lines showing this many bytes are printed (nil or
-- 0: never); folded lines do not count, and a last line says how many
-- bytes were left out.  opts.indent: a prefix for every line.
function M.dump(bytes, opts)
  opts = opts or {}
  local indent = opts.indent or ''
  local total = #bytes
  local max = (opts.max and opts.max > 0) and opts.max or math.huge
  local collapse = opts.collapse ~= false
  local lines, prev, starred, printed = {}, nil, false, 0
  for off = 0, total - 1, 16 do
    local chunk = bytes:sub(off + 1, off + 16)
    local last = off + 16 >= total
    if collapse and chunk == prev and not last then
      if not starred then lines[#lines + 1] = indent .. '*' end
      starred = true
    elseif printed >= max and not (last and chunk == prev) then
      lines[#lines + 1] = fmt('%s... %d more byte%s not shown', indent,
        total - off, total - off == 1 and '' or 's')
      break
    else
      starred = false
      printed = printed + #chunk
      local hex, asc = {}, {}
      for i = 1, 16 do
        local b = chunk:byte(i)
        hex[#hex + 1] = b and fmt('%02x', b) or '  '
        if i == 8 then hex[#hex + 1] = '' end
        asc[#asc + 1] = b and printable(b) or ''
      end
      lines[#lines + 1] = fmt('%s%04x  %s  |%s|', indent, off,
        table.concat(hex, ' '), table.concat(asc))
    end
    prev = chunk
  end
  return lines
end

return M
