#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpora of the fuzz harnesses.

    tests/fuzz/make_seeds.py [OUTDIR]      (default: tests/fuzz/corpus, and
                                            the ring reproducers in
                                            tests/fuzz/regressions/ring)

corpus/ring/*: programs for fuzz_ring (see the format at the top of
fuzz_ring.c): real entry shapes (commands of every size, PAD before the
ring's end, TMRs, unknown opcodes), the malformations the kernel could send,
and the daemon completing in and out of order.

corpus/cdb/*: programs for fuzz_cdb (format at the top of fuzz_cdb.c): a
real CDB for every SBC-3/SPC-4 command the library implements, several with
parameter data, and sequences (write then read back, COMPARE AND WRITE,
UNMAP, MODE SELECT to descriptor sense, EXTENDED COPY, TMRs in a batch).

The files are committed; rerun this after changing an input format.
"""
import os
import struct
import sys

# ---------------------------------------------------------------- fuzz_ring

(OP_SUBMIT, OP_CORRUPT, OP_PUBLISH, OP_INJECT, OP_TMR, OP_TMR_RAW, OP_PAD,
 OP_HEAD, OP_FETCH, OP_COMPLETE, OP_COMPLETE_ALL, OP_KICK, OP_REAP, OP_RESET,
 OP_STRAY, OP_POKE, OP_REATTACH) = range(17)

DIR_NONE, DIR_OUT, DIR_IN = 0, 1, 2
PUBLISH = 4
CAP_OOOC, CAP_READ_LEN, CAP_TMR, CAP_KEEP_BUF = 1, 2, 4, 8


class Ring:
    """Builds one fuzz_ring program."""

    def __init__(self, ring=0, cyclic=False, scatter=False, block=0, caps=3,
                 data=2, seed=7):
        alloc = 15 if cyclic else 14 if scatter else 0
        geo = ring | alloc << 2 | block << 6
        self.b = bytearray([geo, caps, data, seed])

    def submit(self, kind, length=0, direction=DIR_NONE, publish=True,
               cdb=b''):
        self.b += bytes([OP_SUBMIT, kind,
                         direction | (PUBLISH if publish else 0)])
        self.b += struct.pack('<H', length)
        if kind % 8 >= 6:
            self.b += cdb.ljust(1 + kind % 32, b'\0')[:1 + kind % 32]
        return self

    def corrupt(self, field, value, mode=0, which=0):
        self.b += bytes([OP_CORRUPT, which, field, mode])
        self.b += struct.pack('<Q', value & (2**64 - 1))
        return self

    def publish(self):
        self.b.append(OP_PUBLISH)
        return self

    def inject(self, body, raw_len_op=None, op=3, length=None):
        # length >= 1024: only the first 64 bytes of body are sent.
        mode = 1 if raw_len_op is not None else 0
        if length is None:
            length = len(body)
            if raw_len_op is not None and (raw_len_op & ~7) >= 1024:
                length = raw_len_op & ~7
        self.b += bytes([OP_INJECT]) + struct.pack('<H', length)
        self.b += bytes([mode])
        self.b += struct.pack('<I', raw_len_op if mode else op)
        self.b += body[:length] if length < 1024 else body.ljust(64, b'\0')[:64]
        return self

    def tmr(self, ttype, picks):
        self.b += bytes([OP_TMR, ttype, len(picks)]) + bytes(picks)
        return self

    def tmr_raw(self, nids, cmd_cnt, ttype=1):
        self.b += bytes([OP_TMR_RAW, nids]) + struct.pack('<I', cmd_cnt)
        self.b += bytes([ttype])
        return self

    def pad(self, mode, length):
        self.b += bytes([OP_PAD, mode]) + struct.pack('<H', length)
        return self

    def head(self, mode, value=0):
        self.b += bytes([OP_HEAD, mode]) + struct.pack('<I', value)
        return self

    def fetch(self, n=0):
        self.b += bytes([OP_FETCH, n])
        return self

    def complete(self, which=0, status=0, rl=0, key=5, asc=0x24, ascq=0,
                 slen=0):
        self.b += bytes([OP_COMPLETE, which, status, rl, key, asc, ascq, slen])
        return self

    def complete_all(self, seed=0):
        self.b += bytes([OP_COMPLETE_ALL, seed])
        return self

    def kick(self):
        self.b.append(OP_KICK)
        return self

    def reap(self):
        self.b.append(OP_REAP)
        return self

    def reset(self):
        self.b.append(OP_RESET)
        return self

    def stray(self, which):
        self.b += bytes([OP_STRAY, which])
        return self

    def poke(self, mode, where, value):
        self.b += bytes([OP_POKE, mode]) + struct.pack('<HI', where, value)
        return self

    def reattach(self, field, value):
        self.b += bytes([OP_REATTACH, field]) + struct.pack('<I', value)
        return self

    def cycle(self, seed=0):
        return self.fetch().complete_all(seed).kick().reap()


def ring_seeds():
    s = {}
    # Plain traffic: every command shape, in order.
    r = Ring()
    for kind, ln, d in ((0, 0, DIR_NONE), (1, 4096, DIR_IN),
                        (2, 4096, DIR_OUT), (3, 255, DIR_IN), (4, 4096, DIR_IN),
                        (5 + 8 * 4, 0, DIR_NONE)):
        r.submit(kind, ln, d).cycle()
    s['traffic'] = r
    # Many commands in flight, completed out of order, one kick.
    r = Ring(ring=1, caps=CAP_OOOC | CAP_READ_LEN, scatter=True)
    for i in range(12):
        r.submit(1 + i % 2, 512 * (1 + i), DIR_IN if i % 2 == 0 else DIR_OUT)
    s['ooo'] = r.fetch().complete_all(77).kick().reap()
    # Small blocks and a tiny ring: entries of many sizes, PAD at the end.
    r = Ring(ring=0, block=0, scatter=True, data=3)
    for i in range(40):
        r.submit(1, 512 * (1 + i % 24), DIR_IN).cycle(i)
    s['pad_wrap'] = r
    # Out of order one by one, with statuses, sense and short reads.
    r = Ring(caps=CAP_OOOC | CAP_READ_LEN)
    for i in range(6):
        r.submit(3, 255, DIR_IN)
    r.fetch()
    r.complete(3, 1, rl=1, key=5, asc=0x24).complete(0, 0, rl=2 | 36 << 2)
    r.complete(1, 1, slen=0x85).complete(0, 3).complete(0, 4, rl=3)
    s['statuses'] = r.complete(0, 2).kick().reap()
    # Prepared entries corrupted before publishing: each malformation.
    for name, field, mode, value in (
            ('cdb_off_past', 0, 2, 100), ('cdb_off_end', 0, 1, 3),
            ('cdb_off_mailbox', 0, 6, 16), ('cdb_off_wrap', 0, 7, 5),
            ('iov_cnt_huge', 1, 1, 0x40000000), ('iov_cnt_small', 1, 0, 3),
            ('bidi_cnt', 2, 1, 1000), ('dif_cnt', 3, 0, 2),
            ('iov_base_mailbox', 4, 6, 64), ('iov_base_ring', 4, 4, 8),
            ('iov_base_end', 4, 1, 100), ('iov_len_wrap', 5, 0, -4096),
            ('iov_len_map', 5, 8, 0), ('cdb_varlen', 6, 0, 0xff7f),
            ('uflags', 7, 0, 0x0101), ('cmd_id_zero', 8, 0, 0),
            ('cmd_id_dup', 8, 0, 0), ('len_op_short', 9, 0, 0),
            ('len_op_raw', 9, 1, 0x11)):
        r = Ring(caps=CAP_OOOC)
        r.submit(1, 512, DIR_IN, publish=False)
        if name == 'cmd_id_dup':
            r.publish().fetch().submit(1, 512, DIR_IN, publish=False)
        r.corrupt(field, value, mode).submit(1, 512, DIR_IN, publish=False)
        s['corrupt_' + name] = r.publish().cycle().cycle()
    # Raw entries: unknown opcodes, PADs honest and not, TMRs.
    r = Ring(caps=CAP_OOOC | CAP_TMR)
    r.inject(bytes(24), op=5).submit(1, 512, DIR_IN).cycle()
    r.inject(bytes(8), op=7).inject(bytes(200), op=3).cycle()
    s['unknown_ops'] = r
    for mode in range(6):
        r = Ring(caps=CAP_OOOC)
        r.submit(1, 512, DIR_IN).pad(mode, 64).submit(2, 512, DIR_OUT)
        s['pad_mode%d' % mode] = r.cycle().cycle()
    r = Ring(caps=CAP_OOOC | CAP_TMR)
    r.submit(1, 4096, DIR_IN).submit(1, 4096, DIR_IN).submit(2, 512, DIR_OUT)
    r.fetch().tmr(1, [1, 2]).fetch().complete_all(3).kick().reap()
    r.tmr(5, []).tmr_raw(3, 0xffffffff).tmr_raw(0, 7).cycle()
    s['tmr'] = r
    r = Ring(caps=CAP_OOOC | CAP_TMR)
    r.tmr_raw(15, 0x80000000, 2).inject(bytes(16), 0x18 | 2).cycle()
    s['tmr_short'] = r
    r = Ring(caps=CAP_OOOC)
    r.inject(bytes(16), op=1).cycle()
    r.inject(bytes(8), raw_len_op=0x1).cycle()
    s['raw_cmd'] = r
    # cmd_head moved: backwards, forwards, out of range, then reset.
    for mode in range(5):
        r = Ring(caps=CAP_OOOC)
        r.submit(1, 512, DIR_IN).submit(2, 512, DIR_OUT).cycle()
        r.head(mode, 3 if mode != 0 else 0x7ffffff8).cycle().reset()
        s['head_mode%d' % mode] = r.submit(1, 512, DIR_IN).cycle()
    # Shared memory rewritten after the daemon fetched it.
    for mode in range(4):
        r = Ring(caps=CAP_OOOC | CAP_TMR)
        r.submit(1, 512, DIR_IN).tmr(1, [0]).submit(3, 36, DIR_IN).fetch()
        r.poke(mode, 1, 0x8 | (mode % 3)).complete_all(1).kick().reap()
        s['poke_mode%d' % mode] = r.reset().submit(0).cycle()
    r = Ring(caps=CAP_OOOC)
    r.submit(1, 512, DIR_IN).fetch().stray(0).stray(1).stray(2)
    s['stray'] = r.complete_all().kick().stray(1).reap()
    r = Ring(ring=3, cyclic=True, caps=CAP_OOOC | CAP_READ_LEN)
    for i in range(30):
        r.submit(1 + i % 3, 512 * (i % 8), 1 + i % 2, publish=i % 3 == 0)
    s['cyclic_batch'] = r.publish().fetch(5).complete_all(9).fetch().cycle(4)
    r = Ring(caps=CAP_OOOC)
    r.submit(1, 512, DIR_IN).fetch().reset().reap()
    s['reset_inflight'] = r.submit(1, 512, DIR_IN).cycle()
    # A daemon attaching to mailboxes with one field wrong (or right).
    r = Ring(caps=CAP_OOOC | CAP_READ_LEN)
    r.submit(1, 512, DIR_IN).fetch()
    for field, value in ((0, 1), (0, 2), (1, 40), (1, 33), (0x81, 0xfffffff8),
                         (2, 0), (2, 32), (0x82, 0xffffff80), (3, 24),
                         (3, 36), (0x83, 0x7ffffff8), (4, 0xffff), (5, 0)):
        r.reattach(field, value)
    s['reattach'] = r.complete_all().kick().reap()
    # Big raw entries: an iovec array longer than TL_IOV_MAX fits in one.
    r = Ring(ring=3, data=3, caps=CAP_OOOC)
    big = struct.pack('<IHBBIII', 0, 9, 0, 0, 2049, 0, 0)
    r.inject(big, raw_len_op=40000 | 1).fetch().reset()
    r.inject(big, raw_len_op=40000 | 3).cycle()
    s['big_entries'] = r
    r = Ring(ring=2, caps=CAP_OOOC | CAP_READ_LEN, scatter=True, data=3)
    for i in range(60):
        r.submit(1 + i % 2, 512 * (1 + i % 16), 1 + i % 2, publish=i % 4 == 3)
    s['ring32k'] = r.publish().fetch(7).complete_all(5).cycle(6)
    return {k: bytes(v.b) for k, v in s.items()}

# ----------------------------------------------------------------- fuzz_cdb

C_NONE, C_OUT, C_IN, C_AUTO = 0, 1, 2, 3
C_BATCH = 4
SPECIAL = 0xf0
SP_LUN_RESET, SP_ABORT, SP_RESIZE, SP_IDLE = 0, 1, 2, 3


class Cdb:
    """Builds one fuzz_cdb program."""

    def __init__(self, dev=0):
        self.b = bytearray([dev])

    def cmd(self, cdb, direction=C_AUTO, length=None, data=b'', batch=False,
            raw_len=False):
        cdb = bytes(cdb)
        ctl = direction | (C_BATCH if batch else 0)
        self.b.append(ctl)
        # 0: length from the opcode; else explicit length.
        self.b.append(len(cdb) if raw_len else 0)
        self.b += cdb
        if direction in (C_OUT, C_IN):
            ln = len(data) if length is None else length
            self.b += struct.pack('<I', ln)[:3]
        if direction in (C_OUT, C_AUTO):
            self.b += struct.pack('<H', len(data)) + data
        return self

    def special(self, what, arg=0):
        self.b += bytes([SPECIAL | what]) + struct.pack('<I', arg)
        return self


def be(n, w):
    return n.to_bytes(w, 'big')


def cdb6(op, b1=0, b2=0, b3=0, b4=0, b5=0):
    return bytes([op, b1, b2, b3, b4, b5])


def cdb10(op, b1=0, lba=0, b6=0, n=0, b9=0):
    return bytes([op, b1]) + be(lba, 4) + bytes([b6]) + be(n, 2) + bytes([b9])


def cdb12(op, b1=0, lba=0, n=0, b10=0):
    return bytes([op, b1]) + be(lba, 4) + be(n, 4) + bytes([b10, 0])


def cdb16(op, b1=0, lba=0, n=0, b14=0):
    return bytes([op, b1]) + be(lba, 8) + be(n, 4) + bytes([b14, 0])


def sa16(op, sa, lba=0, alloc=0, b14=0):
    return bytes([op, sa]) + be(lba, 8) + be(alloc, 4) + bytes([b14, 0])


def sa12(op, sa, b2=0, b3=0, b45=0, alloc=0):
    return bytes([op, sa, b2, b3]) + be(b45, 2) + be(alloc, 4) + bytes(2)


def pattern(n, seed=1):
    return bytes((i * 31 + seed * 7) & 0xff for i in range(n))


def unmap_param(ranges):
    descs = b''.join(be(lba, 8) + be(n, 4) + bytes(4) for lba, n in ranges)
    return be(6 + len(descs), 2) + be(len(descs), 2) + bytes(4) + descs


def xcopy_param(src_lba, dst_lba, nblocks, block=512, list_id=1,
                designator=bytes(16)):
    # Two identification CSCD descriptors (0xE4, NAA designator; fuzz_cdb
    # replaces an all-zero designator with the device's own NAA) and one
    # block-to-block segment descriptor (0x02).  SPC-4 6.4.
    ident = bytes([0xe4, 0, 0, 0, 0x01, 0x03, 0, 0x10]) + designator + \
        bytes(5) + be(block, 3)
    seg = bytes([0x02, 0]) + be(0x18, 2) + be(0, 2) + be(1, 2) + \
        bytes(2) + be(nblocks, 2) + be(src_lba, 8) + be(dst_lba, 8)
    tds = ident + ident
    hdr = bytes([list_id, 0]) + be(len(tds), 2) + bytes(4) + \
        be(len(seg), 4) + bytes(4)
    return hdr + tds + seg


def cdb_seeds():
    s = {}
    one = {
        # SPC-4
        'tur': cdb6(0x00),
        'request_sense': cdb6(0x03, b4=252),
        'request_sense_desc': cdb6(0x03, b1=1, b4=252),
        'inquiry_std': cdb6(0x12, b4=96),
        'inquiry_short': cdb6(0x12, b4=5),
        'inquiry_vpd00': cdb6(0x12, 1, 0x00, 0, 255),
        'inquiry_vpd80': cdb6(0x12, 1, 0x80, 0, 255),
        'inquiry_vpd83': cdb6(0x12, 1, 0x83, 1, 0),
        'inquiry_vpd86': cdb6(0x12, 1, 0x86, 0, 64),
        'inquiry_vpd8f': cdb6(0x12, 1, 0x8f, 1, 0),
        'inquiry_vpdb0': cdb6(0x12, 1, 0xb0, 0, 64),
        'inquiry_vpdb1': cdb6(0x12, 1, 0xb1, 0, 64),
        'inquiry_vpdb2': cdb6(0x12, 1, 0xb2, 0, 64),
        'inquiry_bad_page': cdb6(0x12, 1, 0x42, 0, 64),
        'inquiry_cmddt': cdb6(0x12, 2, 0, 0, 64),
        'mode_sense6_all': cdb6(0x1a, 0, 0x3f, 0, 255),
        'mode_sense6_caching': cdb6(0x1a, 8, 0x08, 0, 255),
        'mode_sense6_changeable': cdb6(0x1a, 0, 0x40 | 0x0a, 0, 255),
        'mode_sense6_saved': cdb6(0x1a, 0, 0xc0 | 0x3f, 0, 255),
        'mode_sense10_all': cdb10(0x5a, 0, 0x3f << 24, 0, 1024),
        'mode_sense10_llbaa': cdb10(0x5a, 0x10, 0x1c << 24, 0, 1024),
        'report_luns': cdb12(0xa0, 0, 0, 4096),
        'rsoc_all': sa12(0xa3, 0x0c, 0, 0, 0, 65536),
        'rsoc_one': sa12(0xa3, 0x0c, 0x81, 0x28, 0, 512),
        'rsoc_sa': sa12(0xa3, 0x0c, 0x02, 0x9e, 0x10, 512),
        'rstmf': sa12(0xa3, 0x0d, 0x80, 0, 0, 16),
        'receive_copy_op_params': sa16(0x84, 0x03, 0, 0, 0)[:10] + be(1024, 4)
        + bytes(2),
        'receive_copy_status': bytes([0x84, 0x00, 0x01]) + bytes(7) +
        be(1024, 4) + bytes(2),
        # SBC-3
        'read_capacity10': cdb10(0x25),
        'read_capacity16': sa16(0x9e, 0x10, 0, 32),
        'get_lba_status': sa16(0x9e, 0x12, 0, 1024),
        'read6': cdb6(0x08, 0, 0, 0, 8),
        'read6_256': cdb6(0x08, 0, 0, 0, 0),
        'read10': cdb10(0x28, 0, 0, 0, 8),
        'read10_fua': cdb10(0x28, 0x08, 100, 0, 16),
        'read10_zero': cdb10(0x28, 0, 5, 0, 0),
        'read12': cdb12(0xa8, 0, 16, 8),
        'read16': cdb16(0x88, 0, 32, 8),
        'read16_end': cdb16(0x88, 0, 16383, 1),
        'read16_past_end': cdb16(0x88, 0, 16380, 8),
        'read16_lba_huge': cdb16(0x88, 0, 2**64 - 1, 1),
        'read10_rdprotect': cdb10(0x28, 0x20, 0, 0, 1),
        'write6': cdb6(0x0a, 0, 0, 1, 4),
        'write10': cdb10(0x2a, 0, 8, 0, 8),
        'write10_fua_dpo': cdb10(0x2a, 0x18, 8, 0, 1),
        'write12': cdb12(0xaa, 0, 64, 4),
        'write16': cdb16(0x8a, 0, 128, 8),
        'write_verify10': cdb10(0x2e, 0x02, 8, 0, 2),
        'write_verify12': cdb12(0xae, 0x02, 8, 2),
        'write_verify16': cdb16(0x8e, 0x02, 8, 2),
        'verify10': cdb10(0x2f, 0, 0, 0, 8),
        'verify10_bytchk': cdb10(0x2f, 0x02, 0, 0, 2),
        'verify10_bytchk3': cdb10(0x2f, 0x06, 0, 0, 4),
        'verify12': cdb12(0xaf, 0x02, 0, 2),
        'verify16': cdb16(0x8f, 0x02, 0, 2),
        'prefetch10': cdb10(0x34, 0x02, 0, 0, 8),
        'prefetch16': cdb16(0x90, 0, 0, 8),
        'sync_cache10': cdb10(0x35),
        'sync_cache16': cdb16(0x91, 0x02, 0, 0),
        'write_same10': cdb10(0x41, 0, 16, 0, 8),
        'write_same10_unmap': cdb10(0x41, 0x08, 16, 0, 8),
        'write_same16': cdb16(0x93, 0, 32, 16),
        'write_same16_ndob': cdb16(0x93, 0x09, 32, 16),
        'write_same16_all': cdb16(0x93, 0x08, 0, 0),
        'compare_and_write': cdb16(0x89, 0, 8, 0)[:13] + bytes([1, 0, 0]),
        'format_unit': cdb6(0x04),
        'start_stop_stop': cdb6(0x1b, 0, 0, 0, 0),
        'start_stop_start': cdb6(0x1b, 1, 0, 0, 1),
        'start_stop_power': cdb6(0x1b, 0, 0, 0, 0x30),
        'prevent_allow': cdb6(0x1e, 0, 0, 0, 1),
        'unmap_empty': cdb10(0x42, 0, 0, 0, 0),
        # Kernel-answered or unimplemented: must be INVALID OPCODE.
        'reserve6': cdb6(0x16),
        'pr_in': cdb10(0x5e, 0, 0, 0, 512),
        'log_sense': cdb10(0x4d, 0, 0, 0, 512),
        'write_buffer': cdb10(0x3b, 0x02, 0, 0, 512),
        'varlen_read32': bytes([0x7f, 0, 0, 0, 0, 0, 0, 0x18, 0, 0x09]) +
        bytes(22),
        'atapt16': cdb16(0x85, 0x08),
        'naca_set': cdb6(0x00, 0, 0, 0, 0, 0x04),
        'vendor_c0': cdb10(0xc0),
    }
    for name, c in one.items():
        s[name] = Cdb().cmd(c)
    # The second device (4 KiB blocks, no READ_LEN) gets a few too.
    for name in ('read10', 'write16', 'read_capacity16', 'inquiry_vpdb0',
                 'compare_and_write', 'write_same16', 'get_lba_status'):
        s['dev1_' + name] = Cdb(dev=1).cmd(one[name])

    singles = set(s)
    blk = 512
    s['write_read_back'] = Cdb().cmd(cdb10(0x2a, 0, 40, 0, 2),
                                     data=pattern(2 * blk)) \
        .cmd(cdb10(0x28, 0, 40, 0, 2))
    s['caw_match'] = Cdb().cmd(cdb10(0x2a, 0, 50, 0, 1), data=pattern(blk)) \
        .cmd(cdb16(0x89, 0, 50, 0)[:13] + bytes([1, 0, 0]),
             data=pattern(blk) + pattern(blk, 9))
    s['caw_miscompare'] = Cdb().cmd(
        cdb16(0x89, 0, 60, 0)[:13] + bytes([1, 0, 0]),
        data=pattern(2 * blk, 5))
    s['unmap_ranges'] = Cdb().cmd(
        cdb10(0x42, 0, 0, 0, 40), data=unmap_param([(0, 8), (100, 16)]))
    s['unmap_bad_len'] = Cdb().cmd(
        cdb10(0x42, 0, 0, 0, 24), data=unmap_param([(16380, 100)]))
    s['write_same_data'] = Cdb().cmd(cdb16(0x93, 0, 200, 4),
                                     data=pattern(blk, 3)) \
        .cmd(cdb16(0x88, 0, 200, 4))
    ctl_dsense = bytes([0, 0, 0, 0]) + bytes([0x0a, 10, 0x04, 0x10]) + bytes(8)
    s['mode_select_dsense'] = Cdb().cmd(
        cdb6(0x15, 0x10, 0, 0, len(ctl_dsense)), data=ctl_dsense) \
        .cmd(cdb16(0x88, 0, 2**40, 1)).cmd(cdb6(0x12, 1, 0x42, 0, 64))
    # Descriptor sense with an INFORMATION descriptor: miscompares.
    s['dsense_miscompare'] = Cdb().cmd(
        cdb6(0x15, 0x10, 0, 0, len(ctl_dsense)), data=ctl_dsense) \
        .cmd(cdb10(0x2a, 0, 900, 0, 2), data=pattern(2 * blk)) \
        .cmd(cdb16(0x89, 0, 900, 0)[:13] + bytes([2, 0, 0]),
             data=pattern(2 * blk, 4) + pattern(2 * blk)) \
        .cmd(cdb10(0x2f, 0x02, 900, 0, 2), data=pattern(2 * blk, 8)) \
        .cmd(cdb16(0x88, 0, 2**40, 1)).cmd(cdb6(0x03, 1, 0, 0, 252))
    caching = bytes([0, 0, 0, 0]) + bytes([0x08, 18, 0x04]) + bytes(17)
    s['mode_select_wce'] = Cdb().cmd(
        cdb6(0x15, 0x10, 0, 0, len(caching)), data=caching) \
        .cmd(cdb6(0x1a, 0, 0x08, 0, 255))
    ms10 = bytes(8) + bytes([0x0a, 10, 0x04, 0x10]) + bytes(8)
    s['mode_select10'] = Cdb().cmd(cdb10(0x55, 0x10, 0, 0, len(ms10)),
                                   data=ms10)
    xp = xcopy_param(300, 400, 4)
    s['xcopy'] = Cdb().cmd(cdb10(0x2a, 0, 300, 0, 4), data=pattern(4 * blk)) \
        .cmd(bytes([0x83, 0]) + bytes(8) + be(len(xp), 4) + bytes(2),
             data=xp) \
        .cmd(bytes([0x84, 0x00, 1]) + bytes(7) + be(1024, 4) + bytes(2)) \
        .cmd(cdb10(0x28, 0, 400, 0, 4))
    xp = xcopy_param(0, 8, 2, designator=bytes(range(1, 17)))
    s['xcopy_unreachable'] = Cdb().cmd(
        bytes([0x83, 0]) + bytes(8) + be(len(xp), 4) + bytes(2), data=xp)
    xp = xcopy_param(16380, 0, 8)
    s['xcopy_out_of_range'] = Cdb().cmd(
        bytes([0x83, 0]) + bytes(8) + be(len(xp), 4) + bytes(2), data=xp)
    s['stop_then_read'] = Cdb().cmd(cdb6(0x1b, 0, 0, 0, 0)) \
        .cmd(cdb10(0x28, 0, 0, 0, 1)).cmd(cdb6(0x1b, 0, 0, 0, 1)) \
        .cmd(cdb10(0x28, 0, 0, 0, 1))
    # Batches: many commands in flight at once, overlapping writes and CAW.
    c = Cdb()
    for i in range(8):
        c.cmd(cdb10(0x2a, 0, 500 + i, 0, 1), data=pattern(blk, i), batch=True)
    c.cmd(cdb16(0x89, 0, 503, 0)[:13] + bytes([1, 0, 0]),
          data=pattern(blk, 3) + pattern(blk, 4), batch=True)
    c.cmd(cdb10(0x28, 0, 500, 0, 8))
    s['batch_caw'] = c
    c = Cdb()
    for i in range(4):
        c.cmd(cdb10(0x28, 0, i * 8, 0, 8), batch=True)
    s['batch_abort'] = c.special(SP_ABORT, 0b0101).cmd(cdb6(0x00))
    c = Cdb()
    for i in range(3):
        c.cmd(cdb10(0x2a, 0, i * 8, 0, 8), data=pattern(blk), batch=True)
    s['batch_lun_reset'] = c.special(SP_LUN_RESET).cmd(cdb6(0x00)) \
        .cmd(cdb6(0x03, b4=18))
    s['resize'] = Cdb().special(SP_RESIZE, 1024).cmd(cdb10(0x25)) \
        .cmd(cdb10(0x25)).cmd(cdb10(0x28, 0, 1020, 0, 8))
    # Lengths that do not match the CDB: short and long buffers.
    s['read_short_buffer'] = Cdb().cmd(cdb10(0x28, 0, 0, 0, 8), C_IN, 1000)
    s['read_long_buffer'] = Cdb().cmd(cdb10(0x28, 0, 0, 0, 1), C_IN, 8192)
    s['write_short_buffer'] = Cdb().cmd(cdb10(0x2a, 0, 0, 0, 8), C_OUT, 100,
                                        data=pattern(100))
    s['write_no_buffer'] = Cdb().cmd(cdb10(0x2a, 0, 0, 0, 8), C_NONE)
    s['inquiry_in_out'] = Cdb().cmd(cdb6(0x12, b4=96), C_OUT, 96,
                                    data=pattern(96))
    s['caw_short'] = Cdb().cmd(cdb16(0x89, 0, 8, 0)[:13] + bytes([2, 0, 0]),
                               C_OUT, 700, data=pattern(700))
    s['unmap_short'] = Cdb().cmd(cdb10(0x42, 0, 0, 0, 24), C_OUT, 10,
                                 data=unmap_param([(0, 1)])[:10])
    s['raw_len_cdb'] = Cdb().cmd(bytes([0x28, 0, 0, 0, 0, 0]), C_IN, 512,
                                 raw_len=True)
    s['idle'] = Cdb().special(SP_IDLE, 5).cmd(cdb6(0x00))
    # Multi-step commands in flight together on the asynchronous device:
    # the exclusive lock queues them, writes overlapping a COMPARE AND
    # WRITE wait, and the queue is run again when the owner ends.
    caw = cdb16(0x89, 0, 700, 0)[:13] + bytes([2, 0, 0])
    c = Cdb(dev=3).cmd(cdb10(0x2a, 0, 700, 0, 2), data=pattern(2 * blk))
    c.cmd(caw, data=pattern(2 * blk) + pattern(2 * blk, 5), batch=True)
    c.cmd(cdb10(0x2a, 0, 701, 0, 4), data=pattern(4 * blk, 6), batch=True)
    c.cmd(cdb16(0x93, 0, 720, 64), data=pattern(blk, 2), batch=True)
    c.cmd(caw, data=pattern(2 * blk, 5) + pattern(2 * blk), batch=True)
    c.cmd(cdb10(0x42, 0, 0, 0, 24), data=unmap_param([(730, 8)]),
          batch=True)
    c.cmd(cdb10(0x2f, 0x02, 700, 0, 2), data=pattern(2 * blk), batch=True)
    s['dev3_exclusive_queue'] = c.cmd(cdb10(0x28, 0, 700, 0, 32))
    xp = xcopy_param(700, 800, 16)
    c = Cdb(dev=3)
    for i in range(3):
        c.cmd(bytes([0x83, 0]) + bytes(8) + be(len(xp), 4) + bytes(2),
              data=xp, batch=True)
        c.cmd(cdb16(0x93, 0x08, 800 + 16 * i, 16), batch=True)
        c.cmd(cdb10(0x2a, 0, 805, 0, 2), data=pattern(2 * blk, i),
              batch=True)
    s['dev3_exclusive_xcopy_ws'] = c.special(SP_ABORT, 0b100100100) \
        .cmd(cdb6(0x00))
    out = {k: bytes(v.b) for k, v in s.items()}
    # The sequences again on the checking devices: 2 (fuzzram)
    # and 3 (fuzzram answering asynchronously, failing now and then).
    for k, v in list(out.items()):
        if k not in singles:
            out['dev2_' + k] = bytes([2]) + v[1:]
            out['dev3_' + k] = bytes([3]) + v[1:]
    for name in ('write10_fua_dpo', 'sync_cache10', 'write_same16',
                 'write_same10_unmap', 'verify10_bytchk3', 'write_verify16'):
        out['dev3_' + name] = bytes([3]) + out[name][1:]
    return out


def ring_regressions():
    """Minimal inputs for the ring bugs found by fuzz_ring (docs/fuzzing.md)."""
    s = {}
    # 1. A command entry shorter than struct tcmu_cmd_entry (112 bytes) is
    #    rejected, and its 112-byte response is written into it: here the
    #    16-byte entry sits at the ring's end, so the response runs 96 bytes
    #    past the command ring into the data area.
    r = Ring(ring=0, caps=CAP_OOOC)
    r.inject(bytes(1000)).inject(bytes(1000)).fetch().kick().reap()
    r.inject(bytes(1000)).inject(bytes(952)).fetch().kick().reap()
    hdr = struct.pack('<IHBB', 0x10 | 1, 7, 0, 0) + bytes(8)
    s['short-cmd-entry-at-ring-end'] = r.inject(hdr, raw_len_op=0x10 | 1) \
        .fetch()
    # 2. The same, mid-ring: the response overwrites the next, still
    #    unfetched command entry (the kernel's).
    r = Ring(ring=0, caps=CAP_OOOC)
    r.submit(1, 512, DIR_IN, publish=False).corrupt(9, 0x11, mode=1)
    s['short-cmd-entry-overwrites-next'] = \
        r.submit(1, 512, DIR_IN, publish=False).publish().fetch()
    # 3. The header of a fetched entry at the tail is rewritten to a PAD as
    #    long as the whole ring: skip_non_cmds() moves the tail by
    #    cmdr_size, back to where it was, forever (a hang).
    r = Ring(ring=0, caps=CAP_OOOC)
    r.submit(1, 512, DIR_IN).fetch().poke(3, 0, 0)
    s['tail-entry-rewritten-whole-ring-hang'] = r.complete_all()
    # 4. The header of a fetched command at the tail is rewritten to an
    #    8-byte command: ring_complete() writes its 112-byte response there.
    r = Ring(ring=0, caps=CAP_OOOC)
    r.submit(1, 512, DIR_IN).submit(3, 36, DIR_IN).fetch().poke(1, 0, 0x9)
    s['tail-entry-shrunk-after-fetch'] = r.complete_all()
    return {k: bytes(v.b) for k, v in s.items()}


def write_all(outdir, name, seeds):
    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    for k, v in sorted(seeds.items()):
        with open(os.path.join(d, k), 'wb') as f:
            f.write(v)
    print('%s: %d seeds' % (d, len(seeds)))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, 'corpus')
    write_all(outdir, 'ring', ring_seeds())
    write_all(outdir, 'cdb', cdb_seeds())
    if len(sys.argv) <= 1:
        write_all(os.path.join(here, 'regressions'), 'ring',
                  ring_regressions())


if __name__ == '__main__':
    main()
