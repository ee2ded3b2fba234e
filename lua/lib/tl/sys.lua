-- tl.sys: the few system calls handlers need, declared once.
local ffi = require 'ffi'

if not pcall(ffi.typeof, 'struct tl_sys_stat_marker') then
  ffi.cdef [[
    struct tl_sys_stat_marker { int unused; };
    void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset);
    int munmap(void *addr, size_t length);
    void *mremap(void *old, size_t old_size, size_t new_size, int flags, ...);
    int madvise(void *addr, size_t length, int advice);
    int open(const char *path, int flags, ...);
    int close(int fd);
    int fsync(int fd);
    int fdatasync(int fd);
    int ftruncate(int fd, int64_t length);
    int fallocate(int fd, int mode, int64_t offset, int64_t len);
    int64_t lseek(int fd, int64_t offset, int whence);
    int64_t pread(int fd, void *buf, size_t count, int64_t offset);
    int64_t pwrite(int fd, const void *buf, size_t count, int64_t offset);
    char *strerror(int errnum);
  ]]
end

local C = ffi.C
local M = {}

M.O_RDONLY, M.O_RDWR, M.O_CREAT, M.O_DIRECT, M.O_CLOEXEC = 0, 2, 64, 16384, 524288
M.FALLOC_FL_KEEP_SIZE, M.FALLOC_FL_PUNCH_HOLE = 1, 2
local PROT_RW, MAP_PRIVATE_ANON_NORESERVE = 3, 0x02 + 0x20 + 0x4000
local MADV_DONTNEED = 4
local MAP_FAILED = ffi.cast('void *', -1)

function M.errstr(e) return ffi.string(C.strerror(e or ffi.errno())) end

-- Anonymous memory that costs nothing until it is written.
function M.lazy_alloc(bytes)
  local p = C.mmap(nil, bytes, PROT_RW, MAP_PRIVATE_ANON_NORESERVE, -1, 0)
  if p == MAP_FAILED then return nil, M.errstr() end
  return ffi.cast('uint8_t *', p)
end

function M.free(p, bytes) C.munmap(p, bytes) end

-- Grow or shrink lazily allocated memory, keeping its contents.
function M.lazy_resize(p, old_bytes, new_bytes)
  local q = C.mremap(p, old_bytes, new_bytes, 1 --[[MREMAP_MAYMOVE]])
  if q == MAP_FAILED then return nil, M.errstr() end
  return ffi.cast('uint8_t *', q)
end

-- Give pages back (they read as zeros again); partial pages are zeroed.
function M.discard(base, off, len)
  local page = 4096
  local first = math.ceil(off / page) * page
  local last = math.floor((off + len) / page) * page
  if last > first then
    ffi.fill(base + off, first - off)
    C.madvise(base + first, last - first, MADV_DONTNEED)
    ffi.fill(base + last, off + len - last)
  else
    ffi.fill(base + off, len)
  end
end

M.C = C
return M
