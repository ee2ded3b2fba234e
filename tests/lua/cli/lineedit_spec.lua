-- The sandbox's line editor, driven by key bytes instead of a terminal.
local LE = require 'tl.cli.lineedit'

local function session(history, complete)
  local screen = {}
  local ed = LE.editor { history = history or {}, complete = complete,
    write = function(s) screen[#screen + 1] = s end }
  -- Type bytes; returns the line read (or nil at end of input).
  local function type_(bytes)
    local i = 0
    return ed:read('> ', function()
      i = i + 1
      return bytes:byte(i)
    end)
  end
  return ed, type_, screen
end

local LEFT, RIGHT, UP, DOWN = '\27[D', '\27[C', '\27[A', '\27[B'
local HOME, END, DEL = '\27[H', '\27[F', '\27[3~'

describe('the line editor', function()
  it('inserts where the cursor is', function()
    local _, type_ = session()
    assert.equals('read 0 1', type_('read 01' .. LEFT .. ' \r'))
    assert.equals('Xab', type_('ab\1X\r'))			-- ctrl-a, then insert
    assert.equals('abY', type_('ab' .. HOME .. END .. 'Y\r'))
  end)

  it('deletes with backspace, delete, ctrl-d, ctrl-u, ctrl-k, ctrl-w', function()
    local _, type_ = session()
    assert.equals('rea', type_('read\127\r'))
    assert.equals('ead', type_('read' .. HOME .. DEL .. '\r'))
    assert.equals('ead', type_('read\1\4\r'))
    assert.equals('cap', type_('read cap' .. LEFT:rep(3) .. '\21\r'))
    assert.equals('read', type_('read cap' .. LEFT:rep(4) .. '\11\r'))
    assert.equals('write ', type_('write 0 \23\r'))
    assert.equals('', type_('write 0 \23\23\r'))
  end)

  it('walks the history with up and down, keeping the line being typed', function()
    local ed, type_ = session()
    type_('tur\r')
    type_('readcap\r')
    type_('readcap\r')		-- a repeat is stored once
    assert.same({ 'tur', 'readcap' }, ed.history)
    assert.equals('tur', type_(UP .. UP .. '\r'))
    assert.equals('new', type_('new' .. UP .. DOWN .. '\r'))
    -- history now: tur, readcap, tur, new
    assert.equals('readcap', type_(UP:rep(3) .. '\r'))
    assert.equals('new', type_(UP:rep(4) .. DOWN:rep(2) .. '\r'))   -- tur readcap tur new readcap
    assert.equals('', type_(UP .. DOWN .. '\r'))
  end)

  it('ends input with ctrl-d on an empty line, and ctrl-c drops the line', function()
    local _, type_ = session()
    assert.is_nil(type_('\4'))
    assert.is_nil(type_(''))			-- end of the byte stream
    assert.equals('', type_('half a line\3'))
  end)

  it('completes the first word with tab', function()
    local cmds = function() return { 'read', 'readcap', 'readcap16', 'reload', 'tur' } end
    local _, type_, screen = session(nil, cmds)
    assert.equals('tur ', type_('t\t\r'))
    assert.equals('readcap', type_('readc\t\r'))		-- the common prefix
    assert.equals('re', type_('re\t\r'))			-- ambiguous: lists them
    assert.truthy(table.concat(screen):find('read  readcap  readcap16  reload', 1, true))
  end)

  it('redraws the line and puts the cursor back', function()
    local _, type_, screen = session()
    type_('ab' .. LEFT .. '\r')
    assert.equals('\r> ab\27[K\27[1D', screen[#screen - 1])
  end)

  it('reads keys from escape sequences', function()
    local function key(s)
      local i = 0
      return LE.next_key(function() i = i + 1; return s:byte(i) end)
    end
    assert.equals('up', key('\27[A'))
    assert.equals('left', key('\27OD'))
    assert.equals('delete', key('\27[3~'))
    assert.equals('home', key('\27[1~'))
    assert.equals('none', key('\27[1;5C'):gsub('right', 'none'))
    assert.equals('enter', key('\r'))
    local k, ch = key('x')
    assert.equals('char', k)
    assert.equals('x', ch)
  end)
end)
