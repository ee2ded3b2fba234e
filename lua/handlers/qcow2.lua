-- qcow2: a read-write qcow2 image (versions 2 and 3), with backing chains.
--
-- Reads walk L1 -> L2 -> data cluster; unallocated clusters come from the
-- backing image (raw or qcow2, read-only, recursively) or read as zeros;
-- zero clusters read as zeros; compressed clusters are inflated with zlib.
-- Writes allocate clusters (the lowest free cluster by refcount, which is
-- the end of the file when nothing is free), copy on write what a partial
-- write does not cover, and keep the metadata crash consistent: data and
-- refcounts are made durable (fdatasync) before an L2/L1 entry points at a
-- cluster, and an entry is dropped (durably) before its cluster's refcount
-- is decreased.  A crash can leak clusters, never corrupt the image.
-- See docs/qcow2.md.
local ffi = require 'ffi'
local C = require('tl.abi').C
local sys = require 'tl.sys'
local scsi = require 'scsi'

if not pcall(ffi.typeof, 'struct tl_qcow2_marker') then
  ffi.cdef [[
    struct tl_qcow2_marker { int unused; };
    typedef struct tl_qcow2_zstream {
      const uint8_t *next_in; unsigned int avail_in; unsigned long total_in;
      uint8_t *next_out; unsigned int avail_out; unsigned long total_out;
      const char *msg; void *state; void *zalloc; void *zfree; void *opaque;
      int data_type; unsigned long adler; unsigned long reserved;
    } tl_qcow2_zstream;
    int inflateInit2_(tl_qcow2_zstream *strm, int windowBits,
                      const char *version, int stream_size);
    int inflate(tl_qcow2_zstream *strm, int flush);
    int inflateEnd(tl_qcow2_zstream *strm);
    const char *zlibVersion(void);
  ]]
end

local floor, min, max = math.floor, math.min, math.max
local P32 = 4294967296
local MAGIC = 0x514649fb
local EXT_BACKING_FORMAT, EXT_FEATURE_TABLE = 0xe2792aca, 0x6803f857
local INCOMPAT_DIRTY, INCOMPAT_CORRUPT, INCOMPAT_COMPRESSION = 1, 2, 8
local KNOWN_INCOMPAT = INCOMPAT_DIRTY + INCOMPAT_CORRUPT + INCOMPAT_COMPRESSION
local MAX_CHAIN = 16

-- kinds of L2 entries
local UNALLOC, NORMAL, ZERO, COMPRESSED = 0, 1, 2, 3

local zlib
local function get_zlib()
  if zlib == nil then
    local ok, lib = pcall(ffi.load, 'z')
    if not ok then ok, lib = pcall(ffi.load, 'libz.so.1') end
    zlib = ok and lib or false
  end
  return zlib
end

-- Big-endian fields in byte buffers.
local function be32(p, o)
  return ((p[o] * 256 + p[o + 1]) * 256 + p[o + 2]) * 256 + p[o + 3]
end
local function be64(p, o) return be32(p, o) * P32 + be32(p, o + 4) end
local function put32(p, o, v)
  for i = 3, 0, -1 do p[o + i] = v % 256; v = floor(v / 256) end
end
local function put64(p, o, v)
  put32(p, o, floor(v / P32)); put32(p, o + 4, v % P32)
end

local function errno_msg() return sys.errstr() end

local function pread_full(fd, buf, len, off)
  local got = C.pread(fd, buf, len, off)
  if got < 0 then return nil, errno_msg() end
  got = tonumber(got)
  if got < len then ffi.fill(ffi.cast('uint8_t *', buf) + got, len - got) end
  return got
end

-- Specs only (crash simulation): called before each metadata write and
-- each fdatasync, in the spec's own Lua state (see _internals below).
local hook = nil

local function pwrite_full(fd, buf, len, off)
  if hook then hook('write', fd, buf, len, off) end
  local put = C.pwrite(fd, buf, len, off)
  if put ~= len then return nil, put < 0 and errno_msg() or 'short write' end
  return true
end

-- A read's destination: the command's data at `at` (cmd), or memory (ptr).
local function sink_fill(cmd, ptr, at, n)
  if cmd ~= nil then C.tl_ffi_fill(cmd, at, 0, n) else ffi.fill(ptr + at, n) end
end
local function sink_copy(cmd, ptr, at, src, n)
  if cmd ~= nil then C.tl_ffi_copy_to(cmd, at, src, n) else ffi.copy(ptr + at, src, n) end
end
local function sink_pread(cmd, ptr, at, n, fd, off)
  local got
  if cmd ~= nil then got = C.tl_ffi_pread(cmd, at, n, fd, off)
  else got = C.pread(fd, ptr + at, n, off) end
  if got < 0 then return nil, errno_msg() end
  got = tonumber(got)
  if got < n then sink_fill(cmd, ptr, at + got, n - got) end  -- past EOF
  return true
end

local function dirname(path)
  return path:match('^(.*)/[^/]*$') or '.'
end

---------------------------------------------------------------------------
-- Raw images (only as backing files)
---------------------------------------------------------------------------
local Raw = {}
Raw.__index = Raw

function Raw:read(cmd, ptr, at, off, len)
  local n = max(0, min(len, self.size - off))
  if n > 0 then
    local ok, err = sink_pread(cmd, ptr, at, n, self.fd, off)
    if not ok then return nil, err end
  end
  if n < len then sink_fill(cmd, ptr, at + n, len - n) end
  return true
end

function Raw:close() C.close(self.fd) end

---------------------------------------------------------------------------
-- qcow2 images
---------------------------------------------------------------------------
local Q = {}
Q.__index = Q

local open_image, sync

-- Parse and check the header; fills self.  Returns true or nil, err.
local function parse_header(self, h, hlen)
  local path = self.path
  if hlen < 72 or be32(h, 0) ~= MAGIC then
    return nil, ('%s: not a qcow2 image (bad magic)'):format(path)
  end
  local version = be32(h, 4)
  if version ~= 2 and version ~= 3 then
    return nil, ('%s: unsupported qcow2 version %d'):format(path, version)
  end
  self.version = version
  local cb = be32(h, 20)
  if cb < 9 or cb > 21 then
    return nil, ('%s: cluster_bits %d out of range 9..21'):format(path, cb)
  end
  self.cluster_bits, self.cs = cb, 2 ^ cb
  self.l2n = self.cs / 8
  local cs = self.cs
  self.size = be64(h, 24)
  if be32(h, 32) ~= 0 then
    return nil, ('%s: encrypted qcow2 images are not supported (crypt_method %d)')
      :format(path, be32(h, 32))
  end
  self.l1_size = be32(h, 36)
  self.l1_off = be64(h, 40)
  self.rt_off = be64(h, 48)
  self.rt_clusters = be32(h, 56)
  self.nb_snapshots = be32(h, 60)
  self.backing_off, self.backing_len = be64(h, 8), be32(h, 16)
  self.refcount_order, self.header_len = 4, 72
  self.incompat, self.compat, self.autoclear = 0, 0, 0
  if version == 3 then
    if hlen < 104 then return nil, path .. ': truncated v3 header' end
    -- 64-bit feature masks as two 32-bit halves (bit ops are 32-bit)
    self.incompat_hi, self.incompat = be32(h, 72), be32(h, 76)
    self.autoclear = be64(h, 88)
    self.refcount_order = be32(h, 96)
    self.header_len = be32(h, 100)
    if self.header_len < 104 or self.header_len % 8 ~= 0 or self.header_len > cs then
      return nil, ('%s: bad header_length %d'):format(path, self.header_len)
    end
    if self.refcount_order > 6 then
      return nil, ('%s: refcount_order %d > 6'):format(path, self.refcount_order)
    end
  end
  -- header extensions (feature names are needed for the messages below)
  local names = {}
  local o = self.header_len
  while o + 8 <= min(hlen, cs) do
    local typ, len = be32(h, o), be32(h, o + 4)
    if typ == 0 then break end
    if o + 8 + len > min(hlen, cs) then
      return nil, path .. ': header extension runs past the first cluster'
    end
    if typ == EXT_BACKING_FORMAT then
      self.backing_fmt = ffi.string(h + o + 8, len)
    elseif typ == EXT_FEATURE_TABLE then
      for e = 0, floor(len / 48) - 1 do
        local p = o + 8 + e * 48
        local name = ffi.string(h + p + 2, 46):gsub('%z.*$', '')
        names[h[p] .. ':' .. h[p + 1]] = name
      end
    end  -- others (bitmaps, encryption, external data...) are skipped
    o = o + 8 + floor((len + 7) / 8) * 8
  end
  if version == 3 then
    local unknown = {}
    for b = 0, 63 do
      local set
      if b < 32 then set = floor(self.incompat / 2 ^ b) % 2 == 1
      else set = floor(self.incompat_hi / 2 ^ (b - 32)) % 2 == 1 end
      if set and (b >= 32 or floor(KNOWN_INCOMPAT / 2 ^ b) % 2 == 0) then
        local name = names['0:' .. b]
        unknown[#unknown + 1] = name and ('%d (%s)'):format(b, name) or tostring(b)
      end
    end
    if #unknown > 0 then
      return nil, ('%s: unsupported incompatible feature bit(s) %s')
        :format(path, table.concat(unknown, ', '))
    end
    if floor(self.incompat / 8) % 2 == 1 then
      local ct = self.header_len > 104 and h[104] or 0
      if ct ~= 0 then
        return nil, ('%s: compression type %d is not supported (only zlib)')
          :format(path, ct)
      end
    end
  end
  -- tables
  local l2span = cs * self.l2n
  local need_l1 = math.ceil(self.size / l2span)
  if self.l1_size < need_l1 then
    return nil, ('%s: L1 table has %d entries, the size needs %d')
      :format(path, self.l1_size, need_l1)
  end
  if self.l1_size > 32 * 1024 * 1024 / 8 then
    return nil, ('%s: L1 table too large (%d entries)'):format(path, self.l1_size)
  end
  if self.l1_size > 0 and (self.l1_off == 0 or self.l1_off % cs ~= 0) then
    return nil, ('%s: L1 table offset %d is not cluster aligned'):format(path, self.l1_off)
  end
  if self.rt_off == 0 or self.rt_off % cs ~= 0 or self.rt_clusters == 0 then
    return nil, ('%s: bad refcount table (offset %d, %d clusters)')
      :format(path, self.rt_off, self.rt_clusters)
  end
  if self.rt_clusters * cs > 256 * 1024 * 1024 then
    return nil, path .. ': refcount table too large'
  end
  if self.backing_off ~= 0 then
    if self.backing_len == 0 or self.backing_len > 1023
      or self.backing_off + self.backing_len > min(hlen, cs) then
      return nil, path .. ': bad backing file name location'
    end
    self.backing_name = ffi.string(h + self.backing_off, self.backing_len)
  end
  self.dirty = floor(self.incompat % 2) == 1
  self.corrupt = floor(self.incompat / 2) % 2 == 1
  return true
end

-- opts: read_only, backing (override), depth
function Q.open(path, fd, opts)
  local self = setmetatable({ path = path, fd = fd, read_only = opts.read_only,
    l2cache = {}, l2n_cached = 0, tick = 0, rbcache = {}, rb_cached = 0 }, Q)
  local hbuf = ffi.new('uint8_t[?]', 2 * 1024 * 1024)
  local got, err = pread_full(fd, hbuf, 2 * 1024 * 1024, 0)
  if not got then return nil, ('%s: %s'):format(path, err) end
  local ok
  ok, err = parse_header(self, hbuf, got)
  if not ok then return nil, err end
  if not self.read_only then
    if self.dirty then
      return nil, ('%s: image is dirty (not cleanly closed with lazy refcounts);'
        .. ' run "qemu-img check -r all" or open it read_only'):format(path)
    end
    if self.corrupt then
      return nil, ('%s: image is marked corrupt; run "qemu-img check -r all"'
        .. ' or open it read_only'):format(path)
    end
    if self.nb_snapshots > 0 then
      return nil, ('%s: writing images with internal snapshots (%d) is not'
        .. ' supported; open it read_only'):format(path, self.nb_snapshots)
    end
  end
  local cs = self.cs
  -- L1 table, kept in memory as on disk (big-endian)
  self.l1 = ffi.new('uint8_t[?]', max(8, self.l1_size * 8))
  if self.l1_size > 0 then
    got, err = pread_full(fd, self.l1, self.l1_size * 8, self.l1_off)
    if not got then return nil, ('%s: reading L1: %s'):format(path, err) end
  end
  -- refcounts
  self.rbits = 2 ^ self.refcount_order
  self.rb_entries = cs * 8 / self.rbits
  self.rt_entries = self.rt_clusters * cs / 8
  if not self.read_only then
    self.rt = ffi.new('uint8_t[?]', self.rt_clusters * cs)
    got, err = pread_full(fd, self.rt, self.rt_clusters * cs, self.rt_off)
    if not got then return nil, ('%s: reading refcount table: %s'):format(path, err) end
  end
  self.free_hint = 0
  self.buf = ffi.new('uint8_t[?]', cs)        -- copy-on-write cluster
  self.zeros = ffi.new('uint8_t[?]', cs)
  self.zbuf = ffi.new('uint8_t[?]', 2 * cs)   -- compressed input
  self.zout = ffi.new('uint8_t[?]', cs)       -- last inflated cluster
  self.zout_key = nil
  -- backing file
  local bname = opts.backing or self.backing_name
  if bname and bname ~= '' then
    if (opts.depth or 0) >= MAX_CHAIN then
      return nil, path .. ': backing chain too long'
    end
    local bpath = bname
    if not opts.backing and bname:sub(1, 1) ~= '/' then
      bpath = dirname(path) .. '/' .. bname
    end
    local fmt = (not opts.backing) and self.backing_fmt or nil
    if fmt and fmt ~= 'raw' and fmt ~= 'qcow2' then
      return nil, ('%s: backing format %s is not supported'):format(path, fmt)
    end
    local b
    b, err = open_image(bpath, { read_only = true, format = fmt,
      depth = (opts.depth or 0) + 1 })
    if not b then return nil, ('%s: backing file: %s'):format(path, err) end
    self.backing = b
  end
  -- Autoclear features we do not maintain must be cleared when we write.
  if not self.read_only and self.version == 3 and self.autoclear ~= 0 then
    if not pwrite_full(fd, self.zeros, 8, 88) or not sync(self) then
      if self.backing then self.backing:close() end
      return nil, ('%s: cannot clear autoclear features: %s'):format(path, errno_msg())
    end
    self.autoclear = 0
  end
  return self
end

function Q:close()
  if self.backing then self.backing:close() end
  if not self.read_only then sync(self) end
  C.close(self.fd)
end

-- An L2 table by its offset: a small LRU cache, write-through.
local L2_CACHE = 32
function Q:l2_get(off)
  self.tick = self.tick + 1
  local e = self.l2cache[off]
  if e then e.t = self.tick; return e.buf end
  local buf
  if self.l2n_cached >= L2_CACHE then
    local old, ot
    for k, v in pairs(self.l2cache) do
      if not ot or v.t < ot then old, ot = k, v.t end
    end
    buf = self.l2cache[old].buf
    self.l2cache[old] = nil
    self.l2n_cached = self.l2n_cached - 1
  else
    buf = ffi.new('uint8_t[?]', self.cs)
  end
  local got, err = pread_full(self.fd, buf, self.cs, off)
  if not got then return nil, err end
  self.l2cache[off] = { buf = buf, t = self.tick }
  self.l2n_cached = self.l2n_cached + 1
  return buf
end

local function l1_entry(self, i)
  if i >= self.l1_size then return 0 end
  local hi, lo = be32(self.l1, i * 8), be32(self.l1, i * 8 + 4)
  return (hi % 0x1000000) * P32 + lo - lo % 512
end

-- What virtual cluster vc is: kind, host offset, raw hi/lo, copied flag.
function Q:lookup(vc)
  local l1i = floor(vc / self.l2n)
  local l2off = l1_entry(self, l1i)
  if l2off == 0 then return UNALLOC, 0, 0, 0, false end
  local l2, err = self:l2_get(l2off)
  if not l2 then return nil, err end
  local i = (vc % self.l2n) * 8
  local hi, lo = be32(l2, i), be32(l2, i + 4)
  local copied = hi >= 0x80000000
  local h = copied and hi - 0x80000000 or hi
  if h >= 0x40000000 then return COMPRESSED, 0, hi, lo, copied end
  local host = (h % 0x1000000) * P32 + lo - lo % 512
  if self.version == 3 and lo % 2 == 1 then return ZERO, host, hi, lo, copied end
  if host == 0 then return UNALLOC, 0, hi, lo, copied end
  return NORMAL, host, hi, lo, copied
end

-- A compressed cluster descriptor -> host offset, byte length.
function Q:compressed_range(hi, lo)
  local x = 62 - (self.cluster_bits - 8)
  local h30 = hi % 0x40000000
  local div = 2 ^ (x - 32)
  local off = (h30 % div) * P32 + lo
  local nsec = floor(h30 / div)
  return off, (nsec + 1) * 512 - off % 512
end

function Q:inflate(hi, lo)
  local off, len = self:compressed_range(hi, lo)
  if self.zout_key == off then return self.zout end
  local z = get_zlib()
  if not z then return nil, 'zlib (libz.so.1) is not available' end
  len = min(len, 2 * self.cs)
  local got, err = pread_full(self.fd, self.zbuf, len, off)
  if not got then return nil, err end
  local s = ffi.new('tl_qcow2_zstream')
  -- Raw deflate (no zlib header).  QEMU writes with a 4 KiB window
  -- (windowBits -12); inflating with the largest window accepts that too.
  if z.inflateInit2_(s, -15, z.zlibVersion(), ffi.sizeof(s)) ~= 0 then
    return nil, 'inflateInit2 failed'
  end
  s.next_in, s.avail_in = self.zbuf, got
  s.next_out, s.avail_out = self.zout, self.cs
  local r = z.inflate(s, 4)  -- Z_FINISH
  local full = s.avail_out == 0
  z.inflateEnd(s)
  -- A whole cluster must come out: Z_STREAM_END, or Z_BUF_ERROR / Z_OK
  -- when the output filled up before the end marker.
  if not (full and (r == 1 or r == 0 or r == -5)) then
    self.zout_key = nil
    return nil, ('corrupt compressed cluster at %d (zlib %d)'):format(off, r)
  end
  self.zout_key = off
  return self.zout
end

-- Virtual bytes [off, off+len) into the command's data at `at` or ptr+at.
function Q:read(cmd, ptr, at, off, len)
  local cs = self.cs
  if off + len > self.size then
    local inside = max(0, self.size - off)
    sink_fill(cmd, ptr, at + inside, len - inside)
    len = inside
  end
  while len > 0 do
    local vc = floor(off / cs)
    local o = off - vc * cs
    local n = min(len, cs - o)
    local kind, host, hi, lo = self:lookup(vc)
    if not kind then return nil, host end
    local ok, err = true, nil
    if kind == NORMAL then
      -- extend over clusters that follow on the host too
      while n < len do
        local k2, h2 = self:lookup(vc + 1)
        if k2 ~= NORMAL or h2 ~= host + (vc + 1 - floor(off / cs)) * cs then break end
        vc = vc + 1
        n = min(len, n + cs)
      end
      ok, err = sink_pread(cmd, ptr, at, n, self.fd, host + o)
    elseif kind == UNALLOC then
      if self.backing then ok, err = self.backing:read(cmd, ptr, at, off, n)
      else sink_fill(cmd, ptr, at, n) end
    elseif kind == ZERO then
      sink_fill(cmd, ptr, at, n)
    else
      local src
      src, err = self:inflate(hi, lo)
      if src then sink_copy(cmd, ptr, at, src + o, n) else ok = false end
    end
    if not ok then return nil, err end
    off, at, len = off + n, at + n, len - n
  end
  return true
end

---------------------------------------------------------------------------
-- Refcounts
---------------------------------------------------------------------------
local RB_CACHE = 64

function Q:rt_entry(t)
  local hi, lo = be32(self.rt, t * 8), be32(self.rt, t * 8 + 4)
  return hi * P32 + lo - lo % 512
end

function Q:refblock(t)
  local e = self.rbcache[t]
  if e then return e end
  local off = self:rt_entry(t)
  if off == 0 then return nil end
  if self.rb_cached >= RB_CACHE then self.rbcache, self.rb_cached = {}, 0 end
  local buf = ffi.new('uint8_t[?]', self.cs)
  local got, err = pread_full(self.fd, buf, self.cs, off)
  if not got then error(('%s: reading refcount block: %s'):format(self.path, err)) end
  e = { buf = buf, off = off }
  self.rbcache[t] = e
  self.rb_cached = self.rb_cached + 1
  return e
end

-- Refcount i of a refcount block buffer; and where its bytes are.
function Q:rc_get(buf, i)
  local rb = self.rbits
  if rb >= 8 then
    local w = rb / 8
    local v = 0
    for k = 0, w - 1 do v = v * 256 + buf[i * w + k] end
    return v
  end
  local bitpos = i * rb
  return floor(buf[floor(bitpos / 8)] / 2 ^ (bitpos % 8)) % 2 ^ rb
end

-- Set refcount i; returns the byte offset and length that changed.
function Q:rc_set(buf, i, v)
  local rb = self.rbits
  if v < 0 or v >= 2 ^ rb then error(self.path .. ': refcount overflow') end
  if rb >= 8 then
    local w = rb / 8
    for k = w - 1, 0, -1 do buf[i * w + k] = v % 256; v = floor(v / 256) end
    return i * w, w
  end
  local bitpos = i * rb
  local byte = floor(bitpos / 8)
  local sh = 2 ^ (bitpos % 8)
  local old = floor(buf[byte] / sh) % 2 ^ rb
  buf[byte] = buf[byte] + (v - old) * sh
  return byte, 1
end

-- Add d to the refcount of host cluster c (written through, not synced).
function Q:rc_add(c, d)
  local t = floor(c / self.rb_entries)
  local e = t < self.rt_entries and self:refblock(t)
  if not e then error(('%s: cluster %d has no refcount block'):format(self.path, c)) end
  local i = c % self.rb_entries
  local v = self:rc_get(e.buf, i) + d
  local bo, bl = self:rc_set(e.buf, i, v)
  local ok, err = pwrite_full(self.fd, e.buf + bo, bl, e.off + bo)
  if not ok then return nil, err end
  return v
end

-- The first cluster at or after c with refcount 0.
function Q:find_free(c)
  local rbe = self.rb_entries
  while true do
    local t = floor(c / rbe)
    if t >= self.rt_entries then return c end
    local e = self:refblock(t)
    if not e then return c end
    for i = c % rbe, rbe - 1 do
      if self:rc_get(e.buf, i) == 0 then return t * rbe + i end
    end
    c = (t + 1) * rbe
  end
end

-- Allocate one host cluster with refcount 1 (refcount written, not
-- synced: the caller syncs before anything points at the cluster).
function Q:alloc()
  local cs, rbe = self.cs, self.rb_entries
  while true do
    local c = self:find_free(self.free_hint)
    local t = floor(c / rbe)
    if t >= self.rt_entries then
      return nil, ('%s: the refcount table is full (growing it would mean moving'
        .. ' it, which is not supported); the image cannot grow'):format(self.path)
    end
    local e = self:refblock(t)
    if e then
      local ok, err = self:rc_add(c, 1)
      if not ok then return nil, err end
      self.free_hint = c + 1
      return c * cs
    end
    -- No refcount block covers c: make one at c, counting itself.
    local buf = ffi.new('uint8_t[?]', cs)
    self:rc_set(buf, c % rbe, 1)
    local ok, err = pwrite_full(self.fd, buf, cs, c * cs)
    if ok then ok, err = sync(self) end
    if not ok then return nil, err end
    put64(self.rt, t * 8, c * cs)
    ok, err = pwrite_full(self.fd, self.rt + t * 8, 8, self.rt_off + t * 8)
    if not ok then return nil, err end
    if self.rb_cached >= RB_CACHE then self.rbcache, self.rb_cached = {}, 0 end
    self.rbcache[t] = { buf = buf, off = c * cs }
    self.rb_cached = self.rb_cached + 1
    self.free_hint = c + 1
  end
end

-- Drop one reference to host cluster c; punch it out when it is free.
function Q:unref(c)
  local v, err = self:rc_add(c, -1)
  if not v then return nil, err end
  if v == 0 then
    if c < self.free_hint then self.free_hint = c end
    local mode = sys.FALLOC_FL_PUNCH_HOLE + sys.FALLOC_FL_KEEP_SIZE
    C.fallocate(self.fd, mode, c * self.cs, self.cs)  -- best effort
  end
  return true
end

-- Release what an old L2 entry held (after the new entry is durable).
function Q:release(kind, host, hi, lo)
  local cs = self.cs
  if kind == COMPRESSED then
    local off, len = self:compressed_range(hi, lo)
    for c = floor(off / cs), floor((off + len - 1) / cs) do
      local ok, err = self:unref(c)
      if not ok then return nil, err end
    end
    if self.zout_key == off then self.zout_key = nil end
    return true
  end
  if host ~= 0 then return self:unref(floor(host / cs)) end
  return true
end

sync = function(self)
  if hook then hook('sync', self.fd) end
  if C.fdatasync(self.fd) ~= 0 then return nil, errno_msg() end
  return true
end

---------------------------------------------------------------------------
-- Writes
---------------------------------------------------------------------------

-- The L2 table for L1 index l1i, allocated (empty, durable) if missing.
function Q:ensure_l2(l1i)
  local off = l1_entry(self, l1i)
  if off ~= 0 then return off end
  local new, err = self:alloc()
  if not new then return nil, err end
  local ok
  ok, err = pwrite_full(self.fd, self.zeros, self.cs, new)
  if ok then ok, err = sync(self) end     -- refcount + empty table durable
  if not ok then return nil, err end
  put32(self.l1, l1i * 8, 0x80000000 + floor(new / P32))
  put32(self.l1, l1i * 8 + 4, new % P32)
  ok, err = pwrite_full(self.fd, self.l1 + l1i * 8, 8, self.l1_off + l1i * 8)
  if not ok then return nil, err end
  local l2 = self.l2cache[new]
  if l2 then ffi.fill(l2.buf, self.cs) end
  return new
end

-- Refuse to write over the header, the L1 table or the refcount table
-- through a corrupt L1/L2 entry.
function Q:check_meta(off, len, what)
  local function hit(a, n) return off < a + n and a < off + len end
  if hit(0, self.cs) or hit(self.l1_off, self.l1_size * 8)
    or hit(self.rt_off, self.rt_clusters * self.cs) then
    return nil, ('%s: corrupt image: %s at %d overlaps the header or a'
      .. ' metadata table'):format(self.path, what, off)
  end
  return true
end

-- Point the L2 entry of vc at (hi, lo), written through.
function Q:set_l2(vc, hi, lo)
  local l2off, err = self:ensure_l2(floor(vc / self.l2n))
  if not l2off then return nil, err end
  local l2
  l2, err = self:check_meta(l2off, self.cs, 'an L2 table')
  if l2 then l2, err = self:l2_get(l2off) end
  if not l2 then return nil, err end
  local i = (vc % self.l2n) * 8
  put32(l2, i, hi); put32(l2, i + 4, lo)
  return pwrite_full(self.fd, l2 + i, 8, l2off + i)
end

-- Write n bytes at offset o of virtual cluster vc from the command's data
-- at `at` (or zeros when cmd is nil).  A cluster that is ours alone is
-- written in place; otherwise a new cluster is allocated and filled (with
-- what a partial write does not cover copied from the current contents),
-- and the work left for later is queued on `batch`: the L2 entry to set
-- once the data and refcount are durable, and what the old entry held.
function Q:write_cluster(cmd, at, vc, o, n, batch)
  local cs, fd = self.cs, self.fd
  local kind, host, hi, lo, copied = self:lookup(vc)
  if not kind then return nil, host end
  if kind == NORMAL and copied then      -- ours alone: in place
    local ok, err = self:check_meta(host, cs, 'a data cluster')
    if not ok then return nil, err end
    local put
    if cmd ~= nil then put = C.tl_ffi_pwrite(cmd, at, n, fd, host + o)
    else put = C.pwrite(fd, self.zeros, n, host + o) end
    if put ~= n then return nil, put < 0 and errno_msg() or 'short write' end
    return true
  end
  local l2off, err = self:ensure_l2(floor(vc / self.l2n))
  if not l2off then return nil, err end
  local new
  new, err = self:alloc()
  if not new then return nil, err end
  local ok
  if n == cs then
    local put
    if cmd ~= nil then put = C.tl_ffi_pwrite(cmd, at, n, fd, new)
    else put = C.pwrite(fd, self.zeros, n, new) end
    if put ~= n then ok, err = nil, put < 0 and errno_msg() or 'short write'
    else ok = true end
  else
    ok, err = self:read(nil, self.buf, 0, vc * cs, cs)   -- what is there now
    if ok then
      if cmd ~= nil then C.tl_ffi_copy_from(cmd, at, self.buf + o, n)
      else ffi.fill(self.buf + o, n) end
      ok, err = pwrite_full(fd, self.buf, cs, new)
    end
  end
  if not ok then return nil, err end     -- the new cluster leaks: harmless
  batch[#batch + 1] = { vc = vc, hi = 0x80000000 + floor(new / P32), lo = new % P32,
    old = kind ~= UNALLOC and (host ~= 0 or kind == COMPRESSED)
      and { kind, host, hi, lo } or nil }
  return true
end

-- The second half of a batch of cluster updates:
--   1. fdatasync: new data clusters and their refcounts are durable;
--   2. set the L2 entries (written through);
--   3. fdatasync: the old entries are gone for good;
--   4. drop the references the old entries held.
function Q:commit(batch)
  if #batch == 0 then return true end
  local ok, err = sync(self)
  if not ok then return nil, err end
  local frees = false
  for _, u in ipairs(batch) do
    ok, err = self:set_l2(u.vc, u.hi, u.lo)
    if not ok then return nil, err end
    if u.old then frees = true end
  end
  if not frees then return true end
  ok, err = sync(self)
  if not ok then return nil, err end
  for _, u in ipairs(batch) do
    if u.old then
      ok, err = self:release(u.old[1], u.old[2], u.old[3], u.old[4])
      if not ok then return nil, err end
    end
  end
  return true
end

function Q:write(cmd, at, off, len)
  local cs = self.cs
  local batch = {}
  local ok, err = true, nil
  while len > 0 do
    local vc = floor(off / cs)
    local o = off - vc * cs
    local n = min(len, cs - o)
    ok, err = self:write_cluster(cmd, at, vc, o, n, batch)
    if not ok then break end
    off, at, len = off + n, at + n, len - n
  end
  -- link what was written even when a later cluster failed
  local cok, cerr = self:commit(batch)
  if not ok then return nil, err end
  return cok, cerr
end

-- Forget [off, off+len): it reads as zeros afterwards.
function Q:discard(off, len)
  local cs = self.cs
  local batch = {}
  local ok, err = true, nil
  while len > 0 do
    local vc = floor(off / cs)
    local o = off - vc * cs
    local n = min(len, cs - o)
    local whole = o == 0 and (n == cs or off + n >= self.size)
    local kind, host, hi, lo = self:lookup(vc)
    if not kind then ok, err = nil, host; break end
    if kind == ZERO and host == 0 then
      -- already zeros, nothing held
    elseif kind == UNALLOC and not self.backing then
      -- already zeros
    elseif not whole or (self.backing and self.version == 2) then
      ok, err = self:write_cluster(nil, 0, vc, o, n, batch)   -- write zeros
    else
      -- the zero flag hides the backing file; without one, unallocated
      -- reads as zeros.  Nothing new to make durable first.
      ok, err = self:set_l2(vc, 0, self.backing and 1 or 0)
      if ok and (host ~= 0 or kind == COMPRESSED) then
        batch[#batch + 1] = { old = { kind, host, hi, lo } }
      end
    end
    if not ok then break end
    off, len = off + n, len - n
  end
  -- entries already set have vc == nil: commit only syncs and releases
  local cok, cerr = true, nil
  if #batch > 0 then
    local sets = {}
    for _, u in ipairs(batch) do if u.vc then sets[#sets + 1] = u end end
    cok, cerr = self:commit(sets)
    if cok then
      cok, cerr = sync(self)
      for _, u in ipairs(batch) do
        if cok and u.old and not u.vc then
          cok, cerr = self:release(u.old[1], u.old[2], u.old[3], u.old[4])
        end
      end
    end
  end
  if not ok then return nil, err end
  return cok, cerr
end

function Q:flush() return sync(self) end

-- Is virtual cluster vc deallocated (reads as zeros without holding
-- anything)?  For GET LBA STATUS.  Unallocated with a backing file reads
-- the backing file's data: mapped.
function Q:deallocated(vc)
  local kind = self:lookup(vc)
  return kind == ZERO or (kind == UNALLOC and not self.backing)
end

-- Blocks from lba on with the same state, at most max_blocks: count, state
-- (0 mapped, 1 deallocated).
function Q:lba_status(bs, lba, max_blocks)
  local cs = self.cs
  if cs < bs then return max_blocks, 0 end  -- a block spans clusters
  local off = lba * bs
  local vc = floor(off / cs)
  local dealloc = self:deallocated(vc)
  local limit = off + max_blocks * bs
  local last = vc
  while (last + 1) * cs < limit and last - vc < 65536
    and self:deallocated(last + 1) == dealloc do
    last = last + 1
  end
  local stop = min((last + 1) * cs, limit)
  local count = floor((stop - off) / bs)
  if count < 1 then count = 1 end
  return count, dealloc and 1 or 0
end

-- Open path as a qcow2 image, or (as a backing file) raw.
open_image = function(path, opts)
  local flags = (opts.read_only and sys.O_RDONLY or sys.O_RDWR) + sys.O_CLOEXEC
  local fd = C.open(path, flags)
  if fd < 0 then return nil, ('cannot open %s: %s'):format(path, errno_msg()) end
  local m = ffi.new('uint8_t[4]')
  local got = C.pread(fd, m, 4, 0)
  local is_qcow2 = got == 4 and be32(m, 0) == MAGIC
  local fmt = opts.format
  if fmt == nil and opts.depth and opts.depth > 0 then
    fmt = is_qcow2 and 'qcow2' or 'raw'   -- probe backing files only
  end
  if fmt == 'raw' then
    return setmetatable({ fd = fd, path = path, size = tonumber(C.lseek(fd, 0, 2)) }, Raw)
  end
  local img, err = Q.open(path, fd, opts)
  if not img then C.close(fd) end
  return img, err
end

local function fail_for(err, default)
  if type(err) == 'string' and (err:find('No space', 1, true)
    or err:find('refcount table is full', 1, true)) then
    return scsi.sense.NO_SPACE
  end
  return default
end

return {
  description = 'qcow2 image (v2/v3): backing chains, compressed reads, thin writes',
  cfgstring_key = 'path',
  unmap_zeroes = true,
  schema = {
    path = { type = 'string', required = true, doc = 'qcow2 image file' },
    backing = { type = 'string',
      doc = 'backing image to use instead of the one named in the header' },
    read_only = { type = 'boolean', default = false,
      doc = 'open the image read-only (writes fail with DATA PROTECT)' },
  },

  open = function(dev, conf)
    local img, err = open_image(conf.path, { read_only = conf.read_only,
      backing = conf.backing, format = 'qcow2', depth = 0 })
    if not img then return nil, err end
    local want = tonumber(dev.info.size)
    if want > img.size then
      img:close()
      return nil, ('%s: the image is %d bytes, smaller than the device (%d)')
        :format(conf.path, img.size, want)
    end
    return { img = img }
  end,

  close = function(dev) dev.state.img:close() end,

  read = function(dev, cmd, offset, length, at)
    local ok, err = dev.state.img:read(cmd, nil, at, offset, length)
    if not ok then
      dev:log('err', 'qcow2 read at %d: %s', offset, tostring(err))
      return nil, scsi.sense.READ_ERROR
    end
  end,

  write = function(dev, cmd, offset, length, at)
    local img = dev.state.img
    if img.read_only then return nil, scsi.sense.WRITE_PROTECTED end
    -- a device grown (resized) past the image: the L1 table ends there
    if offset + length > img.size then return nil, scsi.sense.LBA_OUT_OF_RANGE end
    local ok, err = img:write(cmd, at, offset, length)
    if not ok then
      dev:log('err', 'qcow2 write at %d: %s', offset, tostring(err))
      return nil, fail_for(err, scsi.sense.WRITE_ERROR)
    end
  end,

  flush = function(dev)
    if not dev.state.img:flush() then return nil, scsi.sense.WRITE_ERROR end
  end,

  -- for specs that drive images without a device (crash simulation)
  _internals = { open = function(path, opts) return open_image(path, opts) end,
    set_hook = function(h) hook = h end },

  lba_status = function(dev, lba, max_blocks)
    return dev.state.img:lba_status(dev.info.block_size, lba, max_blocks)
  end,

  unmap = function(dev, cmd, offset, length)
    local img = dev.state.img
    if img.read_only then return nil, scsi.sense.WRITE_PROTECTED end
    if offset >= img.size then return end
    local ok, err = img:discard(offset, min(length, img.size - offset))
    if not ok then
      dev:log('err', 'qcow2 unmap at %d: %s', offset, tostring(err))
      return nil, fail_for(err, scsi.sense.MEDIUM_ERROR)
    end
  end,
}
