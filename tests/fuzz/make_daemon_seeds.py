#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpora of the daemon-input harnesses.

    tests/fuzz/make_daemon_seeds.py [OUTDIR]   (default: tests/fuzz/corpus)

corpus/config/*: YAML files for fuzz_config: config.yaml.example,
examples/*.yaml, and YAML that is hard to read right (anchors and aliases,
an alias bomb, deep nesting, huge scalars, tags, duplicate keys, NUL bytes
in scalars, bad UTF-8, several documents, odd numbers in options).

corpus/netlink/*: datagrams for fuzz_netlink: the TCM-USER events the
kernel sends (ADDED/REMOVED/RECONFIG_DEVICE with the attributes of
target_core_user), several in one datagram, and malformed ones (strings
not terminated, short integers, lengths past the end, unknown attributes,
hostile device names).

corpus/control/*: request streams for fuzz_control: every command, bad
JSON, huge numbers, deep nesting, bad UTF-8, unknown commands, overlong
lines.

The files are committed; rerun this after changing a harness's format.
"""
import glob
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))

# ------------------------------------------------------------------ config


def config_seeds():
    s = {}
    s['example'] = open(os.path.join(TOP, 'config.yaml.example'), 'rb').read()
    for p in sorted(glob.glob(os.path.join(TOP, 'examples', '*.yaml'))):
        s['example-' + os.path.basename(p)[:-5]] = open(p, 'rb').read()
    dev = b'devices:\n  - name: d0\n    handler: ram\n    size: 1M\n'
    s['minimal'] = dev
    s['options'] = dev + (b'    options:\n      path: "/srv/a\\"b\\\\c\\n.img"\n'
                          b'      create: true\n      n: 0x1f\n      f: -1.5e3\n'
                          b'      inf: .inf\n      nan: .NaN\n      plus: +7\n'
                          b'      "end": 1\n      1: one\n      "with space": ~\n'
                          b'      list: [1, "two", [3, {x: y}], null]\n')
    s['anchors'] = (b'defaults: &d {handler: ram, size: 1M}\n'
                    b'devices:\n  - <<: *d\n    name: a\n'
                    b'  - name: b\n    handler: ram\n    size: 1M\n'
                    b'    options: &o {k: &v [1, 2]}\n'
                    b'  - name: c\n    handler: ram\n    size: 1M\n'
                    b'    options: {a: *o, b: *v}\n')
    bomb = [b'a0: &a0 [x, x, x, x, x, x, x, x, x, x]']
    for i in range(1, 10):
        bomb.append(b'a%d: &a%d [%s]' % (i, i, b', '.join([b'*a%d' % (i - 1)] * 10)))
    s['alias-bomb'] = (dev + b'    options:\n' +
                       b''.join(b'      ' + l + b'\n' for l in bomb))
    s['deep-options'] = dev + b'    options: ' + b'{a: ' * 40 + b'1' + b'}' * 40 + b'\n'
    s['deep-flow'] = b'[' * 5000 + b']' * 5000 + b'\n'
    s['huge-scalar'] = dev + b'    options: {big: "' + b'x' * 70000 + b'"}\n'
    s['huge-name'] = (b'devices:\n  - name: ' + b'n' * 300 +
                      b'\n    handler: ' + b'h' * 300 + b'\n    size: 1M\n')
    s['tags'] = (b'%TAG !e! tag:example.com,2000:\n---\n'
                 b'devices: !!seq\n  - name: !!str d0\n    handler: !e!x ram\n'
                 b'    size: !!int 1048576\n    options: !!map {a: !!binary aGVsbG8=}\n')
    s['duplicate-keys'] = dev + b'    size: 2M\n'
    s['duplicate-options'] = dev + b'    options: {a: 1, a: 2}\n'
    s['nul-in-scalars'] = (b'devices:\n  - name: "d0\\0x"\n    handler: "ram\\0../../x"\n'
                           b'    size: 1M\n    options: {"k\\0": "v\\0w"}\n')
    s['bad-utf8'] = dev + b'    options: {k: "\xc3\x28\xff\xfe"}\n\xed\xa0\x80: 1\n'
    s['two-documents'] = dev + b'---\n' + dev
    s['hostile-handlers'] = b''.join(
        b'---\ndevices:\n  - name: d\n    handler: "%s"\n    size: 1M\n' % h
        for h in [b'../../etc/x', b'/abs', b'a.b', b'', b'x' * 300])
    s['sizes'] = (b'devices:\n' + b''.join(
        b'  - name: d%d\n    handler: ram\n    size: %s\n    block_size: %s\n'
        % (i, sz, bs) for i, (sz, bs) in enumerate(
            [(b'0', b'512'), (b'16E', b'512'), (b'18446744073709551615', b'4096'),
             (b'1.5G', b'512'), (b'-1', b'512'), (b'1K', b'3'), (b'1M', b'0'),
             (b'1P', b'65536')])))
    s['exports'] = (dev + b'    exports:\n      loop: {wwn: naa.5001405000000001, lun: 3}\n'
                    b'      iscsi: {iqn: "iqn.2003-01.org.x:t", portal: "[::1]:3260", lun: 0}\n')
    s['daemon-keys'] = (b'daemon:\n  handler_dirs: [/a, /b, "", "/c;d"]\n  workers: auto\n'
                        b'  log_level: loud\n  control_socket: "' + b's' * 200 + b'"\n'
                        b'  hot_reload: yes\n  poll_us: -1\n  pid_file: ~\n  hba: 4294967296\n')
    s['not-a-map'] = b'- 1\n- 2\n'
    s['empty'] = b''
    s['syntax-error'] = b'devices: [\n  {name: "x\n'
    return s

# ----------------------------------------------------------------- netlink

NLMSG_HDR = 16
GENL_HDR = 4
TCMU_FAMILY = 0x20      # any id: the parser does not look at the type
(CMD_UNSPEC, CMD_ADDED, CMD_REMOVED, CMD_RECONFIG, CMD_ADDED_DONE,
 CMD_REMOVED_DONE, CMD_RECONFIG_DONE, CMD_SET_FEATURES) = range(8)
(A_UNSPEC, A_DEVICE, A_MINOR, A_PAD, A_DEV_CFG, A_DEV_SIZE, A_WRITECACHE,
 A_CMD_STATUS, A_DEVICE_ID, A_SUPP_KERN_CMD_REPLY) = range(10)


def align4(b):
    return b + b'\0' * (-len(b) % 4)


def attr(t, payload, length=None):
    n = 4 + len(payload) if length is None else length
    return align4(struct.pack('<HH', n, t) + payload)


def sattr(t, s):
    return attr(t, s + b'\0')


def msg(cmd, attrs, version=2, nlmsg_len=None, nl_type=TCMU_FAMILY):
    body = struct.pack('<BBH', cmd, version, 0) + b''.join(attrs)
    n = NLMSG_HDR + len(body) if nlmsg_len is None else nlmsg_len
    return align4(struct.pack('<IHHII', n, nl_type, 0, 0, 0) + body)


def event(cmd, dev=b'tcm-user/1/disk0/ram/size=1M', minor=0, dev_id=7,
          extra=()):
    a = [sattr(A_DEVICE, dev), attr(A_MINOR, struct.pack('<I', minor))]
    if dev_id is not None:
        a.append(attr(A_DEVICE_ID, struct.pack('<I', dev_id)))
    return msg(cmd, a + list(extra))


def netlink_seeds():
    s = {}
    s['added'] = event(CMD_ADDED)
    s['removed'] = event(CMD_REMOVED, minor=3)
    s['added-no-id'] = event(CMD_ADDED, dev_id=None)
    s['reconfig-cfg'] = event(CMD_RECONFIG, extra=[sattr(A_DEV_CFG, b'ram/size=2M')])
    s['reconfig-size'] = event(CMD_RECONFIG, extra=[attr(A_DEV_SIZE, struct.pack('<Q', 1 << 30))])
    s['reconfig-wc'] = event(CMD_RECONFIG, extra=[attr(A_WRITECACHE, b'\1')])
    s['three-in-one'] = event(CMD_ADDED) + event(CMD_RECONFIG) + event(CMD_REMOVED)
    s['set-features'] = msg(CMD_SET_FEATURES, [attr(A_SUPP_KERN_CMD_REPLY, b'\1')])
    s['done-reply'] = msg(CMD_ADDED_DONE, [attr(A_CMD_STATUS, struct.pack('<i', -22)),
                                           attr(A_DEVICE_ID, struct.pack('<I', 7))])
    s['no-device'] = msg(CMD_ADDED, [attr(A_MINOR, b'\0' * 4),
                                     attr(A_DEVICE_ID, b'\7\0\0\0')])
    s['no-minor'] = msg(CMD_REMOVED, [sattr(A_DEVICE, b'tcm-user/1/d/ram/')])
    s['string-unterminated'] = msg(CMD_ADDED, [attr(A_DEVICE, b'tcm-user/1/d/ram'),
                                               attr(A_MINOR, b'\0' * 4)])
    s['string-empty'] = msg(CMD_ADDED, [attr(A_DEVICE, b''), attr(A_MINOR, b'\0' * 4)])
    s['minor-short'] = msg(CMD_ADDED, [sattr(A_DEVICE, b'tcm-user/1/d/ram/'),
                                       attr(A_MINOR, b'\1')])
    s['size-short'] = event(CMD_RECONFIG, extra=[attr(A_DEV_SIZE, b'\1\2\3\4')])
    s['attr-past-end'] = msg(CMD_ADDED, [attr(A_DEVICE, b'x\0', length=400)])
    s['attr-len-zero'] = msg(CMD_ADDED, [struct.pack('<HH', 0, A_DEVICE)])
    s['attr-unknown'] = event(CMD_ADDED, extra=[attr(99, b'abc'), attr(0x8000 | A_MINOR, b'\0' * 4)])
    s['nested-flag'] = msg(CMD_ADDED, [attr(0x8000 | A_DEVICE, sattr(A_DEVICE, b'x'))])
    s['nlmsg-len-long'] = msg(CMD_ADDED, [sattr(A_DEVICE, b'x')], nlmsg_len=4096)
    s['nlmsg-len-short'] = msg(CMD_ADDED, [sattr(A_DEVICE, b'x')], nlmsg_len=18)
    s['nlmsg-len-zero'] = msg(CMD_ADDED, [], nlmsg_len=0)
    s['no-genl-header'] = struct.pack('<IHHII', 16, TCMU_FAMILY, 0, 0, 0)
    s['nlmsg-error'] = struct.pack('<IHHII', 36, 2, 0, 0, 0) + struct.pack('<i', -1) + b'\0' * 16
    for i, name in enumerate([b'tcm-user/1/d/../../etc/x/', b'tcm-user/1/d//abs',
                              b'tcm-user/1/d/a.b/', b'tcm-user/1/d/', b'tcm-user/1/d/' + b'h' * 300,
                              b'tcm-user/99999999999/d/ram/', b'tcm-user/1//ram/',
                              b'tcm-user/1/' + b'n' * 300 + b'/ram/', b'other/1/d/ram/',
                              b'tcm-user/1/d/ram/' + b'c' * 400, b'tcm-user/1/d/r\xffm/']):
        s['hostile-name-%d' % i] = event(CMD_ADDED, dev=name)
    return s

# ----------------------------------------------------------------- control


def control_seeds():
    s = {}
    for c in ['status', 'devices', 'metrics', 'reload', 'trace-stop', 'launch']:
        s['cmd-' + c] = b'{"cmd":"%s"}\n' % c.encode()
    s['stats'] = b'{"cmd":"stats"}\n{"cmd":"stats","dev":"disk0"}\n{"cmd":"stats","dev":"nope"}\n'
    s['stats-escaped'] = b'{"cmd":"stats","dev":"we\\"ird\\\\\\u0001name\xc3\xa9"}\n'
    s['trace'] = (b'{"cmd":"trace","dev":"disk0"}\n{"cmd":"trace","dev":"disk0"}\n'
                  b'{"cmd":"trace-stop"}\n{"cmd":"trace","dev":"we\\"ird\\\\\\u0001name\xc3\xa9"}\n')
    s['log-level'] = (b'{"cmd":"log-level","level":"debug"}\n{"cmd":"log-level","level":"loud"}\n'
                      b'{"cmd":"log-level"}\n{"cmd":"log-level","level":"error"}\n')
    s['reload-twice'] = b'{"cmd":"reload"}\n{"cmd":"reload"}\n'
    s['malformed'] = (b'nonsense\n{\n{"cmd":}\n{"cmd":"status"} x\n{"cmd":{"nested":1}}\n'
                      b'[1,2]\n{}\n{"cmd":"\\u0000"}\n\n{"cmd":"status",}\n'
                      b'{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9}\n')
    s['numbers'] = (b'{"cmd":"status","n":1e999999}\n{"cmd":"status","n":-0.0e-0}\n'
                    b'{"cmd":"status","n":' + b'9' * 300 + b'}\n{"cmd":"status","n":nan}\n'
                    b'{"cmd":"status","n":+1}\n{"cmd":"status","n":.5}\n{"cmd":"status","n":01}\n')
    s['deep'] = b'{"cmd":' + b'[' * 3000 + b'\n' + b'{"a":' * 3000 + b'\n'
    s['bad-utf8'] = (b'{"cmd":"stats","dev":"\xc3\x28"}\n{"cmd":"st\xffatus"}\n'
                     b'{"cmd":"trace","dev":"\xed\xa0\x80"}\n{"\xfe":1,"cmd":"status"}\n')
    s['escapes'] = (b'{"cmd":"\\u0073tatus"}\n{"cmd":"stat\\us"}\n{"cmd":"\\u00e9"}\n'
                    b'{"cmd":"status\\/"}\n{"cmd":"\\ud800"}\n{"cmd":"status","x":"\\b\\f\\n\\r\\t"}\n')
    s['long-line'] = b'{"cmd":"status","pad":"' + b'x' * 5000 + b'"}\n{"cmd":"status"}\n'
    s['long-value'] = b'{"cmd":"stats","dev":"' + b'd' * 300 + b'"}\n{"' + b'k' * 40 + b'":1}\n'
    s['many-lines'] = b'{"cmd":"status"}\n' * 200 + b'{"cmd":"metrics"}\n' * 20
    s['partial'] = b'{"cmd":"status"}\n{"cmd":"sta'
    s['nul'] = b'{"cmd":"status"\0}\n\0\n{"cmd":"status"}\n'
    s['crlf'] = b'{"cmd":"status"}\r\n \t{ "cmd" : "devices" } \n'
    s['duplicate'] = b'{"cmd":"status","cmd":"reload"}\n'
    return s


def write_all(outdir, name, seeds):
    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    for k, v in sorted(seeds.items()):
        with open(os.path.join(d, k), 'wb') as f:
            f.write(v)
    print('%s: %d seeds' % (d, len(seeds)))


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, 'corpus')
    write_all(outdir, 'config', config_seeds())
    write_all(outdir, 'netlink', netlink_seeds())
    write_all(outdir, 'control', control_seeds())


if __name__ == '__main__':
    main()
