package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/provision"
	"github.com/hoistdev/hoist/internal/proxy"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/usererr"
)

// globalOptions are the flags every verb shares.
type globalOptions struct {
	configPath string
	// destination picks hoist.DEST.yml, laid over hoist.yml, and the
	// destination's own secrets.
	destination string
	// verbose shows what hoist otherwise keeps to itself when all goes
	// well: builds' own output, hosts' activation logs.
	verbose bool
	// acceptNewHostKeys records the key of a host never seen before
	// without asking (a changed key is still refused).
	acceptNewHostKeys bool
	// sshKey, knownHosts and secretsKey name the files a CI job gives
	// hoist its keys in (credentials.go).
	sshKey, knownHosts, secretsKey string
	// storeKeyFile names the key that signs the store's records.
	storeKeyFile string
	creds        credentials
}

// app is deploy's App with the cli's own helpers on it.
type app struct{ *deploy.App }

// loadApp reads hoist.yml and picks the hosts: --host flags win over the
// config's hosts.
func loadApp(g *globalOptions, s *streams, hostFlags []string) (*app, error) {
	cfg, repo, err := loadConfig(g)
	if err != nil {
		return nil, err
	}
	p := g.configPath
	if p == "" {
		p = config.FileName
	}
	hosts := unique(hostFlags)
	if len(hosts) == 0 {
		if hosts, _, err = appHosts(cfg); err != nil {
			return nil, err
		}
	}
	if len(hosts) == 0 {
		return nil, usererr.New("no hosts to work on").
			WithHint("list them under hosts: in %s, pass --host ADDR, or add an infra section and run hoist provision", p)
	}
	a := &app{&deploy.App{Config: cfg, File: p, Repo: repo, Hosts: hosts, LogMu: &sync.Mutex{}, Actor: actorOf(repo), FirstHost: hosts[0],
		Home: hoistHome(), Secrets: secretsStore(cfg, repo)}}
	if len(cfg.Hosts) > 0 {
		a.FirstHost = cfg.Hosts[0]
	} else if len(hostFlags) > 0 && cfg.Infra.Provider != "" {
		// Of the provisioned hosts, whatever --host says (provision sets
		// up some of them with it).
		if all, _, err := appHosts(cfg); err == nil && len(all) > 0 {
			a.FirstHost = all[0]
		}
	}
	if a.Dial, err = dialer(g, cfg, s, a.LogMu); err != nil {
		return nil, err
	}
	return a, nil
}

// appHosts are the app's hosts: hoist.yml's, or else those hoist
// provision made (with the state that records them; nil otherwise).
func appHosts(cfg *config.Config) ([]string, *provision.State, error) {
	return deploy.AppHosts(cfg, hoistHome())
}

// unique returns list without repeats, in its order.
func unique(list []string) []string { return deploy.Unique(list) }

// localApp is the app of cfg without hosts: what the operations on its
// DNS records and its secrets need.
func localApp(cfg *config.Config, repo string) *deploy.App {
	return &deploy.App{Config: cfg, Repo: repo, Home: hoistHome(), Secrets: secretsStore(cfg, repo)}
}

// loadConfig reads hoist.yml and returns it with its directory.
func loadConfig(g *globalOptions) (*config.Config, string, error) {
	p := g.configPath
	if p == "" {
		p = config.FileName
	}
	cfg, err := config.LoadDestination(p, g.destination)
	if err != nil {
		return nil, "", err
	}
	cfg.SecretsKey = g.secretsKey
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, "", fmt.Errorf("config path: %w", err)
	}
	repo := filepath.Dir(abs)
	if cfg.Proxy.Pages, err = readErrorPages(repo, cfg.Proxy.ErrorPages); err != nil {
		return nil, "", err
	}
	return cfg, repo, nil
}

// readErrorPages reads the app's own error pages from dir, relative to
// repo: 502.html, 503.html, 504.html, whichever it has.
func readErrorPages(repo, dir string) (map[int]string, error) {
	if dir == "" {
		return nil, nil
	}
	pages := map[int]string{}
	for _, code := range proxy.PageCodes {
		p := filepath.Join(repo, dir, strconv.Itoa(code)+".html")
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, usererr.Wrap(err, "proxy.error_pages")
		}
		if len(b) > proxy.MaxPageBytes || !utf8.Valid(b) {
			return nil, usererr.New("proxy.error_pages: %s must be UTF-8 of at most %d KiB", p, proxy.MaxPageBytes>>10)
		}
		pages[code] = string(b)
	}
	if len(pages) == 0 {
		return nil, usererr.New("proxy.error_pages: %s holds none of 502.html, 503.html, 504.html", filepath.Join(repo, dir))
	}
	return pages, nil
}

// actorOf is who runs hoist: the git identity of the repository (its
// user.name and user.email) and the login on this machine.
func actorOf(repo string) *hostproto.Actor {
	a := &hostproto.Actor{Login: "unknown"}
	if u, err := user.Current(); err == nil {
		a.Login = u.Username
	}
	if m, err := os.Hostname(); err == nil {
		a.Login += "@" + m
	}
	git := func(key string) string {
		out, err := exec.Command("git", "-C", repo, "config", "--get", key).Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	a.Name, a.Email = git("user.name"), git("user.email")
	return a
}

// dialer returns the SSH dial function for cfg. A host never seen
// before is asked about on a terminal, accepted with
// --accept-new-host-keys, and refused otherwise; mu keeps the question
// apart from the other hosts' lines. CI's credentials (credentials.go)
// come first, and pinned host keys alone are trusted.
func dialer(g *globalOptions, cfg *config.Config, s *streams, mu *sync.Mutex) (fleet.DialFunc, error) {
	creds, err := g.credentials()
	if err != nil {
		return nil, err
	}
	home := hoistHome()
	opts := creds.sshOptions(transport.Options{
		User:              cfg.SSH.User,
		Port:              cfg.SSH.Port,
		IdentityFiles:     identityFiles(cfg, home),
		TrustFile:         filepath.Join(home, "known_hosts"),
		AcceptNewHostKeys: g.acceptNewHostKeys,
		ConfirmHostKey:    askHostKeys(s, mu),
		Log:               &lockedWriter{w: s.err, mu: mu},
	})
	return func(ctx context.Context, h string) (transport.Conn, error) {
		c, err := transport.Dial(ctx, h, opts)
		if err != nil {
			return nil, err // not a nil *SSH in a non-nil interface
		}
		return c, nil
	}, nil
}

// identityFiles are the private keys hoist tries besides ssh's usual
// ones: ssh.identity_file, the key of infra.public_key, the lab key and
// the operator key hoist made for provisioned hosts.
func identityFiles(cfg *config.Config, home string) []string {
	var ids []string
	if cfg.SSH.IdentityFile != "" {
		ids = append(ids, expandHome(cfg.SSH.IdentityFile))
	}
	if p := cfg.Infra.PublicKey; p != "" {
		ids = append(ids, strings.TrimSuffix(expandHome(p), ".pub"))
	}
	for _, k := range []string{labKeyPath(home), operatorKeyPath(home)} {
		if fileExists(k) {
			ids = append(ids, k)
		}
	}
	return ids
}

// hoistHome is where hoist keeps its own files on this machine: the
// known_hosts it records, the lab key. HOIST_HOME overrides it.
func hoistHome() string {
	if h := os.Getenv("HOIST_HOME"); h != "" {
		return h
	}
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "hoist")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".config", "hoist")
	}
	return ".hoist"
}

// cacheDir holds scratch checkouts and packed releases. HOIST_CACHE
// overrides it.
func cacheDir() string {
	if c := os.Getenv("HOIST_CACHE"); c != "" {
		return c
	}
	if c, err := os.UserCacheDir(); err == nil {
		return filepath.Join(c, "hoist")
	}
	return filepath.Join(os.TempDir(), "hoist-cache")
}

func labKeyPath(home string) string { return filepath.Join(home, "lab", "id_ed25519") }

func expandHome(p string) string {
	if len(p) > 1 && p[:2] == "~/" {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, p[2:])
		}
	}
	return p
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// report prints one line per failed host and returns an error that says
// how many failed, or nil when none did.
func report(w io.Writer, results []fleet.Result, verb string) error {
	failed := fleet.Failed(results)
	printFailed(w, failed)
	if len(failed) == 0 {
		return nil
	}
	return &usererr.Error{Msg: fmt.Sprintf("%s failed on %d of %d host(s)", verb, len(failed), len(results))}
}

// printFailed prints one line per failed host, with its hint and, for a
// release that failed its health check, its journal.
func printFailed(w io.Writer, failed []fleet.Result) {
	for _, r := range failed {
		fmt.Fprintf(w, "%s %s: %v\n", paint(w, "failed", red), r.Host, r.Err)
		if h := usererr.HintOf(r.Err); h != "" {
			fmt.Fprintf(w, "  %s %s\n", paint(w, "hint:", yellow), h)
		}
		var he *hostproto.HealthError
		if errors.As(r.Err, &he) && he.Journal != "" {
			fmt.Fprintf(w, "  the previous release keeps serving; the last lines of %s's journal:\n", he.ID)
			for _, line := range strings.Split(strings.TrimRight(he.Journal, "\n"), "\n") {
				fmt.Fprintf(w, "    %s\n", line)
			}
		}
	}
}
