// Seed 001's floor chat with the stock Socket.IO client (default options:
// long-polling first, then the upgrade), against the real agent, in
// phases that cmd/agent's TestChatStockClient runs around agent restarts.
// Prints one "ok <step>" line per step and "chat_id <n>" when it knows
// the chat; exits 0 when every step passed, 1 with the failing step on
// stderr.
//
//   node chat.mjs <phase> <url> <alice's token> <bob's token> [chat id]
//
// Phase "before": alice (userId 1) and bob (2) connect; alice creates the
// chat and writes, both receive it; bob leaves; alice writes twice more,
// each acknowledged. Phase "after" (the agent was killed and restarted):
// alice writes once more; bob connects and finds 3 unread messages in his
// chat list, reads all 4, marks them seen; errors come as exceptions;
// tokens and userIds are checked.
import { io } from "socket.io-client";
import assert from "node:assert/strict";

const [phase, url, aliceTok, bobTok, chatArg] = process.argv.slice(2);
const step = (name) => console.log("ok " + name);
const timer = setTimeout(() => fail(new Error("timed out after 60 s")), 60000);
const sockets = [];

function fail(err) {
  console.error("FAIL:", err && err.stack ? err.stack : err);
  sockets.forEach((s) => s.close());
  process.exit(1);
}

function once(emitter, event) {
  return new Promise((resolve) => emitter.once(event, (...args) => resolve(args)));
}

// connect opens a user's socket as the seed's clients do (userId in the
// handshake query) with the token in the auth payload; the first
// updated_chat_list (sent on connect) is captured.
async function connect(userId, token) {
  const s = io(url, { query: { userId }, auth: { token }, reconnection: false, forceNew: true });
  sockets.push(s);
  const list = once(s, "updated_chat_list");
  await Promise.race([once(s, "connect"), once(s, "connect_error").then(([e]) => { throw e; })]);
  const [chats] = await list;
  return { s, chats };
}

async function upgraded(s) {
  if (s.io.engine.transport.name !== "websocket") {
    await once(s.io.engine, "upgrade");
  }
  assert.equal(s.io.engine.transport.name, "websocket");
}

async function refused(opts, want) {
  const s = io(url, { reconnection: false, forceNew: true, ...opts });
  sockets.push(s);
  const [err] = await once(s, "connect_error");
  assert.match(err.message, want);
  s.close();
}

async function before() {
  const alice = await connect(1, aliceTok);
  const bob = await connect(2, bobTok);
  assert.deepEqual(alice.chats, []);
  step("both connect");

  const created = once(alice.s, "chat_created");
  alice.s.emit("create_chat", { receiver_id: 2 });
  const [chat] = await created;
  assert.deepEqual(chat.members, [1, 2]);
  assert.equal(chat.unread_count, 0);
  console.log("chat_id " + chat.id);
  step("create_chat");

  const toAlice = once(alice.s, "response_message");
  const toBob = once(bob.s, "response_message");
  alice.s.emit("create_message", { chat_id: chat.id, receiver_id: 2, message: "Line 3 is down" });
  const [[ma], [mb]] = await Promise.all([toAlice, toBob]);
  assert.equal(ma.message, "Line 3 is down");
  assert.deepEqual(mb, ma);
  assert.equal(mb.sender_id, 1);
  assert.equal(mb.receiver_id, 2);
  step("create_message reaches both");

  const reply = once(alice.s, "response_message");
  bob.s.emit("create_message", { chat_id: chat.id, receiver_id: 1, message: "on my way" });
  assert.equal((await reply)[0].sender_id, 2);
  const seenAck = await bob.s.timeout(5000).emitWithAck("seen_message", { chat_id: chat.id });
  assert.deepEqual(seenAck, { status: "ok" });
  step("reply and seen");

  await Promise.all([upgraded(alice.s), upgraded(bob.s)]);
  step("upgrade to websocket");

  bob.s.close();
  for (const text of ["belt replaced", "restarting the line"]) {
    const acked = await alice.s.timeout(10000).emitWithAck("create_message", { chat_id: chat.id, receiver_id: 2, message: text });
    assert.equal(acked.message, text);
  }
  step("messages to an offline member acknowledged");
  alice.s.close();
}

async function after() {
  const chatId = Number(chatArg);
  const alice = await connect(1, aliceTok);
  const acked = await alice.s.timeout(10000).emitWithAck("create_message", { chat_id: chatId, receiver_id: 2, message: "line running" });
  assert.equal(acked.message, "line running");
  step("message after the restart");

  const bob = await connect(2, bobTok);
  assert.equal(bob.chats.length, 1);
  assert.equal(bob.chats[0].id, chatId);
  assert.equal(bob.chats[0].unread_count, 3);
  assert.equal(bob.chats[0].last_message.message, "line running");
  step("offline member gets unread counts on connect");

  const all = once(bob.s, "get_all_chat_messages");
  bob.s.emit("chat_messages", { chat_id: chatId });
  const [msgs] = await all;
  assert.deepEqual(msgs.map((m) => m.message), ["Line 3 is down", "on my way", "belt replaced", "restarting the line", "line running"]);
  step("chat_messages after the restart");

  bob.s.emit("seen_message", { chat_id: chatId });
  const list = once(bob.s, "updated_chat_list");
  bob.s.emit("get_chats");
  assert.equal((await list)[0][0].unread_count, 0);
  const viaAck = await bob.s.timeout(5000).emitWithAck("get_chats");
  assert.equal(viaAck[0].unread_count, 0);
  step("seen_message and get_chats");

  const exc = once(bob.s, "exception");
  bob.s.emit("create_message", { chat_id: chatId, receiver_id: 1, message: "" });
  assert.deepEqual((await exc)[0], { status: "error", message: "bad request: message is required" });
  const excAck = await bob.s.timeout(5000).emitWithAck("chat_messages", { chat_id: 999 });
  assert.deepEqual(excAck, { status: "error", message: "chat 999 not found" });
  step("errors as exception and through the ack");

  await upgraded(bob.s);
  await refused({}, /no token/);
  await refused({ query: { userId: 1 }, auth: { token: bobTok } }, /not the token's user/);
  await refused({ query: { userId: 2, token: "not.a.token" } }, /invalid token/);
  step("connect_error without a valid token or with another userId");
  alice.s.close();
  bob.s.close();
}

(phase === "before" ? before() : after()).then(() => {
  clearTimeout(timer);
  process.exit(0);
}, fail);
