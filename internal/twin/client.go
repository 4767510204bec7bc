package twin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to a twin over its control socket.
type Client struct {
	Socket string
}

func (c *Client) http() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", c.Socket)
		},
	}}
}

// Register puts targets (host:port) in, as ELBv2's RegisterTargets.
func (c *Client) Register(ctx context.Context, targets ...string) error {
	return c.change(ctx, "register", targets)
}

// Deregister takes targets out, as ELBv2's DeregisterTargets.
func (c *Client) Deregister(ctx context.Context, targets ...string) error {
	return c.change(ctx, "deregister", targets)
}

func (c *Client) change(ctx context.Context, verb string, targets []string) error {
	b, _ := json.Marshal(targetsBody{Targets: targets})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://twin/v1/"+verb, bytes.NewReader(b))
	if err != nil {
		return err
	}
	_, err = c.do(req)
	return err
}

// Health reports the targets' states (every registered one when none
// is named), as ELBv2's DescribeTargetHealth.
func (c *Client) Health(ctx context.Context, targets ...string) ([]TargetHealth, error) {
	q := url.Values{"target": targets}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://twin/v1/health?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	b, err := c.do(req)
	if err != nil {
		return nil, err
	}
	var out []TargetHealth
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("balancer twin: %w", err)
	}
	return out, nil
}

func (c *Client) do(req *http.Request) ([]byte, error) {
	hc := c.http()
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("balancer twin at %s: %w", c.Socket, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("balancer twin: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("balancer twin: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}
