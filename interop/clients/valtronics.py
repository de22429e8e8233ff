#!/usr/bin/env python3
"""Interop client for the Valtronics-style WebSocket API (seed 000).

Written the way the seed's Python reference client is: asyncio and the
`websockets` library; auth is checked on the very next message after it is
sent; subscriptions carry their filters under "filters"; ping sends an
isoformat timestamp. It runs against a floorhub agent and exits 0 once it has
seen telemetry_update, device_status_update, system_status_update and pong,
printing one JSON line per message type the first time it sees it; 1 on
timeout, on a failed auth or on a server error message.

usage: valtronics.py WS_URL TOKEN [TIMEOUT_SECONDS]
"""

import asyncio
import json
import sys
from datetime import datetime

import websockets

WANTED = {"telemetry_update", "device_status_update", "system_status_update", "pong"}


class ValtronicsClient:
    def __init__(self, url, token):
        self.url = url
        self.token = token
        self.websocket = None
        self.subscriptions = {}
        self.seen = set()

    async def connect(self):
        self.websocket = await websockets.connect(self.url)
        await self.authenticate()

    async def authenticate(self):
        await self.send_message({"type": "auth", "token": self.token})
        # The seed's client reads the very next message and requires it to
        # be a successful auth_response: nothing else may come first.
        data = json.loads(await self.websocket.recv())
        report("auth_response", data)
        if data.get("type") != "auth_response" or data.get("success") is not True:
            raise RuntimeError(f"authentication failed: {data!r}")

    async def subscribe(self, channel, filters=None):
        subscription = {"type": "subscribe", "channel": channel}
        if filters:
            subscription["filters"] = filters
        await self.send_message(subscription)
        self.subscriptions[channel] = filters

    async def ping(self):
        await self.send_message({"type": "ping", "timestamp": datetime.utcnow().isoformat()})

    async def send_message(self, message):
        await self.websocket.send(json.dumps(message))

    async def listen(self):
        """Reads until every wanted type was seen; raises on a server error."""
        while not WANTED <= self.seen:
            data = json.loads(await self.websocket.recv())
            self.handle_message(data)

    def handle_message(self, data):
        kind = data.get("type")
        if kind == "error":
            raise RuntimeError(f"server error: {data!r}")
        if kind == "telemetry_update" and data.get("device_id") != 1:
            raise RuntimeError(f"telemetry for device {data.get('device_id')} despite the device_id 1 filter: {data!r}")
        if kind == "alert" and data.get("severity") not in ("critical", "warning"):
            raise RuntimeError(f"alert of severity {data.get('severity')!r} despite the filter: {data!r}")
        if kind == "pong" and not data.get("timestamp"):
            raise RuntimeError(f"pong without the ping's timestamp: {data!r}")
        if kind not in self.seen:
            self.seen.add(kind)
            report(kind, data)

    async def disconnect(self):
        if self.websocket:
            await self.websocket.close()


def report(kind, data):
    print(json.dumps({"client": "valtronics.py", "type": kind, "message": data}), flush=True)


async def run(url, token):
    client = ValtronicsClient(url, token)
    await client.connect()
    try:
        await client.subscribe("telemetry", {"device_id": 1})
        await client.subscribe("alerts", {"severity": ["critical", "warning"]})
        await client.subscribe("devices")
        await client.subscribe("system")
        await client.ping()
        await client.listen()
    finally:
        await client.disconnect()


def main(argv):
    if len(argv) < 3:
        print("usage: valtronics.py WS_URL TOKEN [TIMEOUT_SECONDS]", file=sys.stderr)
        return 2
    timeout = float(argv[3]) if len(argv) > 3 else 30.0
    try:
        asyncio.run(asyncio.wait_for(run(argv[1], argv[2]), timeout))
    except asyncio.TimeoutError:
        print(f"valtronics.py: timeout after {timeout}s", file=sys.stderr)
        return 1
    except Exception as e:  # any failure is the check failing
        print(f"valtronics.py: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"client": "valtronics.py", "result": "ok"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
