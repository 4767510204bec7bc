package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// ControlHandler serves the control API, JSON over HTTP, meant for a
// unix socket that only root can reach:
//
//	PUT    /v1/routes/{app}   make a route live (after its health check)
//	DELETE /v1/routes/{app}   remove a route
//	POST   /v1/drained?upstream=ADDR&timeout=30s   wait for a drain
//	GET    /v1/status         routes, health, in-flight, WebSockets
//	GET    /metrics           Prometheus text format
func (s *Server) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/routes/{app}", func(w http.ResponseWriter, r *http.Request) {
		var rt Route
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&rt); err != nil {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("decode route: %w", err))
			return
		}
		rt.App = r.PathValue("app")
		prev, err := s.SetRoute(r.Context(), rt)
		if err != nil {
			writeErr(w, http.StatusUnprocessableEntity, err)
			return
		}
		writeJSON(w, map[string]string{"previous": prev})
	})
	mux.HandleFunc("DELETE /v1/routes/{app}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.DeleteRoute(r.PathValue("app")); err != nil {
			writeErr(w, http.StatusNotFound, err)
			return
		}
		writeJSON(w, map[string]string{})
	})
	mux.HandleFunc("POST /v1/drained", func(w http.ResponseWriter, r *http.Request) {
		timeout, err := time.ParseDuration(r.URL.Query().Get("timeout"))
		if err != nil || timeout <= 0 {
			timeout = time.Minute
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		if err := s.WaitDrained(ctx, r.URL.Query().Get("upstream")); err != nil {
			writeErr(w, http.StatusGatewayTimeout, err)
			return
		}
		writeJSON(w, map[string]string{})
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"routes": s.Status(r.Context())})
	})
	mux.Handle("GET /metrics", s.MetricsHandler())
	return mux
}

// MetricsHandler serves the metrics in Prometheus' text format.
func (s *Server) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		s.metrics.write(w)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

// Client talks to a running proxy over its control socket.
type Client struct {
	Socket string
}

func (c *Client) http() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", c.Socket)
		},
	}}
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://proxy"+path, rd)
	if err != nil {
		return err
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return fmt.Errorf("proxy control socket %s: %w", c.Socket, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("proxy: %s", e.Error)
		}
		return fmt.Errorf("proxy: %s", resp.Status)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// SetRoute makes a route live and returns the previous upstream.
func (c *Client) SetRoute(ctx context.Context, r Route) (string, error) {
	var out struct{ Previous string }
	err := c.do(ctx, http.MethodPut, "/v1/routes/"+r.App, r, &out)
	return out.Previous, err
}

// DeleteRoute removes an app's route.
func (c *Client) DeleteRoute(ctx context.Context, app string) error {
	return c.do(ctx, http.MethodDelete, "/v1/routes/"+app, nil, nil)
}

// WaitDrained waits until upstream has nothing in flight, up to timeout.
func (c *Client) WaitDrained(ctx context.Context, upstream string, timeout time.Duration) error {
	return c.do(ctx, http.MethodPost, "/v1/drained?upstream="+upstream+"&timeout="+timeout.String(), nil, nil)
}

// Status lists the routes.
func (c *Client) Status(ctx context.Context) ([]RouteStatus, error) {
	var out struct{ Routes []RouteStatus }
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &out)
	return out.Routes, err
}
