package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/floorhub/floorhub/hub/engineio"
	"github.com/floorhub/floorhub/hub/socketio"
	"github.com/gorilla/websocket"
)

// client is one Socket.IO client in the namespace "/", on a WebSocket
// from the start (transport=websocket: what a stock client ends up on
// after its upgrade, without the long-polling handshake before it).
type client struct {
	ws  *websocket.Conn
	wmu sync.Mutex // one writer at a time: the reader answers pings
}

// sourceAddr is client i's own loopback address, 127.1.x.y: a server's
// per-address session cap (floorhub's Engine.IO allows 32) is meant for
// one device, and a floor's 1000 clients are many devices.
func sourceAddr(i int) net.IP {
	return net.IPv4(127, 1, byte(i/200), byte(i%200+1))
}

// errRefused is a CONNECT_ERROR.
var errRefused = errors.New("connect_error")

// dial opens a session for user uid at base (http://host:port) and joins
// the namespace "/" with the auth payload {token}. It returns once the
// server answered the CONNECT.
// Client i dials from its own address when base is on IPv4 loopback.
func dial(ctx context.Context, base string, i int, uid int64, token string) (*client, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	u.Path = "/socket.io/"
	u.RawQuery = url.Values{"EIO": {"4"}, "transport": {"websocket"}, "userId": {strconv.FormatInt(uid, 10)}}.Encode()
	d := *websocket.DefaultDialer
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsLoopback() && ip.To4() != nil {
		d.NetDialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: sourceAddr(i)}}).DialContext
	}
	ws, _, err := d.DialContext(ctx, u.String(), nil)
	if err != nil {
		return nil, err
	}
	c := &client{ws: ws}
	fail := func(err error) (*client, error) {
		ws.Close()
		return nil, err
	}
	if stop := context.AfterFunc(ctx, func() { ws.Close() }); stop != nil {
		defer stop()
	}
	p, err := c.next()
	if err != nil {
		return fail(err)
	}
	if p.Type != engineio.Open {
		return fail(fmt.Errorf("siobench: first packet %q, want the open packet", p.Type))
	}
	auth, _ := json.Marshal(map[string]string{"token": token})
	if err := c.send(socketio.Packet{Type: socketio.Connect, Namespace: "/", Data: auth}); err != nil {
		return fail(err)
	}
	for {
		p, err := c.next()
		if err != nil {
			return fail(err)
		}
		if p.Type != engineio.Msg {
			continue
		}
		sp, err := socketio.DecodePacket(p.Data, 1)
		if err != nil {
			return fail(err)
		}
		switch sp.Type {
		case socketio.Connect:
			return c, nil
		case socketio.ConnectError:
			return fail(fmt.Errorf("%w: %s", errRefused, sp.Data))
		}
	}
}

// next reads one Engine.IO packet, answering pings on the way.
func (c *client) next() (engineio.Packet, error) {
	for {
		mt, b, err := c.ws.ReadMessage()
		if err != nil {
			return engineio.Packet{}, err
		}
		if mt != websocket.TextMessage {
			continue // no binary in the chat
		}
		p, err := engineio.DecodePacket(b)
		if err != nil {
			return p, err
		}
		if p.Type == engineio.Ping {
			c.wmu.Lock()
			err = c.ws.WriteMessage(websocket.TextMessage, []byte{byte(engineio.Pong)})
			c.wmu.Unlock()
			if err != nil {
				return p, err
			}
			continue
		}
		if p.Type == engineio.Close {
			return p, errors.New("siobench: the server closed the session")
		}
		return p, nil
	}
}

// send writes one Socket.IO packet.
func (c *client) send(p socketio.Packet) error {
	b := append([]byte{byte(engineio.Msg)}, socketio.AppendPacket(nil, p)...)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// emit sends an event with one argument.
func (c *client) emit(event string, arg any) error {
	data, _, err := socketio.EncodeArgs([]any{event, arg})
	if err != nil {
		return err
	}
	return c.send(socketio.Packet{Type: socketio.Event, Namespace: "/", Data: data})
}

// events calls f with each event's name and first argument until the
// connection ends; it returns why it ended.
func (c *client) events(f func(name string, arg json.RawMessage)) error {
	for {
		p, err := c.next()
		if err != nil {
			return err
		}
		if p.Type != engineio.Msg {
			continue
		}
		sp, err := socketio.DecodePacket(p.Data, 1)
		if err != nil {
			return err
		}
		if sp.Type != socketio.Event {
			continue
		}
		var args []json.RawMessage
		if err := json.Unmarshal(sp.Data, &args); err != nil || len(args) == 0 {
			return fmt.Errorf("siobench: event %s: %v", sp.Data, err)
		}
		var name string
		if err := json.Unmarshal(args[0], &name); err != nil {
			return fmt.Errorf("siobench: event name %s: %v", args[0], err)
		}
		var arg json.RawMessage
		if len(args) > 1 {
			arg = args[1]
		}
		f(name, arg)
	}
}

// Close closes the connection.
func (c *client) Close() error { return c.ws.Close() }
