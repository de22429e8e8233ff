// The reference server for cmd/siobench: seed 001's chat events on the
// stock npm socket.io server (package.json pins it), kept as lean as the
// seed describes: chats, messages and seen marks live in memory only
// (nothing is stored on disk, nothing survives a restart), the user is the
// handshake query's userId, and there is no token.
//
//   node server.mjs [port]      (default 3001, on 127.0.0.1)
import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.argv[2] || 3001);
const http = createServer();
const io = new Server(http); // default options, as a stock deployment

const chats = new Map(); // id -> {id, members, created_at}
const messages = new Map(); // chat id -> [message], the newest 500
const seen = new Map(); // `${chat}:${user}` -> last seen message id
let nextChat = 1;
let nextMessage = 1;

const room = (uid) => `user:${uid}`;
const fail = (socket, ack, message) => {
  const e = { status: "error", message };
  socket.emit("exception", e);
  if (typeof ack === "function") ack(e);
};
const positive = (v) => {
  const n = Number(v);
  return Number.isInteger(n) && n > 0 ? n : 0;
};
const member = (chat, uid) => chat && chat.members.includes(uid);
const view = (chat, uid) => {
  const list = messages.get(chat.id) || [];
  const last = seen.get(`${chat.id}:${uid}`) || 0;
  return {
    ...chat,
    unread_count: list.filter((m) => m.id > last && m.sender_id !== uid).length,
    last_message: list.length ? list[list.length - 1] : null,
  };
};

io.on("connection", (socket) => {
  const uid = positive(socket.handshake.query.userId);
  if (!uid) {
    socket.disconnect(true);
    return;
  }
  socket.join(room(uid)); // the online list: every socket of the user

  socket.on("create_chat", (p, ack) => {
    const to = positive(p && p.receiver_id);
    if (!to || to === uid) return fail(socket, ack, "receiver_id must be another user's id");
    let chat = [...chats.values()].find((c) => member(c, uid) && member(c, to));
    if (!chat) {
      chat = { id: nextChat++, members: [uid, to], created_at: new Date().toISOString() };
      chats.set(chat.id, chat);
    }
    const v = view(chat, uid);
    socket.emit("chat_created", v);
    if (typeof ack === "function") ack(v);
  });

  socket.on("create_message", (p, ack) => {
    const chat = chats.get(positive(p && p.chat_id));
    const to = positive(p && p.receiver_id);
    const text = p && p.message;
    if (!member(chat, uid)) return fail(socket, ack, "chat not found");
    if (!member(chat, to) || to === uid) return fail(socket, ack, "receiver is not the other member");
    if (typeof text !== "string" || !text.trim()) return fail(socket, ack, "message is required");
    const m = {
      id: nextMessage++, chat_id: chat.id, sender_id: uid, receiver_id: to,
      message: text, created_at: new Date().toISOString(),
    };
    const list = messages.get(chat.id) || [];
    list.push(m);
    if (list.length > 500) list.shift();
    messages.set(chat.id, list);
    // To the sender and to the receiver if online: every socket of both.
    io.to([room(uid), room(to)]).emit("response_message", m);
    if (typeof ack === "function") ack(m);
  });

  socket.on("seen_message", (p, ack) => {
    const chat = chats.get(positive(p && p.chat_id));
    if (!member(chat, uid)) return fail(socket, ack, "chat not found");
    const list = messages.get(chat.id) || [];
    seen.set(`${chat.id}:${uid}`, list.length ? list[list.length - 1].id : 0);
    if (typeof ack === "function") ack({ status: "ok" });
  });

  socket.on("chat_messages", (p, ack) => {
    const chat = chats.get(positive(p && p.chat_id));
    if (!member(chat, uid)) return fail(socket, ack, "chat not found");
    const list = messages.get(chat.id) || [];
    socket.emit("get_all_chat_messages", list);
    if (typeof ack === "function") ack(list);
  });

  socket.on("get_chats", (a, b) => {
    const ack = typeof a === "function" ? a : b; // get_chats has no payload
    const list = [...chats.values()].filter((c) => member(c, uid)).map((c) => view(c, uid));
    socket.emit("updated_chat_list", list);
    if (typeof ack === "function") ack(list);
  });
});

http.listen(port, "127.0.0.1", () => console.log(`socket.io ${port} pid ${process.pid}`));
