package wsconn

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// clientBytes frames payload as a client does (masked), with the first
// byte b0 (FIN, RSV, opcode) as given.
func clientBytes(b0 byte, payload []byte) []byte {
	mask := []byte{0x11, 0x22, 0x33, 0x44}
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, mask...)
	for i, c := range payload {
		b = append(b, c^mask[i&3])
	}
	return b
}

func TestParseFrame(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 300)
	huge := bytes.Repeat([]byte("y"), 70000)
	for _, c := range []struct {
		name    string
		in      []byte
		deflate bool
		op      byte
		payload []byte
		code    int // a refusal's close code; 0: parsed
	}{
		{"text", clientBytes(0x81, []byte("hello")), false, opText, []byte("hello"), 0},
		{"empty", clientBytes(0x81, nil), false, opText, []byte{}, 0},
		{"binary 16-bit length", clientBytes(0x82, big), false, opBinary, big, 0},
		{"64-bit length", clientBytes(0x82, huge), false, opBinary, huge, 0},
		{"ping", clientBytes(0x89, []byte("p")), false, opPing, []byte("p"), 0},
		{"compressed with deflate", clientBytes(0xc1, []byte("z")), true, opText, []byte("z"), 0},
		{"compressed without deflate", clientBytes(0xc1, []byte("z")), false, 0, nil, closeProtocol},
		{"compressed control", clientBytes(0xc9, nil), true, 0, nil, closeProtocol},
		{"compressed continuation", clientBytes(0xc0, nil), true, 0, nil, closeProtocol},
		{"rsv2", clientBytes(0xa1, nil), false, 0, nil, closeProtocol},
		{"opcode 3", clientBytes(0x83, nil), false, 0, nil, closeProtocol},
		{"opcode 11", clientBytes(0x8b, nil), false, 0, nil, closeProtocol},
		{"fragmented ping", clientBytes(0x09, nil), false, 0, nil, closeProtocol},
		{"unmasked", []byte{0x81, 0x01, 'a'}, false, 0, nil, closeProtocol},
		{"control over 125", clientBytes(0x89, big[:126]), false, 0, nil, closeProtocol},
		{"over the limit", clientBytes(0x81, huge), false, 0, nil, CloseTooBig},
		{"length's top bit", []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}, false, 0, nil, closeProtocol},
	} {
		t.Run(c.name, func(t *testing.T) {
			limit := int64(100000)
			if c.name == "over the limit" {
				limit = 1000
			}
			in := append([]byte(nil), c.in...)
			f, n, err := parseFrame(in, limit, c.deflate)
			if c.code != 0 {
				var fe *frameError
				if !errors.As(err, &fe) || fe.code != c.code {
					t.Fatalf("err %v, want a refusal with %d", err, c.code)
				}
				return
			}
			if err != nil || n != len(c.in) || f.op != c.op || !bytes.Equal(f.payload, c.payload) {
				t.Fatalf("op %d, %d of %d bytes, payload %.20q, %v", f.op, n, len(c.in), f.payload, err)
			}
			// Every prefix is incomplete, and left as it is (unmasked
			// once, when the whole frame is in).
			for i := 0; i < len(c.in); i++ {
				prefix := append([]byte(nil), c.in[:i]...)
				_, n, err := parseFrame(prefix, limit, c.deflate)
				if n != 0 || err != nil || !bytes.Equal(prefix, c.in[:i]) {
					t.Fatalf("prefix of %d: n %d, %v", i, n, err)
				}
			}
		})
	}
}

func TestMessageAssembler(t *testing.T) {
	frame := func(fin bool, op byte, p string) clientFrame {
		return clientFrame{fin: fin, op: op, payload: []byte(p)}
	}
	var a messageAssembler
	steps := []struct {
		f    clientFrame
		msg  string
		done bool
		code int
	}{
		{frame(false, opText, "he"), "", false, 0},
		{frame(false, opContinuation, "l"), "", false, 0},
		{frame(true, opContinuation, "lo"), "hello", true, 0},
		{frame(true, opBinary, ""), "", true, 0},
		{frame(true, opContinuation, "x"), "", false, closeProtocol},
		{frame(false, opText, "a"), "", false, 0},
		{frame(true, opText, "b"), "", false, closeProtocol},
	}
	for i, s := range steps {
		msg, _, _, done, err := a.add(s.f, 10)
		var fe *frameError
		switch {
		case s.code != 0 && (!errors.As(err, &fe) || fe.code != s.code):
			t.Fatalf("step %d: %v, want a refusal with %d", i, err, s.code)
		case s.code == 0 && (err != nil || done != s.done || string(msg) != s.msg || done && msg == nil):
			t.Fatalf("step %d: %q done %v %v", i, msg, done, err)
		}
	}
	var b messageAssembler
	b.add(frame(false, opText, "123456"), 10)
	if _, _, _, _, err := b.add(frame(true, opContinuation, "78901"), 10); err == nil {
		t.Fatal("a fragmented message over the limit was taken")
	}
}

func TestInflateLimit(t *testing.T) {
	z := deflate(nil, bytes.Repeat([]byte{0}, 100000))
	if _, err := inflate(z, 1000); err == nil {
		t.Fatal("100 KB inflated past a 1 KB limit")
	}
	out, err := inflate(deflate(nil, []byte("small")), 1000)
	if err != nil || string(out) != "small" {
		t.Fatalf("%q %v", out, err)
	}
	if _, err := inflate([]byte{0xff, 0xff, 0xff}, 1000); err == nil {
		t.Fatal("garbage inflated")
	}
}

// codeOf is the close code a *frameError carries; 0 for no error.
func codeOf(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var fe *frameError
	if !errors.As(err, &fe) {
		t.Fatalf("%v, want a *frameError", err)
	}
	return fe.code
}

// One inflater, reused as the pool reuses it, inflates each message as a
// new one would, whatever the one before it did: failed (at its first
// byte or after some output), overflowed its limit, ended with a final
// block, or grew the buffer.
func TestInflaterReuse(t *testing.T) {
	final := func(p []byte) []byte { // a whole stream, its last block final
		var b bytes.Buffer
		w, _ := flate.NewWriter(&b, flate.BestSpeed)
		w.Write(p)
		w.Close()
		return b.Bytes()
	}
	small := []byte(`{"type":"subscribe","topic":"line1/press"}`)
	large := bytes.Repeat([]byte("0123456789abcdef"), 4000) // 64000 bytes
	huge := bytes.Repeat([]byte("x"), 3*maxInflateBuf)
	zeros := deflate(nil, make([]byte, 100000))
	// LEN 1 and an NLEN that is not its complement, after a block of output.
	badAfterOutput := append(deflate(nil, []byte("hello")), 0x01, 0x00, 0x00, 0x00)
	z := inflaters.New().(*inflater)
	for i, c := range []struct {
		in    []byte
		limit int64
		want  []byte
		code  int
	}{
		{deflate(nil, small), 1000, small, 0},
		{deflate(nil, large), 1 << 20, large, 0}, // grows the buffer past the next limits
		{zeros, 1000, nil, CloseTooBig},
		{deflate(nil, small), 1000, small, 0},
		{[]byte{0xff, 0xff, 0xff}, 1000, nil, closeProtocol},
		{deflate(nil, small), 1000, small, 0},
		{badAfterOutput, 1000, nil, closeProtocol},
		{deflate(nil, small), 1000, small, 0},
		{deflate(nil, small), int64(len(small)) - 1, nil, CloseTooBig},
		{deflate(nil, small), int64(len(small)), small, 0},
		{final(small), 1000, small, 0},
		{deflate(nil, nil), 1000, []byte{}, 0},
		{deflate(nil, huge), 1 << 20, huge, 0}, // a buffer too large to keep
		{deflate(nil, small), 1000, small, 0},
		{deflate(nil, large), 1 << 20, large, 0},
	} {
		in := bytes.Clone(c.in)
		out, err := z.inflate(in, c.limit)
		if code := codeOf(t, err); code != c.code || !bytes.Equal(out, c.want) || c.want != nil && out == nil {
			t.Fatalf("message %d: %d bytes, %v; want %d bytes, code %d", i, len(out), err, len(c.want), c.code)
		}
		if !bytes.Equal(in, c.in) {
			t.Fatalf("message %d: the input changed", i)
		}
		if c.code == CloseTooBig && int64(len(z.buf)) != c.limit+1 {
			t.Fatalf("message %d: inflated %d bytes over a limit of %d, want limit+1", i, len(z.buf), c.limit)
		}
		if cap(z.buf) > maxInflateBuf {
			t.Fatalf("message %d: kept a buffer of %d bytes", i, cap(z.buf))
		}
		if z.src.p != nil || z.src.tail != nil {
			t.Fatalf("message %d: the inflater still reads its message", i)
		}
		if n, _ := z.r.Read(make([]byte, 10)); n != 0 {
			t.Fatalf("message %d: the inflater reads %d more bytes after it", i, n)
		}
	}
}

// Inflations at once, each through the pool, get their own message back.
func TestInflateConcurrent(t *testing.T) {
	const goroutines, messages = 16, 100
	bomb := deflate(nil, make([]byte, 100000))
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range messages {
				msg := []byte(strings.Repeat(fmt.Sprintf("goroutine %d message %d;", g, i), 1+(g*messages+i)%200))
				in, limit, code := deflate(nil, msg), int64(1<<16), 0
				switch i % 10 {
				case 3:
					in, limit, code, msg = bomb, 1000, CloseTooBig, nil
				case 7:
					in, code, msg = []byte{0xff, 0xff, 0xff}, closeProtocol, nil
				}
				out, err := inflate(in, limit)
				var fe *frameError
				if code != 0 && (!errors.As(err, &fe) || fe.code != code) || code == 0 && (err != nil || !bytes.Equal(out, msg)) {
					t.Errorf("goroutine %d message %d: %.40q, %v; want code %d", g, i, out, err, code)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestClosePayload(t *testing.T) {
	for _, c := range []struct {
		p    []byte
		code int
		bad  int
	}{
		{nil, closeNormal, 0},
		{[]byte{0x03, 0xe8}, 1000, 0},
		{append([]byte{0x0f, 0xa0}, "bye"...), 4000, 0},
		{[]byte{0x03}, 0, closeProtocol},
		{[]byte{0x03, 0xed}, 0, closeProtocol}, // 1005 may not be sent
		{[]byte{0x03, 0xec}, 0, closeProtocol}, // 1004 is reserved
		{[]byte{0x03, 0xf5}, 1013, 0},          // try again later (our CloseSlowConsumer)
		{[]byte{0x03, 0xf7}, 0, closeProtocol}, // 1015 may not be sent
		{append([]byte{0x03, 0xe8}, 0xff), 0, closeInvalidData},
	} {
		code, _, err := closePayload(c.p)
		var fe *frameError
		if c.bad != 0 && (!errors.As(err, &fe) || fe.code != c.bad) || c.bad == 0 && (err != nil || code != c.code) {
			t.Errorf("% x: %d %v", c.p, code, err)
		}
	}
	if p := appendClose(nil, 1000, strings.Repeat("é", 100)); len(p) > 125 {
		t.Fatalf("close payload of %d bytes", len(p))
	}
}

// Whatever a client sends, the parser neither panics nor reads past what
// it was given, and a frame it takes fits in it.
func FuzzParseFrame(f *testing.F) {
	f.Add(clientBytes(0x81, []byte("hello")), false)
	f.Add(clientBytes(0xc1, []byte("z")), true)
	f.Add([]byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1}, false)
	f.Add(clientBytes(0x88, []byte{0x03, 0xe8, 'o', 'k'}), false)
	f.Fuzz(func(t *testing.T, b []byte, deflate bool) {
		in := bytes.Clone(b)
		fr, n, err := parseFrame(b, 1<<16, deflate)
		switch {
		case err != nil:
			return
		case n == 0 && !bytes.Equal(b, in):
			t.Fatal("an incomplete frame was changed (unmasked before it was all in)")
		case n > len(b) || len(fr.payload) > n:
			t.Fatalf("took %d bytes with a %d-byte payload from %d", n, len(fr.payload), len(b))
		}
		if n > 0 {
			// The frame ends where its header says: one byte less is
			// incomplete, and its own bytes give the same frame.
			if _, m, err := parseFrame(bytes.Clone(in[:n-1]), 1<<16, deflate); m != 0 || err != nil {
				t.Fatalf("a %d-byte frame taken from %d bytes: %d, %v", n, n-1, m, err)
			}
			if g, m, err := parseFrame(bytes.Clone(in[:n]), 1<<16, deflate); m != n || err != nil || g.op != fr.op || !bytes.Equal(g.payload, fr.payload) {
				t.Fatalf("a %d-byte frame alone: %d bytes, %v", n, m, err)
			}
		}
		if fr.op == opClose {
			closePayload(fr.payload)
		}
		var a messageAssembler
		if msg, _, compressed, done, err := a.add(fr, 1<<16); err == nil && done && compressed {
			inflate(msg, 1<<16)
		}
	})
}

// BenchmarkInflate measures inflating one permessage-deflate message:
// a client's usual small JSON message, and a larger one.
func BenchmarkInflate(b *testing.B) {
	small := []byte(`{"type":"subscribe","topics":["line1/press/temperature","line1/press/pressure"],"since":1733140000}`)
	large := bytes.Repeat([]byte(`{"sensor":"line1/press/temperature","value":21.5},`), 1300) // 64 KB
	for _, c := range []struct {
		name string
		msg  []byte
	}{{"small", small}, {"64KB", large}} {
		z := deflate(nil, c.msg)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.msg)))
			for b.Loop() {
				if out, err := inflate(z, 1<<20); err != nil || len(out) != len(c.msg) {
					b.Fatalf("%d bytes, %v", len(out), err)
				}
			}
		})
	}
}
