package mqttwire

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/floorhub/floorhub/internal/testkit"
)

// peer is the broker's end of a real loopback TCP connection, scripted by
// the test with this package's own encoders and reader.
type peer struct {
	t  *testing.T
	nc net.Conn
	r  *reader
}

// dialPeer returns the client's and the broker's ends of a TCP connection.
func dialPeer(t *testing.T) (net.Conn, *peer) {
	t.Helper()
	ln := testkit.Listen(t)
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, _ := ln.Accept()
		accepted <- nc
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{t: t, nc: <-accepted}
	if p.nc == nil {
		t.Fatal("accept failed")
	}
	p.r = &reader{r: bufio.NewReader(p.nc), max: 1 << 20}
	t.Cleanup(func() { nc.Close(); p.nc.Close() })
	return nc, p
}

// next reads the client's next packet, which must be of type typ.
func (p *peer) next(typ byte) packet {
	p.t.Helper()
	p.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	pk, err := p.r.next()
	if err != nil {
		p.t.Fatalf("peer: waiting for packet type %d: %v", typ, err)
	}
	if pk.typ != typ {
		p.t.Fatalf("peer: packet type %d (% x); want %d", pk.typ, pk.body, typ)
	}
	pk.body = bytes.Clone(pk.body)
	return pk
}

func (p *peer) write(b ...byte) {
	p.t.Helper()
	if _, err := p.nc.Write(b); err != nil {
		p.t.Fatalf("peer: %v", err)
	}
}

// connected connects a Conn with o to a peer that accepts it.
func connected(t *testing.T, o Options) (*Conn, *peer) {
	t.Helper()
	nc, p := dialPeer(t)
	type result struct {
		c   *Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := Connect(context.Background(), nc, o)
		done <- result{c, err}
	}()
	p.next(typeConnect)
	p.write(0x20, 2, 0, 0)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return r.c, p
}

// noLeak checks, at the end of the test, that no goroutine outlived it.
func noLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		if !testkit.WaitTrue(5*time.Second, func() bool { return runtime.NumGoroutine() <= before }) {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines after the test, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
	})
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestConnectSendsOptionsAndNamesTheRefusal(t *testing.T) {
	noLeak(t)
	nc, p := dialPeer(t)
	errc := make(chan error, 1)
	go func() {
		_, err := Connect(context.Background(), nc, Options{ClientID: "gw1", Username: "u", Password: "p",
			KeepAlive: 45 * time.Second, Will: &Message{Topic: "fh/gw1/status", Payload: []byte("off"), QoS: 1, Retained: true}})
		errc <- err
	}()
	got := p.next(typeConnect)
	want := appendConnect(nil, &connectPacket{clientID: "gw1", username: "u", password: "p", hasUser: true, hasPass: true,
		keepAlive: 45, will: &Message{Topic: "fh/gw1/status", Payload: []byte("off"), QoS: 1, Retained: true}})
	if !bytes.Equal(append([]byte{0x10, byte(len(got.body))}, got.body...), want) {
		t.Errorf("CONNECT % x\nwant % x", got.body, want)
	}
	p.write(0x20, 2, 0, 5)
	err := <-errc
	var ce *ConnackError
	if !errors.As(err, &ce) || ce.Code != 5 || !strings.Contains(err.Error(), "return code 5 (not authorized)") {
		t.Errorf("error %v; want a ConnackError naming code 5", err)
	}
	if _, err := nc.Write([]byte{0}); err == nil {
		t.Error("the socket is open after a refused CONNECT")
	}
}

func TestConnectStopsWithItsContext(t *testing.T) {
	noLeak(t)
	nc, p := dialPeer(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := Connect(ctx, nc, Options{ClientID: "c"})
		errc <- err
	}()
	p.next(typeConnect) // and never answered
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("error %v; want context.Canceled", err)
	}

	nc, p = dialPeer(t)
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := Connect(ctx, nc, Options{ClientID: "c"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v; want context.DeadlineExceeded", err)
	}
	p.next(typeConnect)
}

func TestConnectRefusesBadOptionsAndReplies(t *testing.T) {
	for _, o := range []Options{
		{Password: "p"},
		{Will: &Message{Topic: "a/#"}},
		{Will: &Message{Topic: "a", QoS: 2}},
		{ClientID: "a\x00"},
		{KeepAlive: 70000 * time.Second},
	} {
		nc, _ := dialPeer(t)
		if _, err := Connect(context.Background(), nc, o); err == nil {
			t.Errorf("Connect(%+v) accepted", o)
		}
	}
	for _, reply := range [][]byte{
		{0x20, 2, 1, 0},    // session present after a clean session
		{0x40, 2, 0, 1},    // not a CONNACK
		{0x20, 3, 0, 0, 0}, // malformed CONNACK
	} {
		nc, p := dialPeer(t)
		errc := make(chan error, 1)
		go func() {
			_, err := Connect(context.Background(), nc, Options{})
			errc <- err
		}()
		p.next(typeConnect)
		p.write(reply...)
		if err := <-errc; !errors.Is(err, ErrMalformed) {
			t.Errorf("reply % x: %v; want ErrMalformed", reply, err)
		}
	}
}

func TestPublishSubscribeDisconnect(t *testing.T) {
	noLeak(t)
	c, p := connected(t, Options{})
	ctx := context.Background()

	// QoS 1: done on the PUBACK, not before.
	tok := c.Publish(ctx, "a/b", 1, true, []byte("hi"))
	pub := p.next(typePublish)
	m, id, err := parsePublish(pub)
	if err != nil || m.Topic != "a/b" || string(m.Payload) != "hi" || !m.Retained || m.QoS != 1 {
		t.Fatalf("PUBLISH %+v %v", m, err)
	}
	if closed(tok.Done()) {
		t.Error("QoS 1 token done before its PUBACK")
	}
	p.write(appendPuback(nil, id)...)
	<-tok.Done()
	if tok.Error() != nil {
		t.Error(tok.Error())
	}
	// QoS 0: done once written.
	tok = c.Publish(ctx, "a/c", 0, false, nil)
	<-tok.Done()
	if tok.Error() != nil {
		t.Error(tok.Error())
	}
	if m, _, _ := parsePublish(p.next(typePublish)); m.Topic != "a/c" || m.QoS != 0 {
		t.Errorf("QoS 0 PUBLISH %+v", m)
	}
	// A PUBACK for an id not in flight is a protocol error.
	if tok := c.Publish(ctx, "bad/topic/#", 1, false, nil); tok.Error() == nil {
		t.Error("a topic with a wildcard was published")
	}

	// Subscribe; incoming QoS 1 is acknowledged after the handler.
	got := make(chan Message, 4)
	errc := make(chan error, 1)
	go func() {
		errc <- c.Subscribe(ctx, []Subscription{{"cmd/+", 1}, {"state", 0}}, func(m Message) { got <- m })
	}()
	sub := p.next(typeSubscribe)
	if sub.flags != 2 || !bytes.Equal(sub.body, appendSubscribe(nil, 2, []Subscription{{"cmd/+", 1}, {"state", 0}})[2:]) {
		t.Errorf("SUBSCRIBE flags %d body % x", sub.flags, sub.body)
	}
	p.write(0x90, 4, 0, 2, 1, 0)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	p.write(append(appendPublishHeader(nil, "cmd/ping", 1, false, 77, 2), "{}"...)...)
	p.write(append(appendPublishHeader(nil, "other", 0, false, 0, 1), "x"...)...) // no handler: dropped
	p.write(append(appendPublishHeader(nil, "state", 0, true, 0, 1), "y"...)...)
	if ack := p.next(typePuback); !bytes.Equal(ack.body, []byte{0, 77}) {
		t.Errorf("PUBACK % x; want id 77", ack.body)
	}
	if m := <-got; m.Topic != "cmd/ping" || string(m.Payload) != "{}" || m.QoS != 1 {
		t.Errorf("handler got %+v", m)
	}
	if m := <-got; m.Topic != "state" || !m.Retained {
		t.Errorf("handler got %+v", m)
	}

	// A refused subscription is an error naming the filter.
	go func() { errc <- c.Subscribe(ctx, []Subscription{{"x", 1}}, func(Message) {}) }()
	p.next(typeSubscribe)
	p.write(0x90, 3, 0, 3, 0x80)
	if err := <-errc; err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("refused subscription: %v", err)
	}

	// Disconnect: the DISCONNECT is written, then the socket closes once
	// the broker closed its end; what was pending fails with ErrClosed.
	pending := c.Publish(ctx, "late", 1, false, nil)
	p.next(typePublish)
	discDone := make(chan struct{})
	go func() {
		c.Disconnect(5 * time.Second)
		close(discDone)
	}()
	p.next(typeDisconnect)
	if closed(discDone) {
		t.Error("Disconnect returned before the broker closed its end")
	}
	p.nc.Close()
	<-discDone
	if err := c.Err(); err != ErrClosed {
		t.Errorf("Err after Disconnect: %v", err)
	}
	<-pending.Done()
	if pending.Error() != ErrClosed {
		t.Errorf("pending publish: %v", pending.Error())
	}
	if tok := c.Publish(ctx, "after", 0, false, nil); tok.Error() != ErrClosed {
		t.Errorf("publish after Disconnect: %v", tok.Error())
	}
}

func TestWindowBoundsInFlight(t *testing.T) {
	noLeak(t)
	c, p := connected(t, Options{MaxInFlight: 2})
	ctx := context.Background()
	a, b := c.Publish(ctx, "t", 1, false, nil), c.Publish(ctx, "t", 1, false, nil)
	third := make(chan *Token, 1)
	go func() { third <- c.Publish(ctx, "t", 1, false, nil) }()
	_, idA, _ := parsePublish(p.next(typePublish))
	p.next(typePublish)
	if len(third) > 0 {
		t.Fatal("a third message went out with a window of 2")
	}
	p.write(appendPuback(nil, idA)...)
	<-a.Done()
	tok := <-third
	p.next(typePublish)
	// With the window full, Publish gives up with its context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if tok := c.Publish(cctx, "t", 1, false, nil); !errors.Is(tok.Error(), context.Canceled) {
		t.Errorf("Publish on a full window with a cancelled context: %v", tok.Error())
	}
	// The connection's end fails everything in flight with one error.
	p.nc.Close()
	<-c.Done()
	err := c.Err()
	if !errors.Is(err, ErrLost) || !strings.HasPrefix(err.Error(), "mqttwire: connection lost: ") {
		t.Errorf("Err %v; want connection lost", err)
	}
	for _, k := range []*Token{b, tok} {
		<-k.Done()
		if k.Error() != err {
			t.Errorf("in-flight token: %v; want %v", k.Error(), err)
		}
	}
}

func TestKeepAlive(t *testing.T) {
	noLeak(t)
	// Taken before the connection exists: its last packet (the CONNACK) is
	// later, so the PINGREQ is due at least a keepalive after start however
	// long the connect itself took on a loaded machine.
	start := time.Now()
	c, p := connected(t, Options{KeepAlive: time.Second, PingTimeout: 300 * time.Millisecond})
	p.next(typePingreq)
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("PINGREQ after %v; keepalive is 1 s", d)
	}
	p.write(0xd0, 0)
	p.next(typePingreq) // unanswered
	<-c.Done()
	if err := c.Err(); !errors.Is(err, ErrLost) || !strings.Contains(err.Error(), "no PINGRESP within 300ms") {
		t.Errorf("Err %v; want no PINGRESP", err)
	}
}

func TestBrokerMisbehaving(t *testing.T) {
	for _, c := range []struct {
		name string
		wire []byte
		want string
	}{
		{"oversized", append([]byte{0x90, 0xc8, 0x01}, make([]byte, 200)...), "over the 100 byte limit"},
		{"oversized PUBLISH, topic too", append([]byte{0x30, 0xc8, 0x01, 0, 150}, make([]byte, 198)...), "over the 100 byte limit"},
		{"unknown PUBACK", []byte{0x40, 2, 0, 9}, "awaits none"},
		{"QoS 2", []byte{0x34, 5, 0, 1, 'a', 0, 1}, "QoS 2"},
		{"a CONNACK again", []byte{0x20, 2, 0, 0}, "packet type 2"},
		{"EOF", nil, "connection lost: EOF"},
	} {
		t.Run(c.name, func(t *testing.T) {
			noLeak(t)
			conn, p := connected(t, Options{MaxPacketSize: 100})
			if c.wire == nil {
				p.nc.Close()
			} else {
				p.write(c.wire...)
			}
			<-conn.Done()
			if err := conn.Err(); !errors.Is(err, ErrLost) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Err %v; want %q", err, c.want)
			}
		})
	}
}

// A PUBLISH over MaxPacketSize reaches its handler without its payload and
// is acknowledged, and the connection goes on: a retained one would
// otherwise end every connection as the broker delivers it again.
func TestOversizedPublishIsSkipped(t *testing.T) {
	noLeak(t)
	c, p := connected(t, Options{MaxPacketSize: 100})
	got := make(chan Message, 2)
	errc := make(chan error, 1)
	go func() {
		errc <- c.Subscribe(context.Background(), []Subscription{{"cmd/+", 1}}, func(m Message) { got <- m })
	}()
	p.next(typeSubscribe)
	p.write(0x90, 3, 0, 1, 1)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 5000)
	p.write(append(appendPublishHeader(nil, "cmd/big", 1, true, 9, len(big)), big...)...)
	p.write(append(appendPublishHeader(nil, "cmd/ping", 1, false, 10, 2), "{}"...)...)
	for _, id := range []byte{9, 10} {
		if ack := p.next(typePuback); !bytes.Equal(ack.body, []byte{0, id}) {
			t.Errorf("PUBACK % x; want id %d", ack.body, id)
		}
	}
	if m := <-got; m.Topic != "cmd/big" || len(m.Payload) != 0 || m.Skipped != len(big) || !m.Retained || m.QoS != 1 {
		t.Errorf("the oversized message: %+v", m)
	}
	if m := <-got; m.Topic != "cmd/ping" || string(m.Payload) != "{}" || m.Skipped != 0 {
		t.Errorf("the next message: %+v", m)
	}
	if err := c.Err(); err != nil {
		t.Errorf("connection: %v", err)
	}
}
