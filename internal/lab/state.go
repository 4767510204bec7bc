package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/atomicfile"
)

// state is what a lab remembers between hoist runs: its hosts and the
// PIDs of their nspawn processes.
type state struct {
	Name   string `json:"name"`
	Subnet string `json:"subnet"`
	Hosts  []Host `json:"hosts"`
	// Labels say who made the lab (Options.Labels).
	Labels map[string]string `json:"labels,omitempty"`
	// Packages are what the hosts' local apt repository holds.
	Packages []string `json:"packages,omitempty"`
	// Firewall is what the hosts accept (Options.Firewall).
	Firewall *Firewall `json:"firewall,omitempty"`
	// Balancer is the balancer twin, if the lab runs one.
	Balancer *Balancer `json:"balancer,omitempty"`
	// Arch is the hosts' architecture (GOARCH); "" for this machine's.
	Arch string `json:"arch,omitempty"`
}

func loadState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return &state{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lab state: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("lab state %s: %w", filepath.Join(dir, "state.json"), err)
	}
	return &st, nil
}

func saveState(dir string, st *state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("lab state: %w", err)
	}
	return atomicfile.Write(filepath.Join(dir, "state.json"), append(b, '\n'), 0o644)
}

// waitSSH waits until addr:22 greets with an SSH banner.
func waitSSH(ctx context.Context, addr string, deadline time.Time) error {
	var last error
	for time.Now().Before(deadline) {
		if last = sshBanner(ctx, addr, time.Second); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	return fmt.Errorf("no SSH banner from %s within the boot timeout: %w", addr, last)
}

func sshBanner(ctx context.Context, addr string, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(addr, "22"))
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	buf := make([]byte, 4)
	if _, err := c.Read(buf); err != nil {
		return err
	}
	if !strings.HasPrefix(string(buf), "SSH-") {
		return fmt.Errorf("%s:22 does not speak SSH", addr)
	}
	return nil
}
