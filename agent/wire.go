package agent

import (
	"context"
	"encoding/json"
	"net/http"
)

// service is a long-running part that the agent owns (hub, uplink).
type service struct {
	name string
	run  func(ctx context.Context) error
}

type wiring struct {
	mux      *http.ServeMux
	services []service
}

// wire builds the hub, the uplinks and the HTTP routes on the open store.
func (a *Agent) wire() (*wiring, error) {
	w := &wiring{mux: http.NewServeMux()}
	w.mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(map[string]any{"ok": true, "gateway_id": a.cfg.GatewayID, "version": a.opts.Version})
	})
	return w, nil
}
