// Decodes (and encodes) Sparkplug B payloads with Eclipse Tahu's
// sparkplug-payload, for uplink/mqtt's tests. Each line of stdin is a
// request, answered by one line of stdout:
//   <base64 payload>      -> the decoded payload as JSON (64-bit integers as
//                            numbers, bytes as base64)
//   E <payload as JSON>   -> {"b64": "<the encoded payload>"}
// A request that fails is answered {"error": "..."}.
"use strict";
const readline = require("readline");
const Long = require("long");
const sparkplug = require("sparkplug-payload").get("spBv1.0");

function plain(key, value) {
  if (Long.isLong(value)) return value.toNumber();
  if (value instanceof Uint8Array) return Buffer.from(value).toString("base64");
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  return value;
}

const rl = readline.createInterface({ input: process.stdin, terminal: false });
rl.on("line", (line) => {
  let out;
  try {
    if (line.startsWith("E ")) {
      out = { b64: Buffer.from(sparkplug.encodePayload(JSON.parse(line.slice(2)))).toString("base64") };
    } else {
      out = sparkplug.decodePayload(Buffer.from(line.trim(), "base64"));
    }
  } catch (e) {
    out = { error: String(e && e.message ? e.message : e) };
  }
  process.stdout.write(JSON.stringify(out, plain) + "\n");
});
