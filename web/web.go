// Package web is the dashboard: one plain page, embedded in the binary,
// served on the hub's origin and fed by its WebSocket API (/ws).
package web

import (
	_ "embed"
	"net/http"
)

// page is the whole dashboard. It is written straight from memory rather
// than through http.FileServer, whose range, MIME-sniffing and multipart
// code would cost the arm64 binary tens of kilobytes for one small file.
//
//go:embed index.html
var page []byte

// Handler serves the dashboard at "/".
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" && r.URL.Path != "/index.html" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; frame-ancestors 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.Method == http.MethodHead {
			return
		}
		w.Write(page)
	})
}
