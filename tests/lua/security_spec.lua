-- Handler names: nothing a configfs string or a YAML file names can load
-- code from outside the handler directories (docs/security.md).  The
-- search paths are checked by tests/security/lua_paths.lua, in a state made
-- as the daemon makes them (busted adds its own relative entries here).
local handlers = require 'tl.handlers'

local hostile = {
  '../../etc/x', '/abs', 'a.b', '', ('x'):rep(300), 'x\0y', '..', '.',
  'ram/../ram', 'ram\n', ' ram', 'r\xc3\xa9', 'ram.lua', 'ram;x', '~root',
}

describe('handler names', function()
  it('are refused unless letters, digits, _ and -', function()
    for _, name in ipairs(hostile) do
      assert.is_false(handlers.valid_name(name), ('%q'):format(name))
      local h, err = handlers.load(name)
      assert.is_nil(h)
      assert.matches('invalid handler name', err)
      assert.is_nil(handlers.find(name), ('%q'):format(name))
    end
    assert.is_false(handlers.valid_name(nil))
    assert.is_false(handlers.valid_name(42))
  end)

  it('of 63 characters are the longest accepted, as in C', function()
    assert.is_true(handlers.valid_name(('a'):rep(63)))
    assert.is_false(handlers.valid_name(('a'):rep(64)))
    assert.is_true(handlers.valid_name('ram_2-x'))
  end)
end)
