-- The hot path stays compiled: the worker's dispatch loop, the SCSI
-- library's READ/WRITE path and the ram handler must not abort a trace
-- (an NYI function, a closure per command...) under a steady load, and
-- no abort at all is tolerated on those files once warmed up.
local T = require 'tl.testing'

local HOT = { 'tl/runtime.lua', 'scsi/init.lua', 'scsi/rw.lua', 'scsi/core.lua',
  'handlers/ram.lua' }

describe('the JIT', function()
  it('compiles the dispatch loop and the READ/WRITE path without aborts', function()
    local d = assert(T.device { handler = 'ram', size = 16 * 1024 * 1024 })
    assert(d:eval [[
      local util = require 'jit.util'
      local vmdef = require 'jit.vmdef'
      ABORTS, COMPILED = {}, {}
      jit.flush()
      jit.attach(function(what, tr, func, pc, otr, oex)
        if what == 'start' then
          local info = util.funcinfo(func, pc)
          START = (info.source or '?') .. ':' .. (info.currentline or 0)
          return
        end
        if what == 'stop' then
          COMPILED[START or '?'] = true
          return
        end
        if what ~= 'abort' then return end
        local info = util.funcinfo(func, pc)
        local why = vmdef.traceerr[otr] or tostring(otr)
        if type(oex) == 'number' and why:find('%%d') then why = why:format(oex) end
        if type(oex) == 'number' and why:find('%%s') then
          why = why:format(vmdef.ffnames[oex] or tostring(oex))
        end
        -- A function called from C each batch turns hot at its entry, and
        -- a trace from there stops at the loop inside: LuaJIT then traces
        -- the loop itself (checked below).  Not a problem on the hot path.
        if why == 'inner loop in root trace' then return end
        ABORTS[#ABORTS + 1] = (info.source or '?') .. ':' ..
          (info.currentline or 0) .. ': ' .. why
      end, 'trace')
      return 'ok'
    ]])
    local block = ('z'):rep(4096)
    for round = 1, 400 do
      -- Trace formation may abort while LuaJIT picks its roots ("inner loop
      -- in root trace"); what matters is the steady state after warm-up.
      if round == 100 then assert(d:eval 'ABORTS = {} return "ok"') end
      for i = 0, 31 do
        local lba = ((round * 32 + i) * 8) % (16 * 2048 - 8)
        if i % 2 == 0 then
          assert(d:prepare(T.read10(lba, 8), { len = 4096 }))
        else
          assert(d:prepare(T.write10(lba, 8), { data = block }))
        end
      end
      d:publish()
      d:run(0)
      for id = 1, 64 do d:result(id) end
    end
    local report = assert(d:eval [[
      jit.attach(function() end)
      return table.concat(ABORTS, '\n')
    ]])
    -- The dispatch loop itself became a compiled trace.
    local loops = assert(d:eval [[
      local out = {}
      for where in pairs(COMPILED) do out[#out + 1] = where end
      return table.concat(out, '\n')
    ]])
    assert.truthy(loops:find('tl/runtime.lua:%d+'), 'no trace in the dispatch loop:\n' .. loops)
    local bad = {}
    for line in report:gmatch('[^\n]+') do
      for _, f in ipairs(HOT) do
        if line:find(f, 1, true) then bad[#bad + 1] = line end
      end
    end
    assert.equals(0, #bad, 'trace aborts on the hot path:\n' .. table.concat(bad, '\n'))
    assert.equals(400 * 32, d:stats().cmds)
    d:close()
  end)
end)
