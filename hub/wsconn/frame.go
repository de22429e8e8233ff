package wsconn

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"unicode/utf8"
)

// WebSocket opcodes (RFC 6455 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// frameError is a client frame that breaks RFC 6455: the connection is
// closed with 1002 (protocol error), or with the code a *frameError
// carries.
type frameError struct {
	code   int
	reason string
}

func (e *frameError) Error() string { return "wsconn: " + e.reason }

// clientFrame is one frame a client sent, its payload unmasked.
type clientFrame struct {
	fin     bool
	rsv1    bool // compressed (permessage-deflate), on a message's first frame
	op      byte
	payload []byte // aliases the buffer parsed
}

// parseFrame parses the client frame at the start of b, unmasking its
// payload in place. n is the frame's length in b; 0 (with a nil error,
// b left as it is) when b does not hold all of it yet. A frame whose
// payload is over limit is refused with 1009 as soon as its header is in,
// so a client never makes the server buffer more than limit. deflate
// tells whether permessage-deflate was negotiated (RSV1 may be set).
func parseFrame(b []byte, limit int64, deflate bool) (f clientFrame, n int, err error) {
	if len(b) < 2 {
		return f, 0, nil
	}
	b0, b1 := b[0], b[1]
	f.fin, f.rsv1, f.op = b0&0x80 != 0, b0&0x40 != 0, b0&0x0f
	control := f.op >= opClose
	switch {
	case b0&0x30 != 0:
		return f, 0, &frameError{closeProtocol, "reserved bits set"}
	case f.rsv1 && (!deflate || control || f.op == opContinuation):
		return f, 0, &frameError{closeProtocol, "unexpected compressed frame"}
	case f.op > opBinary && f.op < opClose || f.op > opPong:
		return f, 0, &frameError{closeProtocol, "unknown opcode"}
	case control && !f.fin:
		return f, 0, &frameError{closeProtocol, "fragmented control frame"}
	case b1&0x80 == 0:
		return f, 0, &frameError{closeProtocol, "unmasked client frame"}
	}
	h := 2
	size := uint64(b1 & 0x7f)
	switch size {
	case 126:
		h += 2
		if len(b) < h {
			return f, 0, nil
		}
		size = uint64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		h += 8
		if len(b) < h {
			return f, 0, nil
		}
		size = binary.BigEndian.Uint64(b[2:])
		if size>>63 != 0 {
			return f, 0, &frameError{closeProtocol, "payload length out of range"}
		}
	}
	switch {
	case control && size > 125:
		return f, 0, &frameError{closeProtocol, "control frame over 125 bytes"}
	case !control && size > uint64(limit):
		return f, 0, &frameError{CloseTooBig, "message too big"}
	}
	h += 4 // the mask
	total := h + int(size)
	if len(b) < total {
		return f, 0, nil
	}
	mask := b[h-4 : h]
	f.payload = b[h:total]
	for i := range f.payload {
		f.payload[i] ^= mask[i&3]
	}
	return f, total, nil
}

// messageAssembler joins a message's frames (RFC 6455 5.4) and bounds
// it. Control frames come between them and do not pass through it.
type messageAssembler struct {
	op         byte // the message's opcode; 0 when none is open
	compressed bool
	data       []byte
}

// add takes a data frame. Once the message's final frame is in, done is
// true and msg is the message (a fresh slice the caller may keep; empty,
// not nil, for an empty one), with its opcode and whether it was
// compressed.
func (a *messageAssembler) add(f clientFrame, limit int64) (msg []byte, op byte, compressed, done bool, err error) {
	if f.op == opContinuation {
		if a.op == 0 {
			return nil, 0, false, false, &frameError{closeProtocol, "continuation with no message"}
		}
	} else {
		if a.op != 0 {
			return nil, 0, false, false, &frameError{closeProtocol, "new message inside a fragmented one"}
		}
		if f.fin {
			// The usual case: one frame, one message.
			return bytes.Clone(f.payload), f.op, f.rsv1, true, nil
		}
		a.op, a.compressed = f.op, f.rsv1
	}
	if int64(len(a.data)+len(f.payload)) > limit {
		return nil, 0, false, false, &frameError{CloseTooBig, "message too big"}
	}
	a.data = append(a.data, f.payload...)
	if !f.fin {
		return nil, 0, false, false, nil
	}
	msg, op, compressed = a.data, a.op, a.compressed
	if msg == nil {
		msg = []byte{}
	}
	*a = messageAssembler{}
	return msg, op, compressed, true, nil
}

// inflateTail ends a permessage-deflate message (RFC 7692 7.2.2).
var inflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// inflater is a flate reader with the source it reads and a buffer it
// inflates into, kept in a pool between messages: a new flate reader
// costs some 40 KB, and a client may send many compressed messages a
// second.
type inflater struct {
	src inflateSource
	r   io.ReadCloser // reads src; also a flate.Resetter
	buf []byte
}

// maxInflateBuf bounds the buffer a pooled inflater keeps: as much as its
// flate reader costs. A larger message (MaxMessageBytes is 1 KB by
// default) grows a buffer of its own.
const maxInflateBuf = 64 << 10

// inflaters holds inflaters that are reset onto an empty source, so
// that none keeps a client's message alive.
var inflaters = sync.Pool{New: func() any {
	z := new(inflater)
	z.r = flate.NewReader(&z.src)
	return z
}}

// inflateSource reads a message and then inflateTail. It is a
// flate.Reader (an io.ByteReader), which the flate reader reads directly
// rather than through a bufio.Reader of its own.
type inflateSource struct {
	p, tail []byte
}

func (s *inflateSource) Read(b []byte) (int, error) {
	if len(s.p) == 0 {
		s.p, s.tail = s.tail, nil
	}
	if len(s.p) == 0 {
		return 0, io.EOF
	}
	n := copy(b, s.p)
	s.p = s.p[n:]
	return n, nil
}

func (s *inflateSource) ReadByte() (byte, error) {
	if len(s.p) == 0 {
		s.p, s.tail = s.tail, nil
	}
	if len(s.p) == 0 {
		return 0, io.EOF
	}
	c := s.p[0]
	s.p = s.p[1:]
	return c, nil
}

// inflate decompresses a permessage-deflate message into at most limit
// bytes: a small frame can inflate a thousandfold, and the wire's limit
// says nothing about what comes out. Never more than limit+1 bytes are
// inflated.
func inflate(p []byte, limit int64) ([]byte, error) {
	z := inflaters.Get().(*inflater)
	out, err := z.inflate(p, limit)
	inflaters.Put(z)
	return out, err
}

// inflate is the package's inflate with z's reader and buffer. The
// reader starts afresh whatever the last message left (an error, unread
// output), and ends reset onto an empty source: nothing keeps p once it
// returns.
func (z *inflater) inflate(p []byte, limit int64) ([]byte, error) {
	r := z.r.(flate.Resetter)
	z.src = inflateSource{p: p, tail: inflateTail}
	r.Reset(&z.src, nil) // never fails without a dictionary
	out, err := z.readAll(limit)
	z.src = inflateSource{}
	r.Reset(&z.src, nil)
	return out, err
}

// readAll reads z.r to its end, or to limit+1 bytes, into z.buf and
// returns a copy the size of the message: the buffer, grown to the
// largest message (up to maxInflateBuf), serves the next one.
func (z *inflater) readAll(limit int64) ([]byte, error) {
	buf := z.buf[:0]
	defer func() {
		if cap(buf) <= maxInflateBuf {
			z.buf = buf
		}
	}()
	for {
		if len(buf) == cap(buf) {
			// len(buf) <= limit here, so the buffer grows by one byte at least.
			buf = append(make([]byte, 0, min(max(512, 2*int64(cap(buf))), limit+1)), buf...)
		}
		// The buffer may be larger than limit+1 from a message read
		// under a larger limit.
		n, err := z.r.Read(buf[len(buf):min(int64(cap(buf)), limit+1)])
		buf = buf[:len(buf)+n]
		switch {
		// A stream that ends without a final block ends with the
		// tail's empty block: flate then finds no next block.
		case err != nil && err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF):
			return nil, &frameError{closeProtocol, "bad compressed message"}
		case int64(len(buf)) > limit:
			return nil, &frameError{CloseTooBig, "message too big"}
		case err != nil:
			return bytes.Clone(buf), nil
		}
	}
}

// closePayload reads a close frame's payload: the code to answer with
// (1000 for none) or a *frameError for a malformed one (RFC 6455 5.5.1,
// 7.4).
func closePayload(p []byte) (code int, reason string, err error) {
	switch {
	case len(p) == 0:
		return closeNormal, "", nil
	case len(p) == 1:
		return 0, "", &frameError{closeProtocol, "close frame with a 1-byte payload"}
	}
	code = int(binary.BigEndian.Uint16(p))
	reason = string(p[2:])
	switch {
	case !validCloseCode(code):
		return 0, "", &frameError{closeProtocol, "invalid close code"}
	case !utf8.ValidString(reason):
		return 0, "", &frameError{closeInvalidData, "close reason is not UTF-8"}
	}
	return code, reason, nil
}

// validCloseCode tells whether a peer may send code in a close frame.
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// appendClose appends a close frame's payload: code and reason (cut to
// fit a control frame).
func appendClose(b []byte, code int, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	b = binary.BigEndian.AppendUint16(b, uint16(code))
	return append(b, reason...)
}
