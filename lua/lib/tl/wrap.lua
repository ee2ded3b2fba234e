-- tl.wrap: what handlers that wrap another handler (fault, trace) share.
local M = {}

-- What the library offers follows the wrapper's table and dev.conf: say
-- what the inner handler cannot do (no write: read-only; no unmap: UNMAP
-- as zeros written through write) or promises (unmapped blocks read as
-- zeros).
function M.adjust_conf(conf, inner)
  if not inner.write then conf.read_only = true end
  if not inner.unmap and conf.zero_unmap == nil then conf.zero_unmap = true end
  if inner.unmap_zeroes and conf.unmap_zeroes == nil then conf.unmap_zeroes = true end
end

local function same(a, b)
  if type(a) ~= 'table' or type(b) ~= 'table' then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
M.same = same

-- Wrap the device's complete(): before(cmd) runs first, then the
-- complete() that was there.  Returns the function that turns the hook off
-- (and takes it out, unless something hooked in after it).
function M.hook_complete(root, before)
  local prev = rawget(root, 'complete')
  local orig = root.complete
  local active = true
  local hook
  hook = function(self, cmd)
    if active then before(cmd) end
    return orig(self, cmd)
  end
  root.complete = hook
  return function()
    active = false
    if rawget(root, 'complete') == hook then root.complete = prev end
  end
end

-- A reload keeps the inner handler and its state: it must not change.
function M.check_same_inner(old, conf)
  if conf.inner ~= old.inner_name or not same(conf.inner_options or {}, old.inner_options or {}) then
    error(('inner handler or its options changed (%s): needs a restart'):format(old.inner_name))
  end
end

return M
