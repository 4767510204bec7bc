package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/hoistdev/hoist/internal/hostproto"
)

// Client talks to a running proxy over its control socket. The zero
// value with Socket set is ready; it is safe for concurrent use.
type Client struct {
	Socket string

	once sync.Once
	hc   *http.Client
}

func (c *Client) http() *http.Client {
	c.once.Do(func() {
		c.hc = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", c.Socket)
			},
			DisableKeepAlives: true,
		}}
	})
	return c.hc
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://proxy"+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return fmt.Errorf("proxy control socket %s: %w", c.Socket, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("proxy control socket %s: %w", c.Socket, err)
	}
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

// SetRoute makes r live (r.App names the app) and returns the previous
// upstream's address, "" if none or the same. It returns once the new
// upstream is healthy and takes new requests, or with an error saying
// why not, the old route untouched. ctx should allow r.HealthTimeout.
func (c *Client) SetRoute(ctx context.Context, r hostproto.Route) (string, error) {
	var out struct{ Previous string }
	err := c.do(ctx, http.MethodPut, "/v1/routes/"+url.PathEscape(r.App), r, &out)
	return out.Previous, err
}

// SetMaintenance puts app's route in maintenance (m), or takes it out
// (nil).
func (c *Client) SetMaintenance(ctx context.Context, app string, m *hostproto.Maintenance) error {
	return c.do(ctx, http.MethodPut, "/v1/routes/"+url.PathEscape(app)+"/maintenance", maintenanceRequest{Maintenance: m}, nil)
}

// DeleteRoute removes an app's route; its upstream drains.
func (c *Client) DeleteRoute(ctx context.Context, app string) error {
	return c.do(ctx, http.MethodDelete, "/v1/routes/"+url.PathEscape(app), nil, nil)
}

// Routes lists the routes as saved.
func (c *Client) Routes(ctx context.Context) ([]hostproto.Route, error) {
	var out struct{ Routes []hostproto.Route }
	err := c.do(ctx, http.MethodGet, "/v1/routes", nil, &out)
	return out.Routes, err
}

// WaitDrained waits until the old upstream at addr has nothing in
// flight and its WebSockets are closed, up to timeout. It fails if
// requests were still in flight when the drain timeout ended the drain.
func (c *Client) WaitDrained(ctx context.Context, upstream string, timeout time.Duration) error {
	q := url.Values{"upstream": {upstream}, "timeout": {timeout.String()}}
	return c.do(ctx, http.MethodPost, "/v1/drained?"+q.Encode(), nil, nil)
}

// Status lists the routes with their health, load and certificates.
func (c *Client) Status(ctx context.Context) ([]hostproto.RouteStatus, error) {
	var out struct{ Routes []hostproto.RouteStatus }
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &out)
	return out.Routes, err
}

// Upgrade has the proxy start the hoist binary on disk and hand over to
// it (upgrade.go); it returns the new process's pid once that serves.
func (c *Client) Upgrade(ctx context.Context) (int, error) {
	var out struct{ PID int }
	err := c.do(ctx, http.MethodPost, "/v1/upgrade", nil, &out)
	return out.PID, err
}

// Process says which process serves the control socket, and with which
// issuer settings.
func (c *Client) Process(ctx context.Context) (Process, error) {
	var out Process
	err := c.do(ctx, http.MethodGet, "/v1/process", nil, &out)
	return out, err
}
