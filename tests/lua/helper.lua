-- Loaded by busted before the specs: make tests/lua modules requirable and
-- tell specs where the test handlers live.
local here = debug.getinfo(1, 'S').source:match('^@(.*)/helper%.lua$') or 'tests/lua'
package.path = here .. '/?.lua;' .. package.path
TEST_HANDLER_DIRS = here .. '/handlers;' .. (TL_LUA_DIR or 'lua') .. '/handlers'
