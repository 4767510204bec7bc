package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/hostproto"
)

// ControlHandler serves the control API, JSON over HTTP, meant for a
// unix socket that only root can reach:
//
//	PUT    /v1/routes/{app}   make a route live once its upstream is healthy
//	                          (body: Route; answers {"previous": "ADDR"},
//	                          or {"error": "..."} with the route unchanged)
//	DELETE /v1/routes/{app}   remove a route; its upstream drains
//	PUT    /v1/routes/{app}/maintenance
//	                          put a route in maintenance (body:
//	                          {"maintenance": Maintenance}) or take it out
//	                          ({"maintenance": null}), at once
//	GET    /v1/routes         the routes as saved
//	POST   /v1/drained?upstream=ADDR&timeout=30s
//	                          wait until an old upstream has drained
//	GET    /v1/status         routes, upstream health, in-flight requests,
//	                          open WebSockets, draining upstreams and
//	                          certificate expiry ({"routes": [RouteStatus]})
//	GET    /metrics           Prometheus text format
func (s *Server) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/routes/{app}", func(w http.ResponseWriter, r *http.Request) {
		var rt hostproto.Route
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rt); err != nil {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("decode route: %w", err))
			return
		}
		app := r.PathValue("app")
		if rt.App != "" && rt.App != app {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("route body names app %q, the path %q", rt.App, app))
			return
		}
		rt.App = app
		prev, err := s.SetRoute(r.Context(), rt)
		if err != nil {
			writeErr(w, http.StatusUnprocessableEntity, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"previous": prev})
	})
	mux.HandleFunc("DELETE /v1/routes/{app}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.DeleteRoute(r.PathValue("app")); err != nil {
			writeErr(w, http.StatusNotFound, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{})
	})
	mux.HandleFunc("PUT /v1/routes/{app}/maintenance", func(w http.ResponseWriter, r *http.Request) {
		var body maintenanceRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("decode maintenance: %w", err))
			return
		}
		if err := s.SetMaintenance(r.PathValue("app"), body.Maintenance); err != nil {
			writeErr(w, http.StatusUnprocessableEntity, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{})
	})
	mux.HandleFunc("GET /v1/routes", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"routes": s.Routes()})
	})
	mux.HandleFunc("POST /v1/drained", func(w http.ResponseWriter, r *http.Request) {
		timeout, err := time.ParseDuration(r.URL.Query().Get("timeout"))
		if err != nil || timeout <= 0 {
			timeout = time.Minute
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		if err := s.WaitDrained(ctx, r.URL.Query().Get("upstream")); err != nil {
			code := http.StatusConflict
			if errors.Is(err, context.DeadlineExceeded) {
				code = http.StatusGatewayTimeout
			}
			writeErr(w, code, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{})
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"routes": s.Status(r.Context())})
	})
	mux.Handle("GET /metrics", s.MetricsHandler())
	return mux
}

// maintenanceRequest is PUT /v1/routes/{app}/maintenance's body.
type maintenanceRequest struct {
	Maintenance *hostproto.Maintenance `json:"maintenance"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": strings.TrimSpace(err.Error())})
}
