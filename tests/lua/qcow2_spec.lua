-- The qcow2 handler against images made and checked by qemu-img.
local T = require 'tl.testing'

local function sh(cmd)
  local r = os.execute(cmd .. ' >/dev/null 2>&1')
  return r == true or r == 0
end

local function out(cmd)
  local p = assert(io.popen('( ' .. cmd .. ' ) 2>&1'))
  local s = p:read('*a')
  p:close()
  return s
end

local have_qemu = os.getenv('TL_NO_QEMU') == nil and sh('qemu-img --version')  -- TL_NO_QEMU: try the skip
local have_qemu_io = have_qemu and sh('qemu-io --version')

local KB, MB = 1024, 1024 * 1024
local SIZE = 4 * MB

local function read_file(path, off, len)
  local f = assert(io.open(path, 'rb'))
  f:seek('set', off or 0)
  local s = f:read(len or '*a') or ''
  f:close()
  return s
end

local function write_file(path, off, data)
  local f = io.open(path, 'r+b') or assert(io.open(path, 'wb'))
  f:seek('set', off)
  f:write(data)
  f:close()
end

-- A raw file of `size` zero bytes (sparse).
local function raw_file(path, size)
  local f = assert(io.open(path, 'wb'))
  f:seek('set', size - 1); f:write('\0'); f:close()
end

-- Bytes that differ from block to block and from run to run of the pattern.
local function pattern(len, seed)
  local parts = {}
  for i = 0, len / 16 - 1 do
    parts[#parts + 1] = ('%08x%07d%s'):format(seed, i % 9999999, string.char(65 + (seed + i) % 26))
  end
  return table.concat(parts)
end

local function check(img)
  local s = out('qemu-img check ' .. img .. '; echo "rc=$?"')
  return s
end

local function same_file(a, b) return sh(('cmp -s %s %s'):format(a, b)) end

local function to_raw(img, raw)
  assert(sh(('qemu-img convert -O raw %s %s'):format(img, raw)))
end

local function unmap_cdb(lba, n)
  local param = T.be(22, 2) .. T.be(16, 2) .. '\0\0\0\0' .. T.be(lba, 8) .. T.be(n, 4) .. '\0\0\0\0'
  return '\66\0\0\0\0\0\0\0\24\0', param
end

local function test_describe(name, fn)
  if have_qemu then return describe(name, fn) end
  describe(name, function() pending('qemu-img is not installed') end)
end

test_describe('qcow2 handler', function()
  local dir
  before_each(function()
    -- tmpfs when there is one: the specs fdatasync a lot (crashes are
    -- simulated, not real)
    dir = out('mktemp -d -p /dev/shm qcow2.XXXXXX 2>/dev/null || mktemp -d'):gsub('%s+$', '')
    assert(dir ~= '' and sh('test -d ' .. dir), dir)
  end)
  after_each(function()
    sh('rm -rf ' .. dir)
  end)

  local function dev(img, extra, size)
    local config = { path = img }
    for k, v in pairs(extra or {}) do config[k] = v end
    return T.device { handler = 'qcow2', size = size or SIZE, config = config }
  end

  -- Write through the device and into a raw mirror at once.
  local function put(d, mirror, lba, data)
    local r = assert(d:exec(T.write16(lba, #data / 512), { data = data }))
    assert.equals(0, r.status)
    write_file(mirror, lba * 512, data)
  end

  local function get(d, lba, n)
    local r = assert(d:exec(T.read16(lba, n), { len = n * 512 }))
    assert.equals(0, r.status)
    return r.data
  end

  local function assert_clean(img)
    local s = check(img)
    assert.truthy(s:find('No errors were found', 1, true), s)
    assert.truthy(s:find('rc=0', 1, true), s)
    assert.falsy(s:find('leaked', 1, true), s)
  end

  for _, v in ipairs { { name = 'v3', opt = '' }, { name = 'v2', opt = '-o compat=0.10' },
    { name = 'v3 4k clusters, 1-bit refcounts', opt = '-o cluster_size=4096,refcount_bits=1' } } do
    it('writes a ' .. v.name .. ' image that qemu-img checks and reads back', function()
      local img, mirror, back = dir .. '/a.qcow2', dir .. '/mirror.raw', dir .. '/back.raw'
      assert(sh(('qemu-img create -f qcow2 %s %s %d'):format(v.opt, img, SIZE)))
      raw_file(mirror, SIZE)
      local d = assert(dev(img))
      put(d, mirror, 0, pattern(4 * 512, 1))
      put(d, mirror, 1000, pattern(3 * 512, 2))                 -- inside a cluster
      put(d, mirror, 2049, pattern(256 * KB, 3))                -- across clusters
      put(d, mirror, SIZE / 512 - 1, pattern(512, 4))          -- the last block
      put(d, mirror, 2, pattern(512, 5))                        -- rewrite in place
      assert.equals(read_file(mirror, 0, 8 * 512), get(d, 0, 8))
      assert.equals(read_file(mirror, 2040 * 512, 600 * 512), get(d, 2040, 600))
      assert.equals(0, assert(d:exec('35 00 00 00 00 00 00 00 00 00')).status)  -- SYNC CACHE
      d:close()
      assert_clean(img)
      to_raw(img, back)
      assert.is_true(same_file(mirror, back))
      -- and again after reopening
      d = assert(dev(img))
      assert.equals(read_file(mirror, 2040 * 512, 600 * 512), get(d, 2040, 600))
      d:close()
    end)
  end

  it('reads data written by qemu-io', function()
    if not have_qemu_io then return pending('no qemu-io') end
    local img = dir .. '/q.qcow2'
    assert(sh(('qemu-img create -f qcow2 %s %d'):format(img, SIZE)))
    assert(sh(("qemu-io -c 'write -P 0xab 0 64k' -c 'write -P 0xcd 1m 4k'"
      .. " -c 'write -z 2m 64k' %s"):format(img)))
    local d = assert(dev(img))
    assert.equals(('\171'):rep(64 * KB), get(d, 0, 128))
    assert.equals(('\0'):rep(512), get(d, 128, 1))
    assert.equals(('\0'):rep(512) .. ('\205'):rep(4 * KB) .. ('\0'):rep(512),
      get(d, 2047, 10))
    assert.equals(('\0'):rep(64 * KB), get(d, 4096, 128))
    d:close()
  end)

  it('reads converted and compressed images, and writes over compressed clusters', function()
    local raw, img, mirror, back = dir .. '/src.raw', dir .. '/c.qcow2', dir .. '/m.raw', dir .. '/b.raw'
    raw_file(raw, SIZE)
    write_file(raw, 0, pattern(512 * KB, 7))
    write_file(raw, 3 * MB + 100, pattern(64 * KB, 8))
    write_file(raw, 2 * MB, ('z'):rep(200 * KB))              -- compresses well
    assert(sh(('cp %s %s'):format(raw, mirror)))
    for _, flag in ipairs { '', '-c' } do
      assert(sh(('qemu-img convert %s -O qcow2 %s %s'):format(flag, raw, img)))
      local d = assert(dev(img))
      for _, lba in ipairs { 0, 300, 4096, 6144, 6143, 8000 } do
        assert.equals(read_file(raw, lba * 512, 128 * 512), get(d, lba, 128))
      end
      if flag == '-c' then
        put(d, mirror, 1, pattern(1024, 9))                     -- COW from compressed
        put(d, mirror, 4100, pattern(64 * KB, 10))
        d:close()
        assert_clean(img)
        to_raw(img, back)
        assert.is_true(same_file(mirror, back))
      else
        d:close()
      end
    end
  end)

  for _, case in ipairs { { 'qcow2', '' }, { 'raw', '' }, { 'qcow2', '-o compat=0.10' } } do
    local fmt, opt = case[1], case[2]
    it(('reads through an overlay %sto a %s base and writes to the overlay only')
      :format(opt ~= '' and '(v2) ' or '', fmt), function()
      local baseraw, base, top = dir .. '/base.raw', dir .. '/base.' .. fmt, dir .. '/top.qcow2'
      local mirror, back = dir .. '/m.raw', dir .. '/b.raw'
      raw_file(baseraw, SIZE)
      write_file(baseraw, 0, pattern(1 * MB, 11))
      write_file(baseraw, 3 * MB, pattern(1 * MB, 12))
      if fmt == 'qcow2' then
        assert(sh(('qemu-img convert -O qcow2 %s %s'):format(baseraw, base)))
      end
      local before = read_file(base)
      assert(sh(('cp %s %s'):format(baseraw, mirror)))
      -- relative backing name: resolved against the overlay's directory
      assert(sh(('cd %s && qemu-img create -f qcow2 %s -b base.%s -F %s top.qcow2')
        :format(dir, opt, fmt, fmt)))
      local d = assert(dev(top))
      assert.equals(read_file(baseraw, 0, 256 * KB), get(d, 0, 512))
      assert.equals(read_file(baseraw, 3 * MB - 4096, 64 * KB), get(d, 6144 - 8, 128))
      put(d, mirror, 3, pattern(2048, 13))                      -- partial: copy on write
      put(d, mirror, 6150, pattern(128 * KB, 14))
      assert.equals(read_file(mirror, 0, 64 * KB), get(d, 0, 128))
      -- UNMAP with a backing file: zeros, not the base's data
      local cdb, param = unmap_cdb(128, 256)
      assert.equals(0, assert(d:exec(cdb, { data = param })).status)
      write_file(mirror, 128 * 512, ('\0'):rep(256 * 512))
      assert.equals(('\0'):rep(256 * 512), get(d, 128, 256))
      d:close()
      assert.equals(before, read_file(base))                    -- base untouched
      assert_clean(top)
      local s = out(('qemu-img compare -f qcow2 -F raw %s %s'):format(top, mirror))
      assert.truthy(s:find('identical', 1, true), s)
      to_raw(top, back)
      assert.is_true(same_file(mirror, back))
    end)
  end

  it('takes a backing image from the options instead of the header', function()
    local a, b, top = dir .. '/a.raw', dir .. '/b.raw', dir .. '/top.qcow2'
    raw_file(a, SIZE); write_file(a, 0, ('a'):rep(4096))
    raw_file(b, SIZE); write_file(b, 0, ('b'):rep(4096))
    assert(sh(('qemu-img create -f qcow2 -b %s -F raw %s'):format(a, top)))
    local d = assert(dev(top))
    assert.equals(('a'):rep(512), get(d, 0, 1))
    d:close()
    d = assert(dev(top, { backing = b }))
    assert.equals(('b'):rep(512), get(d, 0, 1))
    d:close()
    os.remove(a)
    local err
    d, err = dev(top)
    assert.is_nil(d)
    assert.truthy(err:find('backing file', 1, true), err)
  end)

  it('unmaps: the range reads as zeros and the clusters are freed', function()
    local img, mirror, back = dir .. '/u.qcow2', dir .. '/m.raw', dir .. '/b.raw'
    assert(sh(('qemu-img create -f qcow2 %s %d'):format(img, SIZE)))
    raw_file(mirror, SIZE)
    local d = assert(dev(img))
    put(d, mirror, 0, pattern(1 * MB, 21))
    -- whole clusters (128..639) and partial ones at both ends
    local cdb, param = unmap_cdb(100, 600)
    assert.equals(0, assert(d:exec(cdb, { data = param })).status)
    write_file(mirror, 100 * 512, ('\0'):rep(600 * 512))
    assert.equals(read_file(mirror, 0, 1 * MB), get(d, 0, 2048))
    -- GET LBA STATUS: whole clusters 128..639 are deallocated
    local function lba_status(lba)
      local r = assert(d:exec('\158\18' .. T.be(lba, 8) .. T.be(24, 4) .. '\0\0', { len = 24 }))
      assert.equals(0, r.status)
      local function num(o, n)
        local v = 0
        for i = o + 1, o + n do v = v * 256 + r.data:byte(i) end
        return v
      end
      return num(8, 8), num(16, 4), r.data:byte(21) % 16
    end
    assert.same({ 0, 128, 0 }, { lba_status(0) })
    assert.same({ 128, 512, 1 }, { lba_status(128) })
    assert.same({ 640, 1408, 0 }, { lba_status(640) })
    -- freed clusters are reused by the next allocation
    put(d, mirror, 4096, pattern(64 * KB, 22))
    d:close()
    assert_clean(img)
    to_raw(img, back)
    assert.is_true(same_file(mirror, back))
  end)

  it('adds refcount blocks as the image grows; a full refcount table is NO SPACE', function()
    -- 512-byte clusters, 64-bit refcounts: a refcount block covers 32 KiB,
    -- the one-cluster refcount table 2 MiB.
    local img, mirror, back = dir .. '/g.qcow2', dir .. '/m.raw', dir .. '/b.raw'
    assert(sh(('qemu-img create -f qcow2 -o cluster_size=512,refcount_bits=64 %s %d')
      :format(img, SIZE)))
    raw_file(mirror, SIZE)
    local d = assert(dev(img))
    for i = 0, 7 do put(d, mirror, i * 256, pattern(64 * KB, 30 + i)) end
    assert.equals(read_file(mirror, 0, 512 * KB), get(d, 0, 1024))
    local failed
    for i = 8, 63 do
      local r = assert(d:exec(T.write16(i * 128, 128), { data = pattern(64 * KB, 40 + i) }))
      if r.status ~= 0 then failed = r; break end
      write_file(mirror, i * 128 * 512, pattern(64 * KB, 40 + i))
    end
    assert.truthy(failed, 'the refcount table should have filled up')
    assert.equals(0x7, failed.sense_key)                       -- DATA PROTECT
    assert.equals(0x27, failed.asc)                            -- space allocation failed
    d:close()
    -- the image is still sane (the failed write may have changed part of
    -- its range: compare only what succeeded)
    local s = check(img)
    assert.truthy(s:find('rc=0', 1, true), s)
    assert.falsy(s:find('ERROR', 1, true), s)
  end)

  it('does not write over metadata through a corrupt L2 entry', function()
    if not have_qemu_io then return pending('no qemu-io') end
    local img = dir .. '/x.qcow2'
    assert(sh(('qemu-img create -f qcow2 %s %d'):format(img, SIZE)))
    assert(sh(("qemu-io -c 'write -P 0x11 0 64k' %s"):format(img)))
    local function be(s, o)
      local v = 0
      for i = o + 1, o + 8 do v = v * 256 + s:byte(i) end
      return v
    end
    local l1_off = be(read_file(img, 40, 8), 0)
    local l2_off = be(read_file(img, l1_off, 8), 0) % 2 ^ 56
    -- L2[0] -> the L1 table, COPIED
    write_file(img, l2_off, '\128\0' .. T.be(l1_off, 6))
    local l1_before = read_file(img, l1_off, 512)
    local d = assert(dev(img))
    local r = assert(d:exec(T.write10(0, 1), { data = ('y'):rep(512) }))
    assert.equals(2, r.status)
    d:close()
    assert.equals(l1_before, read_file(img, l1_off, 512))
  end)

  for _, case in ipairs {
    { name = '64 KiB clusters', opt = '', base = false },
    { name = '512-byte clusters, 8-bit refcounts, over a base', opt = '-o cluster_size=512,refcount_bits=8', base = true },
    { name = 'v2 over a base', opt = '-o compat=0.10,cluster_size=4096', base = true },
  } do
    it('survives random writes and unmaps (' .. case.name .. ')', function()
      local size = 1 * MB
      local img, mirror, back = dir .. '/r.qcow2', dir .. '/m.raw', dir .. '/b.raw'
      raw_file(mirror, size)
      local bopt = ''
      if case.base then
        write_file(mirror, 0, pattern(size, 50))
        assert(sh(('qemu-img convert -O qcow2 %s %s/base.qcow2'):format(mirror, dir)))
        bopt = '-b base.qcow2 -F qcow2'
      end
      assert(sh(('cd %s && qemu-img create -f qcow2 %s %s r.qcow2 %d'):format(dir, case.opt, bopt, size)))
      local d = assert(dev(img, nil, size))
      local seed = 12345
      local function rnd(n)                                     -- deterministic
        seed = (seed * 1103515245 + 12345) % 2147483648
        return math.floor(seed / 65536) % n                 -- the high bits: the low ones cycle
      end
      local blocks = size / 512
      for i = 1, 150 do
        local op = rnd(10)
        local n = 1 + rnd(op >= 6 and op < 8 and 300 or 48)    -- UNMAP: whole clusters too
        local lba = rnd(blocks - n + 1)
        if op < 6 then
          put(d, mirror, lba, pattern(n * 512, 100 + i))
        elseif op < 8 then
          local cdb, param = unmap_cdb(lba, n)
          assert.equals(0, assert(d:exec(cdb, { data = param })).status)
          write_file(mirror, lba * 512, ('\0'):rep(n * 512))
        else
          assert.equals(read_file(mirror, lba * 512, n * 512), get(d, lba, n))
        end
      end
      assert.equals(read_file(mirror), get(d, 0, blocks))
      d:close()
      assert_clean(img)
      to_raw(img, back)
      assert.is_true(same_file(mirror, back))
    end)
  end

  -- Crash simulation: the image as it was at each fdatasync, plus any
  -- subset of the metadata writes made before the next one, must have no
  -- corruption (leaks are fine).  The handler's image code runs here,
  -- in the spec's Lua state, with a hook that logs writes and syncs.
  for _, case in ipairs {
    { name = 'v3', opt = '-o cluster_size=512,refcount_bits=16', base = false },
    { name = 'v3 over a base', opt = '-o cluster_size=512', base = true },
  } do
    it('leaves no corruption at any crash point (' .. case.name .. ')', function()
      local ffi = require 'ffi'
      local H = dofile((TL_LUA_DIR or 'lua') .. '/handlers/qcow2.lua')
      local size = 256 * KB
      local img = dir .. '/c.qcow2'
      local bopt = ''
      if case.base then
        local raw = dir .. '/base.raw'
        raw_file(raw, size)
        write_file(raw, 0, pattern(size, 60))
        assert(sh(('qemu-img convert -O qcow2 %s %s/base.qcow2'):format(raw, dir)))
        bopt = '-b base.qcow2 -F qcow2'
      end
      assert(sh(('cd %s && qemu-img create -f qcow2 %s %s c.qcow2 %d'):format(dir, case.opt, bopt, size)))
      local snaps, cur = {}, nil
      H._internals.set_hook(function(what, _, buf, len, off)
        if what == 'sync' then
          cur = { image = read_file(img), writes = {} }
          snaps[#snaps + 1] = cur
        elseif cur then
          cur.writes[#cur.writes + 1] = { off = tonumber(off), data = ffi.string(buf, len) }
        end
      end)
      local ok, err = pcall(function()
        local q = assert(H._internals.open(img, { format = 'qcow2', depth = 0 }))
        cur = { image = read_file(img), writes = {} }
        snaps[1] = cur
        -- zeros written (cmd nil) allocate like data: COW, L2 tables,
        -- refcount blocks; then discards free clusters again
        assert(q:write(nil, 0, 0, 3000))
        assert(q:write(nil, 0, 20 * KB + 100, 40 * KB))
        assert(q:discard(0, 8 * KB))
        assert(q:discard(30 * KB, 10 * KB + 7))
        assert(q:write(nil, 0, 1000, 64 * KB))
        assert(q:write(nil, 0, 200 * KB, 10 * KB))
        q:close()
      end)
      H._internals.set_hook(nil)
      assert(ok, err)
      assert.truthy(#snaps > 5, 'syncs: ' .. #snaps)
      local crash = dir .. '/crash.qcow2'
      local seed, checked = 7, 0
      local function rnd(n)
        seed = (seed * 1103515245 + 12345) % 2147483648
        return math.floor(seed / 65536) % n                 -- the high bits: the low ones cycle
      end
      for k, snap in ipairs(snaps) do
        -- none, all, and random subsets of the writes after this sync
        for variant = 1, 5 do
          local f = assert(io.open(crash, 'wb'))
          f:write(snap.image)
          f:close()
          for _, w in ipairs(snap.writes) do
            if variant == 2 or (variant >= 3 and rnd(2) == 0) then
              write_file(crash, w.off, w.data)
            end
          end
          if variant == 1 or #snap.writes > 0 then
            local s = out(('cd %s && qemu-img check crash.qcow2; echo "rc=$?"'):format(dir))
            assert.truthy(s:find('rc=0', 1, true) or s:find('rc=3', 1, true),
              ('crash after sync %d, variant %d:\n%s'):format(k, variant, s))
            checked = checked + 1
          end
        end
      end
      assert.truthy(checked > 10)
    end)
  end

  it('clears autoclear features (bitmaps) when it opens an image read-write', function()
    local img = dir .. '/bm.qcow2'
    assert(sh(('qemu-img create -f qcow2 %s %d'):format(img, SIZE)))
    if not sh(('qemu-img bitmap --add %s b0'):format(img)) then
      return pending('qemu-img has no bitmap command')
    end
    assert.equals('\0\0\0\0\0\0\0\1', read_file(img, 88, 8))
    local d = assert(dev(img, { read_only = true }))            -- read-only: untouched
    d:close()
    assert.equals('\0\0\0\0\0\0\0\1', read_file(img, 88, 8))
    d = assert(dev(img))
    d:exec(T.write10(0, 1), { data = ('b'):rep(512) })
    d:close()
    assert.equals(('\0'):rep(8), read_file(img, 88, 8))
    -- QEMU now ignores the bitmaps: their clusters are leaks, not errors
    local s = check(img)
    assert.truthy(s:find('rc=3', 1, true) or s:find('rc=0', 1, true), s)
    assert.falsy(s:find('ERROR', 1, true), s)
  end)

  it('never writes past the image size when the device grows', function()
    local img = dir .. '/s.qcow2'
    assert(sh(('qemu-img create -f qcow2 %s %d'):format(img, SIZE)))
    local d = assert(dev(img))
    assert.equals(0, d:resize(SIZE * 2))
    d:exec(T.read10(0, 1), { len = 512 })                      -- the unit attention
    local r = assert(d:exec(T.write10(SIZE / 512, 1), { data = ('w'):rep(512) }))
    assert.equals(2, r.status)
    assert.equals(0x5, r.sense_key)
    assert.equals(('\0'):rep(512), get(d, SIZE / 512 + 5, 1))
    d:close()
    assert_clean(img)
  end)

  it('refuses images it cannot handle, saying why', function()
    local img = dir .. '/r.qcow2'
    raw_file(img, SIZE)
    local d, err = dev(img)
    assert.is_nil(d)
    assert.truthy(err:find('bad magic', 1, true), err)

    assert(sh(('qemu-img create -f qcow2 %s %d'):format(img, SIZE)))
    write_file(img, 32, '\0\0\0\1')                            -- crypt_method AES
    d, err = dev(img)
    assert.is_nil(d)
    assert.truthy(err:find('encrypted', 1, true), err)

    assert(sh(('qemu-img create -f qcow2 %s %d'):format(img, SIZE)))
    write_file(img, 78, '\4')                                  -- incompatible bit 10
    d, err = dev(img)
    assert.is_nil(d)
    assert.truthy(err:find('incompatible feature bit(s) 10', 1, true), err)

    assert(sh(('qemu-img create -f qcow2 %s %d'):format(img, SIZE)))
    write_file(img, 79, '\1')                                  -- dirty
    d, err = dev(img)
    assert.is_nil(d)
    assert.truthy(err:find('dirty', 1, true), err)
    d = assert(dev(img, { read_only = true }))                 -- fine read-only
    local r = assert(d:exec(T.write10(0, 1), { data = ('x'):rep(512) }))
    assert.equals(2, r.status)
    d:close()

    assert(sh(('qemu-img create -f qcow2 %s %d'):format(img, SIZE)))
    assert(sh(('qemu-img create -f qcow2 -o extended_l2=on %s %d'):format(img, SIZE)))
    d, err = dev(img)
    assert.is_nil(d)
    assert.truthy(err:find('bit(s) 4 (extended L2 entries)', 1, true), err)

    assert(sh(('qemu-img create -f qcow2 %s %d'):format(img, SIZE)))
    d, err = dev(img, nil, SIZE * 2)
    assert.is_nil(d)
    assert.truthy(err:find('smaller than the device', 1, true), err)
  end)
end)
