package wsconn

import (
	"bytes"
	"compress/flate"
	"net/http"
	"strings"
	"sync"
)

// flaters holds compressors between writes: one costs hundreds of KB, too
// much to keep per connection.
var flaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed) // never fails for a valid level
	return w
}}

// deflate appends p to dst compressed as one permessage-deflate message
// without context takeover (RFC 7692 7.2.1): a flushed DEFLATE stream
// without its final 00 00 ff ff.
func deflate(dst, p []byte) []byte {
	w := flaters.Get().(*flate.Writer)
	b := bytes.NewBuffer(dst)
	w.Reset(b)
	w.Write(p) // a bytes.Buffer never fails
	w.Flush()
	w.Reset(nil)
	flaters.Put(w)
	z := b.Bytes()
	return z[:len(z)-4]
}

// offersDeflate tells whether gorilla's upgrader (with compression
// enabled) negotiated permessage-deflate for r. Gorilla does not say, so
// this errs on the side of no: a header it does not parse as plain
// "token; param=value, ..." lists means no, and the core then writes
// uncompressed frames, which a peer must accept either way (compression
// is per message, RFC 7692 6).
func offersDeflate(h http.Header) bool {
	found := false
	for _, v := range h.Values("Sec-Websocket-Extensions") {
		for _, ext := range strings.Split(v, ",") {
			for i, part := range strings.Split(ext, ";") {
				part = strings.TrimSpace(part)
				name, val, _ := strings.Cut(part, "=")
				if !isToken(name) || strings.Contains(part, "=") && !isToken(val) {
					return false
				}
				if i == 0 && name == "permessage-deflate" && !strings.Contains(part, "=") {
					found = true
				}
			}
		}
	}
	return found
}

// isToken reports whether s is a non-empty HTTP token (RFC 7230 3.2.6).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}
