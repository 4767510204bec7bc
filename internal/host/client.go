package host

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/hoistdev/hoist/internal/proxy"
	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/transport"
)

// Client calls `hoist host` commands on one host over a transport.
type Client struct {
	Conn transport.Conn
	App  string
	// Sudo prefixes commands with `sudo -n` for a non-root login.
	Sudo bool
}

func (c *Client) command(verb string, args ...string) string {
	parts := []string{BinPath, "host", verb, "--app", c.App}
	parts = append(parts, args...)
	for i, p := range parts {
		parts[i] = transport.Quote(p)
	}
	cmd := strings.Join(parts, " ")
	if c.Sudo {
		cmd = "sudo -n " + cmd
	}
	return cmd
}

// call runs a host verb and decodes its Response into out.
func (c *Client) call(ctx context.Context, stdin io.Reader, out any, verb string, args ...string) error {
	var stdout, stderr bytes.Buffer
	err := c.Conn.Run(ctx, c.command(verb, args...), stdin, &stdout, &stderr)
	if stdout.Len() > 0 {
		// The host answered: its Response says more than the exit status.
		if derr := decodeResponse(stdout.Bytes(), out); derr != nil || err == nil {
			return derr
		}
	}
	if err != nil {
		var ee *transport.ExitError
		if errors.As(err, &ee) && ee.Code == 127 {
			return fmt.Errorf("hoist is not installed on %s: %w", c.Conn.Addr(), err)
		}
		if msg := strings.TrimSpace(stderr.String()); msg != "" && !strings.Contains(err.Error(), msg) {
			return fmt.Errorf("%w: %s", err, truncate(msg, 2000))
		}
		return err
	}
	return nil
}

func specJSON(s *Spec) io.Reader {
	b, _ := json.Marshal(s)
	return bytes.NewReader(b)
}

func manifestArg(m *release.Manifest) string {
	b, _ := json.Marshal(m)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Setup prepares the host for the app.
func (c *Client) Setup(ctx context.Context, s *Spec) (HostFacts, error) {
	var f HostFacts
	return f, c.call(ctx, specJSON(s), &f, "setup")
}

// UploadState asks what the host holds of release m.
func (c *Client) UploadState(ctx context.Context, m *release.Manifest) (UploadState, error) {
	var st UploadState
	err := c.call(ctx, nil, &st, "upload-state", "--manifest", manifestArg(m))
	return st, err
}

// Receive sends the payload from offset on; r must be positioned there.
func (c *Client) Receive(ctx context.Context, m *release.Manifest, offset int64, r io.Reader) error {
	return c.call(ctx, r, nil, "receive", "--manifest", manifestArg(m), "--offset", strconv.FormatInt(offset, 10))
}

// Lock takes the deploy lock.
func (c *Client) Lock(ctx context.Context, lk Lock) error {
	return c.call(ctx, nil, nil, "lock", "--holder", lk.Holder, "--op", lk.Op)
}

// Unlock releases the deploy lock held by holder, or any holder if force.
func (c *Client) Unlock(ctx context.Context, holder string, force bool) error {
	args := []string{"--holder", holder}
	if force {
		args = append(args, "--force")
	}
	return c.call(ctx, nil, nil, "unlock", args...)
}

// SetEnv replaces the app's secret environment file on the host.
func (c *Client) SetEnv(ctx context.Context, content []byte) error {
	return c.call(ctx, bytes.NewReader(content), nil, "env")
}

// Activate makes release id current behind its health check.
func (c *Client) Activate(ctx context.Context, s *Spec, id string) error {
	return c.call(ctx, specJSON(s), nil, "activate", "--id", id)
}

// Status reads the app's state.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	return &st, c.call(ctx, nil, &st, "status")
}

// Releases lists the releases on the host.
func (c *Client) Releases(ctx context.Context) ([]ReleaseInfo, error) {
	var rs []ReleaseInfo
	return rs, c.call(ctx, nil, &rs, "releases")
}

// Previous returns the release a rollback without an id goes to.
func (c *Client) Previous(ctx context.Context) (string, error) {
	var id string
	return id, c.call(ctx, nil, &id, "previous")
}

// ProxyStatus lists the routes of the host's edge proxy.
func (c *Client) ProxyStatus(ctx context.Context) ([]proxy.RouteStatus, error) {
	var rs []proxy.RouteStatus
	return rs, c.call(ctx, nil, &rs, "proxy-status")
}

// ProxyRoot returns the root certificate (PEM) of the host's proxy's
// internal CA.
func (c *Client) ProxyRoot(ctx context.Context) (string, error) {
	var pem string
	return pem, c.call(ctx, nil, &pem, "proxy-root")
}

// Exec runs argv in the current release with the app's user and env;
// the streams are the remote command's own (no Response envelope).
func (c *Client) Exec(ctx context.Context, s *Spec, argv []string, stdout, stderr io.Writer) error {
	b, _ := json.Marshal(s)
	args := append([]string{"--spec", base64.RawURLEncoding.EncodeToString(b), "--"}, argv...)
	return c.Conn.Run(ctx, c.command("exec", args...), nil, stdout, stderr)
}

// Logs streams the app's journal.
func (c *Client) Logs(ctx context.Context, lines int, follow bool, stdout, stderr io.Writer) error {
	args := []string{"-n", strconv.Itoa(lines)}
	if follow {
		args = append(args, "-f")
	}
	return c.Conn.Run(ctx, c.command("logs", args...), nil, stdout, stderr)
}

// InstallBinary puts the hoist binary at path local onto the host at
// BinPath, atomically, unless the host already has the same bytes.
func (c *Client) InstallBinary(ctx context.Context, local string) (bool, error) {
	data, err := os.ReadFile(local)
	if err != nil {
		return false, fmt.Errorf("read hoist binary: %w", err)
	}
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	var out bytes.Buffer
	sudo := ""
	if c.Sudo {
		sudo = "sudo -n "
	}
	_ = c.Conn.Run(ctx, sudo+"sha256sum "+BinPath+" 2>/dev/null || true", nil, &out, io.Discard)
	if strings.HasPrefix(out.String(), want) {
		return false, nil
	}
	tmp := BinPath + ".new"
	script := fmt.Sprintf("set -e; umask 022; cat > %[1]s; chmod 755 %[1]s; sync %[1]s; mv -f %[1]s %[2]s", tmp, BinPath)
	if c.Sudo {
		script = fmt.Sprintf("sudo -n sh -c %s", transport.Quote(script))
	}
	if err := c.Conn.Run(ctx, script, bytes.NewReader(data), io.Discard, io.Discard); err != nil {
		return false, fmt.Errorf("install hoist on %s: %w", c.Conn.Addr(), err)
	}
	return true, nil
}

// Platform returns the host's `uname -sm`, lowercased, as GOOS/GOARCH.
func Platform(ctx context.Context, conn transport.Conn) (string, error) {
	var out bytes.Buffer
	if err := conn.Run(ctx, "uname -sm", nil, &out, io.Discard); err != nil {
		return "", fmt.Errorf("read platform of %s: %w", conn.Addr(), err)
	}
	f := strings.Fields(out.String())
	if len(f) != 2 {
		return "", fmt.Errorf("read platform of %s: unexpected uname output %q", conn.Addr(), out.String())
	}
	arch := map[string]string{"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "riscv64": "riscv64"}[f[1]]
	if arch == "" {
		arch = f[1]
	}
	return strings.ToLower(f[0]) + "/" + arch, nil
}
