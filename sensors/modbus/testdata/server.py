#!/usr/bin/python3
"""A Modbus server for sensors/modbus's tests, on Debian's python3-pymodbus 3.0.

    server.py tcp               listen on 127.0.0.1, a free port; print "port N"
    server.py rtu DEVICE BAUD   serve RTU on a serial port (a socat pty), 8N2; print "ready"

(Linux pseudo-terminals refuse parity, so the RTU tests run 8N2: 11 bits a
character like the specification's 8E1.)

Units 1 and 2 answer. Unit 1 holds every data type in every byte and word
order (the Go test computes the same values); unit 2 holds one marker
register. Addresses beyond the blocks answer "illegal data address".
"""
import asyncio
import struct
import sys

from pymodbus.datastore import (ModbusSequentialDataBlock, ModbusServerContext,
                                ModbusSlaveContext)
from pymodbus.server.async_io import ModbusSerialServer, ModbusTcpServer
from pymodbus.transaction import ModbusRtuFramer


def orders(raw):
    """The four layouts of a big-endian value: ABCD, BADC, CDAB, DCBA, as
    16-bit register lists."""
    words = [raw[i:i + 2] for i in range(0, len(raw), 2)]
    swapped = [w[::-1] for w in words]
    out = []
    for ws in (words, swapped, words[::-1], swapped[::-1]):
        out.append([struct.unpack(">H", w)[0] for w in ws])
    return out


def unit1():
    hr = [0] * 64
    def put(addr, regs):
        hr[addr:addr + len(regs)] = regs
    # 16-bit values: as sent, then with the bytes swapped.
    for addr, fmt, v in ((0, ">h", -1234), (2, ">H", 54321)):
        a, b = orders(struct.pack(fmt, v))[:2]
        put(addr, a)
        put(addr + 1, b)
    # 32- and 64-bit values in the four orders, one after the other.
    for addr, fmt, v in ((10, ">i", -123456789), (20, ">I", 3000000000),
                         (30, ">f", -1234.5), (40, ">d", 12345.678901)):
        n = struct.calcsize(fmt) // 2
        for k, regs in enumerate(orders(struct.pack(fmt, v))):
            put(addr + k * n, regs)
    return ModbusSlaveContext(
        co=ModbusSequentialDataBlock(0, [True, False, True]),
        di=ModbusSequentialDataBlock(0, [False, True]),
        hr=ModbusSequentialDataBlock(0, hr),
        ir=ModbusSequentialDataBlock(0, [42] + list(range(1, 300))),
        zero_mode=True)


def unit2():
    return ModbusSlaveContext(
        co=ModbusSequentialDataBlock(0, [False]),
        di=ModbusSequentialDataBlock(0, [False]),
        hr=ModbusSequentialDataBlock(0, [7777]),
        ir=ModbusSequentialDataBlock(0, [0]),
        zero_mode=True)


async def main():
    ctx = ModbusServerContext(slaves={1: unit1(), 2: unit2()}, single=False)
    if sys.argv[1] == "tcp":
        server = ModbusTcpServer(ctx, address=("127.0.0.1", 0), allow_reuse_address=True)
        task = asyncio.create_task(server.serve_forever())
        await server.serving
        print("port", server.server.sockets[0].getsockname()[1], flush=True)
        await task
    else:
        server = ModbusSerialServer(ctx, framer=ModbusRtuFramer, port=sys.argv[2],
                                    baudrate=int(sys.argv[3]), parity="N", stopbits=2,
                                    bytesize=8, timeout=0.005)
        await server.start()
        if server.transport is None:
            sys.exit("cannot open " + sys.argv[2])
        print("ready", flush=True)
        await server.serve_forever()


asyncio.run(main())
