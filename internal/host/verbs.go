package host

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"time"

	"github.com/hoistdev/hoist/internal/proxy"
	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/systemd"
)

// The verbs of the host protocol (proto.go), each with its arguments,
// its result and what the host does.

type shipIndexArgs struct {
	Manifest release.Manifest `json:"manifest"`
	// Base is the index sum of the kept release whose index the payload
	// is a delta from; "" for none.
	Base string `json:"base,omitempty"`
}

type lockArgs struct {
	Holder string `json:"holder"`
	Op     string `json:"op,omitempty"`
}

type unlockArgs struct {
	Holder string `json:"holder,omitempty"`
	Force  bool   `json:"force,omitempty"` // whoever holds it
}

type activateArgs struct {
	Spec Spec   `json:"spec"`
	ID   string `json:"id"`
}

func (a *activateArgs) Validate() error {
	if !release.ValidID(a.ID) {
		return fmt.Errorf("invalid release id %q", a.ID)
	}
	return a.Spec.Validate()
}

type execArgs struct {
	Spec Spec     `json:"spec"`
	Argv []string `json:"argv"`
	// Terminal runs the command on the terminal the host was called on.
	Terminal bool `json:"terminal,omitempty"`
}

func (a *execArgs) Validate() error {
	if len(a.Argv) == 0 {
		return fmt.Errorf("exec: no command")
	}
	return a.Spec.Validate()
}

type logsArgs struct {
	Lines  int  `json:"lines"`
	Follow bool `json:"follow,omitempty"`
}

var (
	setupVerb = verb[Spec, HostFacts]{"setup", func(ctx context.Context, c *call, s Spec) (HostFacts, error) {
		return Setup(ctx, c.layout, &s)
	}}
	// shipIndexVerb takes the release's index on stdin.
	shipIndexVerb = verb[shipIndexArgs, ShipState]{"ship-index", func(_ context.Context, c *call, a shipIndexArgs) (ShipState, error) {
		return ShipIndex(c.layout, &a.Manifest, a.Base, c.stdin)
	}}
	// receiveVerb takes a transfer of the release's objects on stdin.
	receiveVerb = verb[release.Manifest, Received]{"receive", func(_ context.Context, c *call, m release.Manifest) (Received, error) {
		return ReceiveTransfer(c.layout, &m, c.stdin)
	}}
	// relayServeVerb prints a RelayOffer, then serves until stdin ends.
	relayServeVerb = streamVerb[relayServeArgs]{"relay-serve", func(ctx context.Context, c *call, a relayServeArgs) (int, error) {
		return 0, ServeRelay(ctx, c.layout, a, c.stdin, c.stdout, c.stderr)
	}}
	relayFetchVerb = verb[relayFetchArgs, Received]{"relay-fetch", func(ctx context.Context, c *call, a relayFetchArgs) (Received, error) {
		return FetchFromRelay(ctx, c.layout, a)
	}}
	// envVerb replaces the secret env file and says whether it changed.
	envVerb = verb[[]byte, bool]{"env", func(_ context.Context, c *call, content []byte) (bool, error) {
		return SetEnv(c.layout, content)
	}}
	lockVerb = verb[lockArgs, none]{"lock", func(_ context.Context, c *call, a lockArgs) (none, error) {
		return none{}, AcquireLock(c.layout, Lock{Holder: a.Holder, Op: a.Op, Since: time.Now().UTC().Truncate(time.Second)})
	}}
	unlockVerb = verb[unlockArgs, none]{"unlock", func(_ context.Context, c *call, a unlockArgs) (none, error) {
		return none{}, ReleaseLock(c.layout, a.Holder, a.Force)
	}}
	activateVerb = verb[activateArgs, none]{"activate", func(ctx context.Context, c *call, a activateArgs) (none, error) {
		return none{}, activateLogged(ctx, c.layout, &a.Spec, a.ID, c.stderr)
	}}
	// checkVerb asks the current release for its health once.
	checkVerb = verb[Spec, string]{"check", func(ctx context.Context, c *call, s Spec) (string, error) {
		return Check(ctx, c.layout, &s)
	}}
	statusVerb = verb[none, *Status]{"status", func(ctx context.Context, c *call, _ none) (*Status, error) {
		return ReadStatus(ctx, c.layout)
	}}
	releasesVerb = verb[none, []ReleaseInfo]{"releases", func(_ context.Context, c *call, _ none) ([]ReleaseInfo, error) {
		return ListReleases(c.layout)
	}}
	previousVerb = verb[none, string]{"previous", func(_ context.Context, c *call, _ none) (string, error) {
		return PreviousID(c.layout)
	}}
	proxyStatusVerb = verb[none, []proxy.RouteStatus]{"proxy-status", func(ctx context.Context, _ *call, _ none) ([]proxy.RouteStatus, error) {
		return (&proxy.Client{Socket: ProxySocket}).Status(ctx)
	}}
	proxyRootVerb = verb[none, string]{"proxy-root", func(context.Context, *call, none) (string, error) {
		return ProxyRoot()
	}}
	// bootVerb is run by the app's boot unit, not by the client.
	bootVerb = verb[none, none]{"boot", func(ctx context.Context, c *call, _ none) (none, error) {
		return none{}, Boot(ctx, c.layout)
	}}
	execVerb = streamVerb[execArgs]{"exec", func(ctx context.Context, c *call, a execArgs) (int, error) {
		if a.Terminal {
			if c.terminal == nil {
				return 0, errors.New("exec on a terminal: hoist host was not called on one")
			}
			return ExecTerminal(ctx, c.layout, &a.Spec, a.Argv, c.terminal)
		}
		return Exec(ctx, c.layout, &a.Spec, a.Argv, c.stdin, c.stdout, c.stderr)
	}}
	logsVerb = streamVerb[logsArgs]{"logs", func(ctx context.Context, c *call, a logsArgs) (int, error) {
		return journal(ctx, c, a)
	}}
)

var verbs = verbTable(setupVerb, shipIndexVerb, receiveVerb, relayServeVerb, relayFetchVerb, envVerb, lockVerb, unlockVerb, activateVerb, checkVerb,
	statusVerb, releasesVerb, previousVerb, proxyStatusVerb, proxyRootVerb, bootVerb, execVerb, logsVerb)

// journal writes the app's journal, all its releases, to c.stdout.
func journal(ctx context.Context, c *call, a logsArgs) (int, error) {
	args := []string{"--unit", systemd.InstancePattern(c.layout.App), "--lines", strconv.Itoa(a.Lines),
		"--no-pager", "--output", "short-iso", "--quiet"}
	if a.Follow {
		args = append(args, "--follow")
	}
	cmd := exec.CommandContext(ctx, "journalctl", args...)
	cmd.Stdout, cmd.Stderr = c.stdout, c.stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("journalctl: %w", err)
	}
	return 0, nil
}

// BootRequest is what the boot unit gives `hoist host boot` on stdin.
func BootRequest(app string) string {
	line, _ := encodeRequest(app, none{}) // plain struct: cannot fail
	return string(line[:len(line)-1])
}
