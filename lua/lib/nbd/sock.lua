-- nbd.sock: non-blocking stream sockets (TCP and Unix) for the nbd handler.
--
-- The C library's calls are declared under names of our own (__asm__
-- aliases), so nothing here can clash with another module's ffi.cdef of
-- socket() or connect().  Addresses are resolved once, when the device
-- opens (getaddrinfo may block); reconnecting reuses the bytes.
local ffi = require 'ffi'

if not pcall(ffi.typeof, 'struct tl_nbd_iovec') then
  ffi.cdef [[
    struct tl_nbd_iovec { void *base; size_t len; };
    struct tl_nbd_msghdr {
      void *name; uint32_t namelen;
      struct tl_nbd_iovec *iov; size_t iovlen;
      void *control; size_t controllen; int flags;
    };
    struct tl_nbd_addrinfo {
      int flags; int family; int socktype; int protocol;
      uint32_t addrlen; void *addr; char *canonname;
      struct tl_nbd_addrinfo *next;
    };
    struct tl_nbd_pollfd { int fd; short events; short revents; };
    int tl_nbd_socket(int domain, int type, int protocol) __asm__("socket");
    int tl_nbd_connect(int fd, const void *addr, uint32_t len) __asm__("connect");
    int tl_nbd_getsockopt(int fd, int level, int name, void *val, uint32_t *len) __asm__("getsockopt");
    int tl_nbd_setsockopt(int fd, int level, int name, const void *val, uint32_t len) __asm__("setsockopt");
    int64_t tl_nbd_sendmsg(int fd, const struct tl_nbd_msghdr *msg, int flags) __asm__("sendmsg");
    int64_t tl_nbd_send(int fd, const void *buf, size_t len, int flags) __asm__("send");
    int64_t tl_nbd_recv(int fd, void *buf, size_t len, int flags) __asm__("recv");
    int64_t tl_nbd_readv(int fd, const struct tl_nbd_iovec *iov, int cnt) __asm__("readv");
    int tl_nbd_poll(struct tl_nbd_pollfd *fds, unsigned long n, int timeout) __asm__("poll");
    int tl_nbd_close(int fd) __asm__("close");
    int tl_nbd_getaddrinfo(const char *node, const char *service,
      const struct tl_nbd_addrinfo *hints, struct tl_nbd_addrinfo **res) __asm__("getaddrinfo");
    void tl_nbd_freeaddrinfo(struct tl_nbd_addrinfo *res) __asm__("freeaddrinfo");
    const char *tl_nbd_gai_strerror(int err) __asm__("gai_strerror");
    char *tl_nbd_strerror(int err) __asm__("strerror");
  ]]
end

local C = ffi.C
local M = {}

local AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10
local SOCK_STREAM, SOCK_NONBLOCK, SOCK_CLOEXEC = 1, 2048, 524288
local SOL_SOCKET, SO_ERROR = 1, 4
local IPPROTO_TCP, TCP_NODELAY = 6, 1
M.EAGAIN, M.EINPROGRESS, M.EINTR = 11, 115, 4
M.MSG_NOSIGNAL, M.MSG_DONTWAIT = 0x4000, 0x40
M.POLLIN, M.POLLOUT = 1, 4

function M.errstr(e) return ffi.string(C.tl_nbd_strerror(e or ffi.errno())) end

-- An address to connect to: { family, bytes, len, text }.  path: a Unix
-- socket; otherwise host and port (names are resolved now, once).
function M.resolve(host, port, path)
  if path then
    if #path >= 108 then return nil, 'socket path too long: ' .. path end
    local sa = ffi.new('uint8_t[110]')
    sa[0] = AF_UNIX
    ffi.copy(sa + 2, path)
    return { family = AF_UNIX, bytes = sa, len = 2 + #path + 1, text = 'unix:' .. path }
  end
  local hints = ffi.new('struct tl_nbd_addrinfo')
  hints.socktype = SOCK_STREAM
  local res = ffi.new('struct tl_nbd_addrinfo *[1]')
  local rc = C.tl_nbd_getaddrinfo(host, tostring(port), hints, res)
  if rc ~= 0 then
    return nil, ('cannot resolve %s: %s'):format(host, ffi.string(C.tl_nbd_gai_strerror(rc)))
  end
  local ai = res[0]
  local sa = ffi.new('uint8_t[?]', ai.addrlen)
  ffi.copy(sa, ai.addr, ai.addrlen)
  local addr = { family = ai.family, bytes = sa, len = ai.addrlen,
    text = ('%s:%d'):format(host, port) }
  C.tl_nbd_freeaddrinfo(ai)
  return addr
end

-- Start a non-blocking connect.  Returns fd, done (false: wait until the
-- fd is writable, then call connect_result), or nil and the reason.
function M.connect(addr)
  local fd = C.tl_nbd_socket(addr.family, SOCK_STREAM + SOCK_NONBLOCK + SOCK_CLOEXEC, 0)
  if fd < 0 then return nil, 'socket: ' .. M.errstr() end
  if addr.family ~= AF_UNIX then
    -- requests are small and latency matters more than packet count
    local one = ffi.new('int[1]', 1)
    C.tl_nbd_setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, one, 4)
  end
  if C.tl_nbd_connect(fd, addr.bytes, addr.len) == 0 then return fd, true end
  local e = ffi.errno()
  if e == M.EINPROGRESS or e == M.EAGAIN then return fd, false end
  C.tl_nbd_close(fd)
  return nil, ('connect %s: %s'):format(addr.text, M.errstr(e))
end

-- The outcome of a connect that was in progress: true or nil, reason.
function M.connect_result(fd, addr)
  local v, len = ffi.new('int[1]'), ffi.new('uint32_t[1]', 4)
  if C.tl_nbd_getsockopt(fd, SOL_SOCKET, SO_ERROR, v, len) ~= 0 then
    return nil, 'getsockopt: ' .. M.errstr()
  end
  if v[0] ~= 0 then return nil, ('connect %s: %s'):format(addr.text, M.errstr(v[0])) end
  return true
end

-- Wait for fd to become readable (want 'r') or writable ('w'): for the
-- first handshake only, which runs before the device serves anything.
local pfd = ffi.new('struct tl_nbd_pollfd[1]')
function M.wait(fd, want, timeout_ms)
  pfd[0].fd = fd
  pfd[0].events = want == 'r' and M.POLLIN or M.POLLOUT
  pfd[0].revents = 0
  local rc = C.tl_nbd_poll(pfd, 1, timeout_ms)
  return rc > 0
end

M.close = C.tl_nbd_close
M.recv = C.tl_nbd_recv
M.send = C.tl_nbd_send
M.readv = C.tl_nbd_readv
M.sendmsg = C.tl_nbd_sendmsg
return M
