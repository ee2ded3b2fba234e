-- lua_coverage.lua: Lua line coverage from a fuzz_cdb TL_FUZZ_LUALINES dump.
--
--   TL_FUZZ_LUALINES=/tmp/hits build/tests/fuzz/fuzz_cdb_replay DIR...
--   luajit tests/fuzz/lua_coverage.lua /tmp/hits lua/lib/scsi/*.lua ...
--
-- A file's lines are those LuaJIT attributes the bytecode of its functions
-- to (jit.util), the same attribution the line hook reports.  The main
-- chunk is left out: it runs when the module loads, before the hook is
-- set.  Files are matched on their path from the last "lua/" on.  Prints
-- hit/total per file, and with -v the line numbers never run.
local ju = require 'jit.util'

local verbose = arg[1] == '-v'
local first = verbose and 2 or 1

local function walk(f, lines, top)
  local pc = 1
  while not top and ju.funcbc(f, pc) do
    local line = ju.funcinfo(f, pc).currentline
    if line and line > 0 then lines[line] = true end
    pc = pc + 1
  end
  local i = -1
  while true do
    local k = ju.funck(f, i)
    if k == nil then break end
    if type(k) == 'proto' then walk(k, lines) end
    i = i - 1
  end
end

local function key(path)
  return path:match('.*/(lua/.*)$') or path
end

local hit = {}
for l in io.lines(arg[first]) do
  local src, line = l:match('^@?(.-)\t(%d+)$')
  if src then
    local k = key(src)
    hit[k] = hit[k] or {}
    hit[k][tonumber(line)] = true
  end
end

local all_hit, all_total = 0, 0
for i = first + 1, #arg do
  local lines = {}
  walk(assert(loadfile(arg[i])), lines, true)
  local h, total, missed = 0, 0, {}
  local got = hit[key(arg[i])] or {}
  for line in pairs(lines) do
    total = total + 1
    if got[line] then h = h + 1 else missed[#missed + 1] = line end
  end
  table.sort(missed)
  all_hit, all_total = all_hit + h, all_total + total
  print(('%-36s %5d / %5d  %5.1f%%'):format(key(arg[i]), h, total,
    total > 0 and 100 * h / total or 0))
  if verbose and #missed > 0 then print('  not run: ' .. table.concat(missed, ' ')) end
end
print(('%-36s %5d / %5d  %5.1f%%'):format('total', all_hit, all_total,
  all_total > 0 and 100 * all_hit / all_total or 0))
