-- tl.cli.lineedit: a small line editor for the sandbox prompt.
--
-- On a terminal, stdin is put in raw mode (termios through the FFI) for
-- the time it takes to read one line, so commands run with the terminal
-- as usual.  Keys: left/right, home/end, backspace/delete, up/down
-- through the history, tab completes the first word, ctrl-a/e (start/end),
-- ctrl-u/k (kill to start/end), ctrl-w (kill word), ctrl-l (clear),
-- ctrl-c (drop the line), ctrl-d (end of input on an empty line).
-- Not a terminal: plain io.read.
--
-- One screen line, no wide characters: enough for commands a few dozen
-- characters long.  The editing itself (Editor) knows nothing of
-- terminals: it takes key names and writes through a function, so the
-- specs drive it with strings.
local ffi = require 'ffi'
local bit = require 'bit'

local M = {}

------------------------------------------------------------------------
-- Bytes -> keys.  next_key(getbyte) reads one key press; getbyte()
-- returns a byte number or nil at the end of input.

local CTRL = {
  [1] = 'home', [2] = 'left', [3] = 'interrupt', [4] = 'eof', [5] = 'end',
  [6] = 'right', [8] = 'backspace', [9] = 'tab', [10] = 'enter', [11] = 'kill_end',
  [12] = 'clear', [13] = 'enter', [14] = 'down', [16] = 'up', [21] = 'kill_start',
  [23] = 'kill_word', [127] = 'backspace',
}
local CSI = { A = 'up', B = 'down', C = 'right', D = 'left', H = 'home', F = 'end' }
local TILDE = { ['1'] = 'home', ['3'] = 'delete', ['4'] = 'end', ['7'] = 'home', ['8'] = 'end' }

function M.next_key(getbyte)
  local b = getbyte()
  if not b then return 'eof' end
  if b == 27 then
    local b2 = getbyte()
    if b2 == 91 or b2 == 79 then	-- ESC [ ... or ESC O ...
      local params = ''
      while true do
        local c = getbyte()
        if not c then return 'none' end
        local ch = string.char(c)
        if ch:match('[%d;]') then
          params = params .. ch
        elseif ch == '~' then
          return TILDE[params:match('^%d+') or ''] or 'none'
        else
          return CSI[ch] or 'none'
        end
      end
    end
    return 'none'
  end
  if CTRL[b] then return CTRL[b] end
  if b < 32 then return 'none' end
  return 'char', string.char(b)
end

------------------------------------------------------------------------
-- The editor: a buffer, a cursor, a history.

local Editor = {}
Editor.__index = Editor

-- opts.write(s): where the screen output goes.  opts.history: a list of
-- earlier lines (oldest first), kept and extended.  opts.complete(word):
-- candidate words for tab.
function M.editor(opts)
  return setmetatable({
    write = opts.write, history = opts.history or {}, complete = opts.complete,
    max_history = opts.max_history or 500,
  }, Editor)
end

function Editor:start(prompt)
  self.prompt, self.buf, self.pos = prompt, '', 0
  self.hpos, self.saved = #self.history + 1, nil
  self.write(prompt)
end

-- Redraw the line: back to column 0, prompt, text, clear the rest, then
-- put the cursor where it belongs.
function Editor:refresh()
  local back = #self.buf - self.pos
  self.write('\r' .. self.prompt .. self.buf .. '\27[K' ..
    (back > 0 and ('\27[' .. back .. 'D') or ''))
end

function Editor:set(buf, pos)
  self.buf, self.pos = buf, pos or #buf
  self:refresh()
end

function Editor:history_move(step)
  local h = self.history
  local n = self.hpos + step
  if n < 1 or n > #h + 1 then return end
  if self.hpos == #h + 1 then self.saved = self.buf end
  self.hpos = n
  self:set(n == #h + 1 and (self.saved or '') or h[n])
end

function Editor:add_history(line)
  if line:find('%S') and self.history[#self.history] ~= line then
    self.history[#self.history + 1] = line
    if #self.history > self.max_history then table.remove(self.history, 1) end
  end
end

function Editor:tab()
  if not self.complete or self.buf:sub(1, self.pos):find('%s') then return end
  local word = self.buf:sub(1, self.pos)
  local found = {}
  for _, w in ipairs(self.complete(word)) do
    if w:sub(1, #word) == word then found[#found + 1] = w end
  end
  if #found == 0 then return end
  -- The longest prefix the candidates share.
  local common = found[1]
  for i = 2, #found do
    local w, n = found[i], 0
    while n < #common and common:byte(n + 1) == w:byte(n + 1) do n = n + 1 end
    common = common:sub(1, n)
  end
  if #found == 1 then common = common .. ' ' end
  if #common > #word then
    self:set(common .. self.buf:sub(self.pos + 1), #common)
  elseif #found > 1 then
    table.sort(found)
    self.write('\r\n' .. table.concat(found, '  ') .. '\r\n')
    self:refresh()
  end
end

-- Apply one key.  Returns 'line', text when a line is complete, 'eof' at
-- the end of input, nil otherwise.
function Editor:key(k, ch)
  local buf, pos = self.buf, self.pos
  if k == 'char' then
    self:set(buf:sub(1, pos) .. ch .. buf:sub(pos + 1), pos + 1)
  elseif k == 'enter' then
    self.write('\r\n')
    self:add_history(buf)
    return 'line', buf
  elseif k == 'left' then
    if pos > 0 then self.pos = pos - 1; self:refresh() end
  elseif k == 'right' then
    if pos < #buf then self.pos = pos + 1; self:refresh() end
  elseif k == 'home' then
    self.pos = 0; self:refresh()
  elseif k == 'end' then
    self.pos = #buf; self:refresh()
  elseif k == 'backspace' then
    if pos > 0 then self:set(buf:sub(1, pos - 1) .. buf:sub(pos + 1), pos - 1) end
  elseif k == 'delete' then
    if pos < #buf then self:set(buf:sub(1, pos) .. buf:sub(pos + 2), pos) end
  elseif k == 'eof' then
    if buf == '' then self.write('\r\n'); return 'eof' end
    if pos < #buf then self:set(buf:sub(1, pos) .. buf:sub(pos + 2), pos) end
  elseif k == 'interrupt' then
    self.write('^C\r\n')
    return 'line', ''
  elseif k == 'kill_start' then
    self:set(buf:sub(pos + 1), 0)
  elseif k == 'kill_end' then
    self:set(buf:sub(1, pos), pos)
  elseif k == 'kill_word' then
    local start = buf:sub(1, pos):find('%S+%s*$') or pos + 1
    self:set(buf:sub(1, start - 1) .. buf:sub(pos + 1), start - 1)
  elseif k == 'up' then
    self:history_move(-1)
  elseif k == 'down' then
    self:history_move(1)
  elseif k == 'tab' then
    self:tab()
  elseif k == 'clear' then
    self.write('\27[H\27[2J')
    self:refresh()
  end
end

-- Read one line with getbyte(): the line, or nil at the end of input.
function Editor:read(prompt, getbyte)
  self:start(prompt)
  while true do
    local what, line = self:key(M.next_key(getbyte))
    if what == 'line' then return line end
    if what == 'eof' then return nil end
  end
end

------------------------------------------------------------------------
-- The terminal.

-- struct termios as glibc lays it out on Linux (asm-generic termbits:
-- x86, x86_64, arm, arm64, riscv share layout and flag values).
local termios_ok = ffi.os == 'Linux' and (ffi.arch == 'x64' or ffi.arch == 'x86'
  or ffi.arch == 'arm64' or ffi.arch == 'arm')
if termios_ok and not pcall(ffi.typeof, 'struct tl_cli_termios') then
  ffi.cdef [[
    struct tl_cli_termios {
      unsigned int c_iflag, c_oflag, c_cflag, c_lflag;
      unsigned char c_line;
      unsigned char c_cc[32];
      unsigned int c_ispeed, c_ospeed;
    };
    int tcgetattr(int fd, struct tl_cli_termios *t);
    int tcsetattr(int fd, int when, const struct tl_cli_termios *t);
  ]]
end
pcall(ffi.cdef, 'int isatty(int fd);')
pcall(ffi.cdef, 'long read(int fd, void *buf, size_t n);')

local ISIG, ICANON, ECHO, IEXTEN = 0x1, 0x2, 0x8, 0x8000
local ICRNL, IXON = 0x100, 0x400
local VTIME, VMIN = 5, 6
local TCSADRAIN = 1

function M.isatty(fd)
  local ok, r = pcall(function() return ffi.C.isatty(fd) end)
  return ok and r == 1
end

-- A reader for the sandbox: reader:read(prompt) -> line or nil.
-- opts: history_file, complete.  Raw mode is used only when both stdin
-- and stdout are terminals.
function M.new(opts)
  opts = opts or {}
  local self = { interactive = termios_ok and M.isatty(0) and M.isatty(1) }
  if not self.interactive then
    function self.read(_, prompt)
      if prompt then io.stdout:write(prompt); io.stdout:flush() end
      return io.read('*l')
    end
    function self.close() end
    return self
  end

  local history = {}
  local hf = opts.history_file
  if hf then
    local f = io.open(hf, 'r')
    if f then
      for l in f:lines() do history[#history + 1] = l end
      f:close()
    end
  end
  local ed = M.editor {
    history = history, complete = opts.complete,
    write = function(s) io.stdout:write(s); io.stdout:flush() end,
  }
  local saved = ffi.new('struct tl_cli_termios')
  local raw = ffi.new('struct tl_cli_termios')
  local byte = ffi.new('unsigned char[1]')
  local function getbyte()
    while true do
      local n = ffi.C.read(0, byte, 1)
      if n == 1 then return byte[0] end
      if n == 0 then return nil end
      if ffi.errno() ~= 4 then return nil end	-- EINTR: try again
    end
  end

  function self.read(_, prompt)
    if ffi.C.tcgetattr(0, saved) ~= 0 then return io.read('*l') end
    ffi.copy(raw, saved, ffi.sizeof(raw))
    raw.c_lflag = bit.band(raw.c_lflag, bit.bnot(ICANON + ECHO + ISIG + IEXTEN))
    raw.c_iflag = bit.band(raw.c_iflag, bit.bnot(ICRNL + IXON))
    raw.c_cc[VMIN], raw.c_cc[VTIME] = 1, 0
    ffi.C.tcsetattr(0, TCSADRAIN, raw)
    local ok, line = pcall(ed.read, ed, prompt or '', getbyte)
    ffi.C.tcsetattr(0, TCSADRAIN, saved)
    if not ok then error(line, 0) end
    return line
  end

  function self.close()
    if not hf then return end
    local f = io.open(hf, 'w')
    if not f then return end
    local h = ed.history
    for i = math.max(1, #h - 499), #h do f:write(h[i], '\n') end
    f:close()
  end
  return self
end

return M
