#!/usr/bin/env python3
"""Sends the client messages of seed 000 verbatim and checks each reply.

Every example message the Valtronics document shows (auth, each channel's
example subscription, unsubscribe with device_id, ping with the document's
timestamp, a batch as its MessageBatcher builds it) is sent as printed there,
on /ws, and each must be answered with the reply floorhub documents (never an
error). The channel endpoints the document lists (/ws/telemetry,
/ws/devices) must answer auth and then confirm the subscription and deliver
their update type. One JSON line per check; exit 0 when all pass, 1 otherwise.

usage: seed_examples.py WS_BASE TOKEN [TIMEOUT_SECONDS]   (WS_BASE: ws://host:port)
"""

import asyncio
import json
import sys

import websockets

UPDATES = {"telemetry_update", "alert", "device_status_update", "system_status_update"}

# (message as in the seed, the reply type it must get, fields the reply must have)
EXAMPLES = [
    ({"type": "subscribe", "channel": "telemetry", "device_id": 1},
     "subscribed", {"channel": "telemetry"}),
    ({"type": "subscribe", "channel": "telemetry", "device_id": 1,
      "filters": {"metrics": ["temperature", "humidity"], "frequency": "real-time"}},
     "subscribed", {"channel": "telemetry"}),
    ({"type": "subscribe", "channel": "alerts",
      "filters": {"severity": ["critical", "warning"], "device_id": 1}},
     "subscribed", {"channel": "alerts"}),
    ({"type": "subscribe", "channel": "devices",
      "filters": {"device_id": [1, 2, 3], "status_types": ["online", "offline", "warning"]}},
     "subscribed", {"channel": "devices"}),
    ({"type": "subscribe", "channel": "system",
      "filters": {"metrics": ["cpu_usage", "memory_usage", "active_connections"], "frequency": "30s"}},
     "subscribed", {"channel": "system"}),
    ({"type": "unsubscribe", "channel": "telemetry", "device_id": 1},
     "unsubscribed", {"channel": "telemetry"}),
    ({"type": "ping", "timestamp": "2024-01-01T12:00:00Z"},
     "pong", {"timestamp": "2024-01-01T12:00:00Z"}),
    ({"type": "unsubscribe", "channel": "alerts"},
     "unsubscribed", {"channel": "alerts"}),
]


def report(check, message):
    print(json.dumps({"client": "seed_examples.py", "check": check, "message": message}), flush=True)


async def reply(ws):
    """The next message that is not a data update."""
    while True:
        data = json.loads(await ws.recv())
        if data.get("type") not in UPDATES:
            return data


def expect(check, data, kind, fields):
    if data.get("type") != kind or any(data.get(k) != v for k, v in fields.items()):
        raise RuntimeError(f"{check}: got {data!r}, want type {kind} with {fields!r}")
    report(check, data)


async def auth(ws, token, check):
    await ws.send(json.dumps({"type": "auth", "token": token}))
    expect(check, json.loads(await ws.recv()), "auth_response", {"success": True})


async def run(base, token):
    async with websockets.connect(base + "/ws") as ws:
        await auth(ws, token, "auth")
        for i, (message, kind, fields) in enumerate(EXAMPLES):
            await ws.send(json.dumps(message))
            expect(f"example {i}: {message['type']} {message.get('channel', '')}".strip(), await reply(ws), kind, fields)
        # A batch as the seed's MessageBatcher sends it: replies in order.
        batch = {"type": "batch", "messages": [
            {"type": "ping", "timestamp": "2024-01-01T12:00:00Z"},
            {"type": "subscribe", "channel": "telemetry", "device_id": 1},
        ]}
        await ws.send(json.dumps(batch))
        expect("batch: ping", await reply(ws), "pong", {"timestamp": "2024-01-01T12:00:00Z"})
        expect("batch: subscribe", await reply(ws), "subscribed", {"channel": "telemetry"})

    for channel, update in (("telemetry", "telemetry_update"), ("devices", "device_status_update")):
        async with websockets.connect(f"{base}/ws/{channel}") as ws:
            await auth(ws, token, f"/ws/{channel}: auth")
            expect(f"/ws/{channel}: subscribed", json.loads(await ws.recv()), "subscribed", {"channel": channel})
            data = json.loads(await ws.recv())
            expect(f"/ws/{channel}: update", data, update, {"channel": channel})


def main(argv):
    if len(argv) < 3:
        print("usage: seed_examples.py WS_BASE TOKEN [TIMEOUT_SECONDS]", file=sys.stderr)
        return 2
    timeout = float(argv[3]) if len(argv) > 3 else 30.0
    try:
        asyncio.run(asyncio.wait_for(run(argv[1], argv[2]), timeout))
    except asyncio.TimeoutError:
        print(f"seed_examples.py: timeout after {timeout}s", file=sys.stderr)
        return 1
    except Exception as e:  # any failure is the check failing
        print(f"seed_examples.py: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"client": "seed_examples.py", "result": "ok"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
