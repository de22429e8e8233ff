// Interop client for the Valtronics-style WebSocket API (seed 000), written
// the way the seed's JavaScript class is: the browser WebSocket API (global
// WebSocket, onopen/onmessage/onclose), auth sent on open, filters spread at
// the top level of the subscribe message, linear reconnect backoff giving up
// after 5 tries.
//
// It exits 0 once it has seen telemetry_update, device_status_update,
// system_status_update and pong, printing one JSON line per message type the
// first time it sees it; 1 on timeout, on a failed auth or on a server error.
//
// usage: node [--experimental-websocket] valtronics.mjs WS_URL TOKEN [TIMEOUT_SECONDS [reconnect]]
// (Node 22 and later have a global WebSocket; Node 20.10+ needs the flag.)
//
// With "reconnect", seeing everything once prints {"round":1,"result":"ok"}
// and the client stays connected; it exits 0 only after the connection was
// lost, the reconnect logic got it back, and everything was seen again.

const WANTED = ['telemetry_update', 'device_status_update', 'system_status_update', 'pong'];

class ValtronicsWebSocket {
  constructor(url, token) {
    this.url = url;
    this.token = token;
    this.ws = null;
    this.subscriptions = new Map();
    this.reconnectAttempts = 0;
    this.maxReconnectAttempts = 5;
    this.reconnectInterval = 1000; // ms, times the attempt number
    this.closing = false;
    this.onOpen = null;
    this.onMessage = null;
    this.onFatal = null;
  }

  connect() {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    let lost = false;
    // connectionLost runs once per socket, from onclose or from onerror on a
    // socket that never opened: Node 20's WebSocket fires only error, no
    // close, when the connection is refused (browsers fire both), so a
    // reconnect hung on onclose alone would wait forever.
    const connectionLost = (why) => {
      if (lost || this.closing) {
        return;
      }
      lost = true;
      console.error(`valtronics.mjs: disconnected (${why})`);
      this.reconnect();
    };
    ws.onopen = () => {
      if (this.onOpen) {
        this.onOpen();
      }
      this.authenticate();
      // Pipelined behind auth, without waiting for auth_response: the
      // server handles a connection's messages in order.
      for (const [channel, filters] of this.subscriptions) {
        this.sendSubscribe(channel, filters);
      }
      this.ping();
      this.reconnectAttempts = 0;
    };
    ws.onmessage = (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (e) {
        this.fail(`not JSON: ${event.data}`);
        return;
      }
      this.handleMessage(data);
    };
    ws.onclose = (event) => connectionLost(`${event.code} ${event.reason}`);
    ws.onerror = () => {
      if (ws.readyState === WebSocket.CONNECTING) {
        connectionLost('connection failed');
      }
    };
  }

  authenticate() {
    this.send({ type: 'auth', token: this.token });
  }

  // subscribe remembers the channel; the subscriptions are (re)sent on every
  // open, so a subscribe before open or after a reconnect is not lost (the
  // seed's send drops it while CONNECTING).
  subscribe(channel, filters = {}) {
    this.subscriptions.set(channel, filters);
    this.sendSubscribe(channel, filters);
  }

  sendSubscribe(channel, filters) {
    this.send({ type: 'subscribe', channel: channel, ...filters });
  }

  ping() {
    this.send({ type: 'ping', timestamp: new Date().toISOString() });
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
    }
  }

  handleMessage(data) {
    switch (data.type) {
      case 'auth_response':
        if (!data.success) {
          this.fail(`authentication failed: ${data.error}: ${data.message}`);
          return;
        }
        break;
      case 'error':
        this.fail(`server error: ${JSON.stringify(data)}`);
        return;
      case 'telemetry_update':
      case 'alert':
      case 'device_status_update':
      case 'system_status_update':
      case 'pong':
      case 'subscribed':
        break;
      default:
        console.error('valtronics.mjs: unknown message type:', data.type);
    }
    if (this.onMessage) {
      this.onMessage(data);
    }
  }

  reconnect() {
    if (this.reconnectAttempts < this.maxReconnectAttempts) {
      this.reconnectAttempts++;
      setTimeout(() => {
        console.error(`valtronics.mjs: reconnecting (${this.reconnectAttempts}/${this.maxReconnectAttempts})`);
        this.connect();
      }, this.reconnectInterval * this.reconnectAttempts);
    } else {
      this.fail('gave up reconnecting');
    }
  }

  fail(why) {
    if (this.onFatal) {
      this.onFatal(why);
    }
  }

  disconnect() {
    this.closing = true;
    if (this.ws) {
      this.ws.close();
      this.ws = null;
    }
  }
}

function report(type, message) {
  console.log(JSON.stringify({ client: 'valtronics.mjs', type, message }));
}

const [url, token, timeoutArg, mode] = process.argv.slice(2);
if (!url || !token) {
  console.error('usage: valtronics.mjs WS_URL TOKEN [TIMEOUT_SECONDS]');
  process.exit(2);
}
if (typeof WebSocket !== 'function') {
  console.error('valtronics.mjs: no global WebSocket: use Node 22+, or node --experimental-websocket on Node 20/21');
  process.exit(2);
}
const timeoutSeconds = Number(timeoutArg || 30);
const rounds = mode === 'reconnect' ? 2 : 1;
let round = 0;

const client = new ValtronicsWebSocket(url, token);
const seen = new Set();
const timer = setTimeout(() => {
  console.error(`valtronics.mjs: timeout after ${timeoutSeconds}s; missing: ${WANTED.filter((t) => !seen.has(t)).join(', ')}`);
  client.disconnect();
  process.exit(1);
}, timeoutSeconds * 1000);

function finish(code, why) {
  clearTimeout(timer);
  if (why) {
    console.error(`valtronics.mjs: ${why}`);
  }
  client.disconnect();
  if (code === 0) {
    console.log(JSON.stringify({ client: 'valtronics.mjs', result: 'ok' }));
  }
  process.exitCode = code;
}

client.onFatal = (why) => finish(1, why);
// Each connection is a round: what counts is seen again after a reconnect.
client.onOpen = () => {
  round++;
  seen.clear();
};
client.onMessage = (data) => {
  if (data.type === 'telemetry_update' && data.device_id !== 1) {
    client.fail(`telemetry for device ${data.device_id} despite the device_id 1 filter: ${JSON.stringify(data)}`);
    return;
  }
  if (data.type === 'alert' && !['critical', 'warning'].includes(data.severity)) {
    client.fail(`alert of severity ${data.severity} despite the filter: ${JSON.stringify(data)}`);
    return;
  }
  if (data.type === 'pong' && !data.timestamp) {
    client.fail(`pong without the ping's timestamp: ${JSON.stringify(data)}`);
    return;
  }
  if (!seen.has(data.type)) {
    seen.add(data.type);
    report(data.type, data);
    if (WANTED.every((t) => seen.has(t))) {
      if (round >= rounds) {
        finish(0);
      } else {
        console.log(JSON.stringify({ client: 'valtronics.mjs', round, result: 'ok' }));
      }
    }
  }
};

// As in the seed's usage example: subscribe right after connect().
client.connect();
client.subscribe('telemetry', { device_id: 1 });
client.subscribe('alerts', { severity: ['critical', 'warning'] });
client.subscribe('devices');
client.subscribe('system');
