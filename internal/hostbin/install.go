package hostbin

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/hoistdev/hoist/internal/bytesize"
	"github.com/hoistdev/hoist/internal/host"
	"github.com/hoistdev/hoist/internal/hostclient"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

// Target is a host to put hoist on.
type Target struct {
	Host string
	Conn transport.Conn
	// Client has the host, once it has hoist, pass it on to the others.
	Client *hostclient.Client
}

// Options configure Install.
type Options struct {
	Finder *Finder
	// Parallel bounds the hosts probed and sent to at once.
	Parallel int
	// Relay lets the hosts that have the binary pass it on to the others
	// (deploy.relay: off turns it off, as for releases).
	Relay bool
	// CacheDir keeps compressed copies of binaries; "" keeps none.
	CacheDir string
	// Logf tells people what happens on a host.
	Logf func(host, format string, args ...any)
	// ServeLog gets a serving host's own lines; nil drops them.
	ServeLog func(host string) io.Writer
}

// Report is how hoist reached one host.
type Report struct {
	Platform string `json:"platform,omitempty"`
	SHA256   string `json:"sha256,omitempty"`
	// From is "already there", "this machine" or "relay HOST".
	From string `json:"from,omitempty"`
	// Sent is what left this machine for the host.
	Sent int64 `json:"sent_bytes"`
	Err  error `json:"-"`
}

// Installed reports whether the host was given a new hoist.
func (r Report) Installed() bool { return r.Err == nil && r.From != "" && r.From != "already there" }

// exitDamaged is the install script's status when what arrived is not
// the binary it was told of.
const exitDamaged = 86

// relayFanout is how many hosts fetch from one at once; relayLife bounds
// a host's serving.
const (
	relayFanout  = 4
	relayLife    = 20 * time.Minute
	fetchLimit   = 5 * time.Minute // the host's own bound on one fetch
	connectLimit = 5 * time.Second // and on reaching the host it fetches from
)

// DamagedError is a binary that reached a host with another sum than
// its own: the file here is damaged (it does not match its published
// sum), or it was on the way. The host kept the hoist it had.
type DamagedError struct {
	Host, Path, Want, Got string
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("the hoist binary %s reached %s with sha256 %.16s, not %.16s: it is damaged; the host keeps the hoist it had", e.Path, e.Host, e.Got, e.Want)
}

// Unwrap gives the error its hint for people.
func (e *DamagedError) Unwrap() error {
	return &usererr.Error{Msg: e.Error(), Hint: fmt.Sprintf("fetch %s again: its sha256 must be %s", e.Path, e.Want)}
}

// probe is what one SSH command tells of a host.
type probe struct {
	platform string
	sum      string          // of its hoist, "" for none
	tools    map[string]bool // zstd, gzip, bash, timeout
	addr     string          // the host's address this connection reached
}

const probeCmd = "uname -sm; sha256sum " + host.BinPath + " 2>/dev/null || echo -; " +
	"for t in zstd gzip bash timeout; do command -v $t >/dev/null 2>&1 && printf '%s ' $t; done; echo; echo $SSH_CONNECTION"

var unameArch = map[string]string{"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm", "i686": "386", "riscv64": "riscv64"}

func probeHost(ctx context.Context, conn transport.Conn) (probe, error) {
	var out bytes.Buffer
	if err := conn.Run(ctx, probeCmd, nil, &out, io.Discard); err != nil {
		return probe{}, fmt.Errorf("look at %s: %w", conn.Addr(), err)
	}
	return parseProbe(out.String())
}

func parseProbe(s string) (probe, error) {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) < 3 {
		return probe{}, fmt.Errorf("unexpected answer %q", s)
	}
	u := strings.Fields(lines[0])
	if len(u) != 2 {
		return probe{}, fmt.Errorf("unexpected uname output %q", lines[0])
	}
	arch := unameArch[u[1]]
	if arch == "" {
		arch = u[1]
	}
	p := probe{platform: strings.ToLower(u[0]) + "/" + arch, tools: map[string]bool{}}
	if f := strings.Fields(lines[1]); len(f) > 0 && validSum(f[0]) {
		p.sum = f[0]
	}
	for _, t := range strings.Fields(lines[2]) {
		p.tools[t] = true
	}
	if len(lines) > 3 {
		if f := strings.Fields(lines[3]); len(f) == 4 {
			p.addr = f[2]
		}
	}
	return p, nil
}

// target is a host being given hoist.
type target struct {
	Target
	probe  probe
	report *Report
}

// Install puts on every target the hoist of its platform, unless it has
// that build already, and returns a report for each, in order.
func Install(ctx context.Context, o Options, ts []Target) []Report {
	reports := make([]Report, len(ts))
	all := make([]*target, len(ts))
	for i := range ts {
		all[i] = &target{Target: ts[i], report: &reports[i]}
	}
	each(all, o.Parallel, func(t *target) {
		p, err := probeHost(ctx, t.Conn)
		t.probe, t.report.Err, t.report.Platform = p, err, p.platform
	})
	groups := map[string][]*target{}
	var order []string
	for _, t := range all {
		if t.report.Err != nil {
			continue
		}
		if _, ok := groups[t.probe.platform]; !ok {
			order = append(order, t.probe.platform)
		}
		groups[t.probe.platform] = append(groups[t.probe.platform], t)
	}
	pk := &packed{dir: o.CacheDir}
	var wg sync.WaitGroup
	for _, plat := range order {
		b, err := o.Finder.Find(ctx, plat)
		var need []*target
		for _, t := range groups[plat] {
			switch {
			case err != nil:
				t.report.Err = err
			case t.probe.sum == b.SHA256:
				t.report.SHA256, t.report.From = b.SHA256, "already there"
			default:
				t.report.SHA256 = b.SHA256
				need = append(need, t)
			}
		}
		if len(need) > 0 {
			wg.Go(func() { o.distribute(ctx, pk, b, need) })
		}
	}
	wg.Wait()
	return reports
}

// distribute sends b to one host from here, then has the hosts that
// hold it pass it on to the others, each new holder serving too. A host
// that cannot fetch from another is sent it from here.
func (o Options) distribute(ctx context.Context, pk *packed, b *Binary, pending []*target) {
	var sources []*source
	defer func() {
		for _, s := range sources {
			s.relay.Stop()
		}
	}()
	var direct []*target
	if !o.Relay || len(pending) < 2 {
		direct = pending
		pending = nil
	}
	// The seed: the first host that takes it from here.
	for len(pending) > 0 && len(sources) == 0 {
		seed := pending[0]
		pending = pending[1:]
		if err := o.send(ctx, pk, b, seed); err != nil {
			seed.report.Err = err
			continue
		}
		if len(pending) > 0 {
			if s := o.serve(ctx, b, seed); s != nil {
				sources = append(sources, s)
			} else {
				direct = append(direct, pending...)
				pending = nil
			}
		}
	}
	for len(pending) > 0 && ctx.Err() == nil {
		var live []*source
		for _, s := range sources {
			if !s.broken {
				live = append(live, s)
			}
		}
		if len(live) == 0 {
			direct = append(direct, pending...)
			break
		}
		n := min(len(pending), len(live)*relayFanout)
		wave := pending[:n]
		pending = pending[n:]
		var wg sync.WaitGroup
		var mu sync.Mutex
		for k, t := range wave {
			s := live[k%len(live)]
			wg.Go(func() {
				err := o.fetch(ctx, b, t, s)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					var de *DamagedError
					if !errors.As(err, &de) {
						s.broken = true // it may be gone; the next wave uses the others
					}
					o.Logf(t.Host, "could not fetch hoist from %s (%v); sending it from here", s.host, err)
					direct = append(direct, t)
					return
				}
				if len(pending) > 0 {
					if next := o.serve(ctx, b, t); next != nil {
						sources = append(sources, next)
					}
				}
			})
		}
		wg.Wait()
	}
	each(direct, o.Parallel, func(t *target) {
		if err := o.send(ctx, pk, b, t); err != nil {
			t.report.Err = err
		}
	})
}

// send sends b to t from this machine, compressed.
func (o Options) send(ctx context.Context, pk *packed, b *Binary, t *target) error {
	c := gzipCodec
	if t.probe.tools["zstd"] {
		c = zstdCodec
	} else if !t.probe.tools["gzip"] {
		return usererr.New("%s has neither gzip nor zstd to unpack hoist with", t.Host).WithHint("install gzip on it")
	}
	pr, pw := io.Pipe()
	sent := make(chan int64, 1)
	go func() {
		n, err := pk.send(b, c, pw)
		pw.CloseWithError(err)
		sent <- n
	}()
	err := o.run(ctx, b, t, c.unpack, pr)
	pr.CloseWithError(errors.New("the host stopped reading")) // ends a send the host left
	n := <-sent
	t.report.Sent += n
	if err != nil {
		return err
	}
	t.report.From = "this machine"
	o.Logf(t.Host, "installed hoist at %s (%s, sent %s with %s; sha256 %.12s checked)", host.BinPath, b.Platform, bytesize.String(n), c.name, b.SHA256)
	return nil
}

// fetch has t fetch b from source s over the network between them.
func (o Options) fetch(ctx context.Context, b *Binary, t *target, s *source) error {
	if !t.probe.tools["bash"] || !t.probe.tools["timeout"] {
		return errors.New("the host has no bash to fetch it with")
	}
	get, err := fetchCmd(s.relay.Offer.Addr, s.token)
	if err != nil {
		return err
	}
	if err := o.run(ctx, b, t, get, nil); err != nil {
		return err
	}
	t.report.From = "relay " + s.host
	o.Logf(t.Host, "installed hoist at %s (%s, from %s; sha256 %.12s checked)", host.BinPath, b.Platform, s.host, b.SHA256)
	return nil
}

// fetchCmd is the host's command that writes the binary a peer serves
// at addr to stdout, with bash's /dev/tcp. /dev/tcp waits as long as the
// kernel does for a peer behind a firewall that drops: a first
// connection, bounded, says whether the path is there, before the
// fetch, bounded too.
func fetchCmd(addr, token string) (string, error) {
	h, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if net.ParseIP(h) == nil || !validToken(token) {
		return "", fmt.Errorf("fetch from %q: not an address and token", addr)
	}
	return fmt.Sprintf(`timeout %d bash -c ': <>/dev/tcp/%[2]s/%[3]s' && timeout %[4]d bash -c 'exec 3<>/dev/tcp/%[2]s/%[3]s && printf "%%s\n" %[5]s >&3 && cat <&3'`,
		int(connectLimit/time.Second), h, port, int(fetchLimit/time.Second), token), nil
}

func validToken(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && len(s) >= 32
}

// run runs the install script on t: get writes the binary to stdout,
// from stdin or from the network; the script checks its sum and renames
// it over the host's hoist.
func (o Options) run(ctx context.Context, b *Binary, t *target, get string, stdin io.Reader) error {
	script := installScript(host.BinPath, b.SHA256, get)
	if sudo := transport.Sudo(t.Conn); sudo != "" {
		script = sudo + "sh -c " + transport.Quote(script)
	}
	var stderr bytes.Buffer
	err := t.Conn.Run(ctx, script, stdin, io.Discard, &stderr)
	var ee *transport.ExitError
	if errors.As(err, &ee) && ee.Code == exitDamaged {
		got, _, _ := strings.Cut(strings.TrimSpace(stderr.String()), " ")
		return &DamagedError{Host: t.Host, Path: b.Path, Want: b.SHA256, Got: got}
	}
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" && !strings.Contains(err.Error(), msg) {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return fmt.Errorf("install hoist on %s: %w", t.Host, err)
	}
	return nil
}

// installScript writes what get prints to a file beside the host's
// hoist, checks its sum and renames it into place: the hoist that was
// there stays until the new one is whole and checked.
func installScript(bin, want, get string) string {
	dir := path.Dir(bin)
	return fmt.Sprintf(`set -e; umask 022; mkdir -p %[1]s; t=$(mktemp %[1]s/.hoist.XXXXXX); trap 'rm -f "$t"' EXIT; `+
		`%[2]s > "$t"; got=$(sha256sum "$t" | cut -d' ' -f1); `+
		`if [ "$got" != %[3]s ]; then echo "$got is the sha256 of what arrived" >&2; exit %[4]d; fi; `+
		`chmod 755 "$t"; sync "$t"; mv -f "$t" %[5]s; trap - EXIT; sync %[1]s`,
		dir, get, want, exitDamaged, bin)
}

// source is a host passing hoist on.
type source struct {
	host   string
	relay  *hostclient.Relay
	token  string
	broken bool
}

// serve has t pass b on to the others; nil when it cannot (a host of
// an older hoist, without the verb, or without an address).
func (o Options) serve(ctx context.Context, b *Binary, t *target) *source {
	if t.Client == nil || t.probe.addr == "" {
		return nil
	}
	token := randomToken()
	log := io.Discard
	if o.ServeLog != nil {
		log = o.ServeLog(t.Host)
	}
	r, err := t.Client.ServeBinary(ctx, b.SHA256, token, t.probe.addr, relayLife, log)
	if err != nil {
		o.Logf(t.Host, "warning: cannot pass hoist on to the other hosts: %v", err)
		return nil
	}
	return &source{host: t.Host, relay: r, token: token}
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// each runs fn for every target, at most parallel at once, and waits.
func each(ts []*target, parallel int, fn func(t *target)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, parallel))
	for _, t := range ts {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			fn(t)
		})
	}
	wg.Wait()
}
