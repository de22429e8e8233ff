// Interop client for the Aether V3 endpoint (seed 002), written from the
// seed's TypeScript example: the browser WebSocket API on
// ws://host/v3/ws/group/${group_id}/client/${client_id}, the token in ?token=,
// WS_Message_V3 envelopes switched on msg_type.
//
// It checks, one step after the other: its own presence join (listing the
// gateway as a member), a heartbeat echoed back, a group message delivered
// back to its sender, an echo, a ping cmd to the gateway answered with a
// RESULT, and an invalid message answered with an error envelope. One JSON
// line per step; exit 0 when all passed, 1 on a failed check or timeout.
//
// usage: node [--experimental-websocket] aether.mjs WS_BASE TOKEN GROUP_ID GATEWAY_ID [TIMEOUT_SECONDS]
// where WS_BASE is ws://host:port.

const [base, token, group_id, gateway_id, timeoutArg] = process.argv.slice(2);
if (!base || !token || !group_id || !gateway_id) {
  console.error('usage: aether.mjs WS_BASE TOKEN GROUP_ID GATEWAY_ID [TIMEOUT_SECONDS]');
  process.exit(2);
}
if (typeof WebSocket !== 'function') {
  console.error('aether.mjs: no global WebSocket: use Node 22+, or node --experimental-websocket on Node 20/21');
  process.exit(2);
}
const timeoutSeconds = Number(timeoutArg || 30);

// A random id, as the seed asks ("Vision ID" random strings).
const client_id = 'interop_' + Math.random().toString(36).slice(2, 10);
const ws_url = `${base}/v3/ws/group/${group_id}/client/${client_id}?token=${encodeURIComponent(token)}`;

let step = 0;
const timer = setTimeout(() => fail(`timeout after ${timeoutSeconds}s at step ${steps[step] ? steps[step].name : step}`), timeoutSeconds * 1000);

function fail(why) {
  console.error(`aether.mjs: ${why}`);
  clearTimeout(timer);
  process.exitCode = 1;
  socket.close();
}

function check(cond, why, m) {
  if (!cond) {
    throw new Error(`${why}: ${JSON.stringify(m)}`);
  }
}

// The fields the server fills on everything it sends.
function stamped(m) {
  check(m.version === '3', 'version is not "3"', m);
  check(typeof m.sent_at === 'string' && !Number.isNaN(Date.parse(m.sent_at)), 'sent_at is not a timestamp', m);
  check(typeof m.group_id === 'string' && m.group_id !== '', 'group_id missing', m);
}

// Each step: what to send once the previous one passed (null: nothing), and
// a matcher that returns true when m is the awaited reply (throws on a wrong
// one). Messages that match nothing (others' presence) are skipped.
const steps = [
  {
    name: 'presence_join',
    send: null,
    match: (m) => {
      if (m.msg_type !== 'presence' || !m.payload || m.payload.client_id !== client_id) return false;
      stamped(m);
      check(m.payload.event === 'join', 'own presence is not a join', m);
      check(m.group_id === group_id, 'presence in another group', m);
      check(Array.isArray(m.payload.members) && m.payload.members.includes(client_id), 'members lack the client', m);
      check(m.payload.members.includes(gateway_id), `members lack the gateway ${gateway_id}`, m);
      return true;
    },
  },
  {
    name: 'heartbeat',
    send: { msg_type: 'heartbeat', target: 'echo' },
    match: (m) => {
      if (m.msg_type !== 'heartbeat') return false;
      stamped(m);
      check(m.target === 'echo' && m.from_id === client_id, 'heartbeat not echoed to its sender', m);
      return true;
    },
  },
  {
    name: 'group',
    send: { msg_type: 'msg', target: 'group', msg: 'Hello team!' },
    match: (m) => {
      if (m.msg_type !== 'msg' || m.target !== 'group' || m.from_id !== client_id) return false;
      stamped(m);
      check(m.msg === 'Hello team!' && m.group_id === group_id, 'group message altered', m);
      return true;
    },
  },
  {
    name: 'echo',
    send: { msg_type: 'msg', target: 'echo', msg: 'Ping!' },
    match: (m) => {
      if (m.msg_type !== 'msg' || m.target !== 'echo' || m.msg !== 'Ping!') return false;
      stamped(m);
      check(m.from_id === client_id, 'echo from another sender', m);
      return true;
    },
  },
  {
    name: 'cmd_ping',
    send: { msg_type: 'cmd', target: 'direct', to_id: gateway_id, cmd: 'ping', payload: { request_id: 'interop-1' } },
    match: (m) => {
      if (m.from_id !== gateway_id || m.to_id !== client_id) return false;
      stamped(m);
      check(m.target === 'direct', 'command reply not direct', m);
      check(m.payload && m.payload.request_id === 'interop-1', 'request_id not echoed', m);
      check(m.payload.ok === true, 'ping failed', m);
      check(m.payload.result && m.payload.result.pong === true, 'no pong in the result', m);
      return true;
    },
  },
  {
    name: 'invalid_rejected',
    // direct without to_id: must be answered with an error, not dropped.
    send: { msg_type: 'msg', target: 'direct', msg: 'to nobody' },
    match: (m) => {
      if (m.cmd !== 'ERROR') return false;
      stamped(m);
      check(m.payload && m.payload.code === 'invalid_message', 'error code is not invalid_message', m);
      check(m.payload.field === 'to_id', 'error does not name to_id', m);
      return true;
    },
  },
];

function advance() {
  step++;
  if (step === steps.length) {
    clearTimeout(timer);
    console.log(JSON.stringify({ client: 'aether.mjs', result: 'ok' }));
    socket.close(1000, 'done');
    return;
  }
  const s = steps[step];
  if (s.send) {
    socket.send(JSON.stringify(s.send));
  }
}

const socket = new WebSocket(ws_url);

socket.onopen = () => {
  console.error(`aether.mjs: connected to Aether WS V3 as ${client_id} in ${group_id}`);
};

socket.onmessage = (event) => {
  let m;
  try {
    m = JSON.parse(event.data);
  } catch (e) {
    fail(`not JSON: ${event.data}`);
    return;
  }
  if (step >= steps.length) return;
  // An error envelope is a failure unless this step waits for one.
  if (m.cmd === 'ERROR' && steps[step].name !== 'invalid_rejected') {
    fail(`error at step ${steps[step].name}: ${JSON.stringify(m)}`);
    return;
  }
  try {
    if (steps[step].match(m)) {
      console.log(JSON.stringify({ client: 'aether.mjs', step: steps[step].name, message: m }));
      advance();
    }
  } catch (e) {
    fail(`step ${steps[step].name}: ${e.message}`);
  }
};

socket.onerror = () => {
  // onclose follows with the code.
};

socket.onclose = (event) => {
  if (step < steps.length) {
    fail(`closed at step ${steps[step].name}: ${event.code} ${event.reason}`);
  }
};
