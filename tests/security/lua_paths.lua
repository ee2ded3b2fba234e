-- Run by ctest as `tcmu-lua script tests/security/lua_paths.lua`: a Lua
-- state made as the daemon makes them must not search relative places
-- (no "./?.lua", no "./?.so": the daemon's working directory is nobody's
-- business), and must find C modules only in absolute system directories.
local bad = 0
for _, which in ipairs({ 'path', 'cpath' }) do
  for e in package[which]:gmatch('[^;]+') do
    if e:sub(1, 1) ~= '/' then
      io.stderr:write(('package.%s has a relative entry: %s\n'):format(which, e))
      bad = bad + 1
    end
  end
end
print(('package.path: %s\npackage.cpath: %s'):format(package.path, package.cpath))
if bad > 0 then os.exit(1) end
print('lua_paths: ok')
