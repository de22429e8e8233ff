// Package mqttwire is an MQTT 3.1.1 client for one connection, over a
// net.Conn the caller dialled (TCP or TLS): the uplink owns dialling,
// reconnects and delivery guarantees, and needs from MQTT only this:
//
//   - CONNECT (§3.1) with a client id, a clean session, a will,
//     username/password and a keepalive; the CONNACK return code (§3.2)
//     of a refusal as a *ConnackError.
//   - PUBLISH at QoS 0 and 1 (§3.3, §4.3.1, §4.3.2), with retain; a QoS 1
//     message's Token is done on its PUBACK (§3.4). A bounded window of
//     messages in flight paces the publisher.
//   - SUBSCRIBE (§3.8, §3.9) with a handler per call; incoming PUBLISHes
//     at QoS 0 and 1, a QoS 1 one acknowledged once its handler returned.
//   - PINGREQ/PINGRESP (§3.12, §3.13) within the keepalive (§3.1.2.10);
//     no PINGRESP within PingTimeout ends the connection.
//   - DISCONNECT (§3.14), written before the socket closes, so that the
//     broker drops the will.
//
// One goroutine reads and one writes; Close returns once both have exited.
// The first error ends the connection, once: every pending Token fails
// with it, and Err returns it ("connection lost: <cause>").
//
// Deliberately not implemented, because the uplink does not need it:
//   - QoS 2 (exactly once): the store gives at-least-once with duplicates
//     dropped by seq, which QoS 1 carries; QoS 2 adds two round trips.
//   - Sessions that survive a connection (clean session 0, resending on
//     reconnect with DUP): the uplink resends from its store cursor on
//     a new connection, so in-memory session state would only duplicate
//     that, and lose it at a restart anyway.
//   - UNSUBSCRIBE: subscriptions last as long as their connection.
//   - WebSocket transport and MQTT 5: no broker the gateways talk to
//     needs them; both would be code in the binary for nothing.
//
// The packet encoding and decoding are pure functions (packet.go); the
// reader refuses a packet over Options.MaxPacketSize before reading it.
package mqttwire
