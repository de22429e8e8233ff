// The stock Socket.IO client (npm socket.io-client, default options: HTTP
// long-polling first, then the upgrade to WebSocket) against
// cmd/sioconformance's /socket.io/. Prints one line per step; exits 0 when
// every step passed, 1 with the failing step on stderr.
//
//   node client.mjs http://127.0.0.1:3000 [timeout-ms]
import { io } from "socket.io-client";
import assert from "node:assert/strict";

const url = process.argv[2];
const timeout = Number(process.argv[3] || 20000);
const step = (name) => console.log("ok " + name);
const timer = setTimeout(() => fail(new Error(`timed out after ${timeout} ms`)), timeout);
const sockets = [];

function fail(err) {
  console.error("FAIL:", err && err.stack ? err.stack : err);
  sockets.forEach((s) => s.close());
  process.exit(1);
}

function once(emitter, event) {
  return new Promise((resolve) => emitter.once(event, (...args) => resolve(args)));
}

async function main() {
  // Main namespace, auth payload, polling first.
  const socket = io(url, { auth: { token: "abc" } });
  sockets.push(socket);
  const [auth] = await once(socket, "auth");
  assert.deepEqual(auth, { token: "abc" });
  assert.equal(socket.io.engine.transport.name === "polling" || socket.io.engine.transport.name === "websocket", true);
  step("connect with auth");

  // An emit with an ack (over whichever transport is current).
  const answer = await socket.timeout(5000).emitWithAck("message-with-ack", 1, "2", { 3: [true] });
  assert.deepEqual(answer, 1); // the ack's first argument; all of them below
  step("emit with ack");

  // The upgrade to WebSocket.
  if (socket.io.engine.transport.name !== "websocket") {
    await once(socket.io.engine, "upgrade");
  }
  assert.equal(socket.io.engine.transport.name, "websocket");
  step("upgrade to websocket");

  // Every ack argument, and binary both ways, after the upgrade.
  const acked = await new Promise((resolve, reject) => {
    socket.timeout(5000).emit("message-with-ack", "x", Buffer.from([1, 2, 3]), (err, ...args) => (err ? reject(err) : resolve(args)));
  });
  assert.deepEqual(acked, ["x", Buffer.from([1, 2, 3])]);
  step("binary ack");
  const back = once(socket, "message-back");
  socket.emit("message", { blob: Buffer.from([4, 5, 6]), n: 7 }, Buffer.from([8]));
  const [obj, buf] = await back;
  assert.deepEqual(obj, { blob: Buffer.from([4, 5, 6]), n: 7 });
  assert.deepEqual(buf, Buffer.from([8]));
  step("binary event");

  // A second namespace on the same connection.
  const custom = io(url + "/custom", { auth: { token: "def" } });
  sockets.push(custom);
  const [cauth] = await once(custom, "auth");
  assert.deepEqual(cauth, { token: "def" });
  assert.equal(custom.io, socket.io); // multiplexed on one Engine.IO session
  step("custom namespace");

  // An unknown namespace is refused.
  const random = io(url + "/random");
  sockets.push(random);
  const [err] = await once(random, "connect_error");
  assert.equal(err.message, "Invalid namespace");
  step("unknown namespace refused");

  // Polling only, binary as base64 in the payload.
  const polling = io(url, { transports: ["polling"], forceNew: true, auth: { token: "p" } });
  sockets.push(polling);
  await once(polling, "auth");
  const pback = once(polling, "message-back");
  polling.emit("message", Buffer.from([9, 10]));
  const [pbuf] = await pback;
  assert.deepEqual(pbuf, Buffer.from([9, 10]));
  step("polling only, binary");

  sockets.forEach((s) => s.close());
  clearTimeout(timer);
}

main().catch(fail);
