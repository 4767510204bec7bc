package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"

	"github.com/hoistdev/hoist/internal/names"
	"github.com/hoistdev/hoist/internal/usererr"
)

// Error is a problem in a config file, with its position. Line and Col
// are 1-based; 0 means the position is not known.
type Error struct {
	File      string
	Line, Col int
	Msg       string
	// Snippet is the offending source with a caret, when known.
	Snippet string
}

func (e *Error) Error() string {
	pos := e.File
	if e.Line > 0 {
		pos = fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Col)
	}
	return pos + ": " + e.Msg
}

// Load reads and validates the config file at path.
func Load(file string) (*Config, error) {
	data, err := readConfig(file)
	if err != nil {
		return nil, err
	}
	return Parse(file, data)
}

func readConfig(file string) ([]byte, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, usererr.New("no %s at %s", FileName, file).
			WithHint("run `hoist init` in the app's repository to write one, or pass --config")
	}
	if err != nil {
		return nil, usererr.Wrap(err, "cannot read config")
	}
	return data, nil
}

// Parse decodes and validates config data; name is used in errors.
func Parse(name string, data []byte) (*Config, error) {
	var c Config
	if err := decodeStrict(name, data, &c); err != nil {
		return nil, err
	}
	err := zeroGiven(data, &c)
	c.Defaults()
	if err == nil {
		err = c.validate()
	}
	if err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			return nil, wrapUser(positioned(name, data, fe))
		}
		return nil, err
	}
	return &c, nil
}

// zeroGiven refuses a zero that was written where zero stands for "not
// given" and gets a default: `count: 0` would otherwise plan one host.
func zeroGiven(data []byte, c *Config) error {
	if c.Infra.Count == 0 && hasPath(data, "$.infra.count") {
		return errAt("$.infra.count", "0 hosts: hoist provisions from 1 to 20 (hoist destroy removes them all)")
	}
	return nil
}

const emptyFile = "file is empty; expected at least `version: 1` and `app:`"

// decodeStrict decodes data into c, refusing unknown keys.
func decodeStrict(name string, data []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data), yaml.Strict())
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) || len(bytes.TrimSpace(data)) == 0 {
			return wrapUser(&Error{File: name, Msg: emptyFile})
		}
		return wrapUser(yamlError(name, err))
	}
	return nil
}

func wrapUser(e *Error) error {
	ue := &usererr.Error{Msg: e.Error(), Err: nil}
	if e.Snippet != "" {
		ue.Msg += "\n" + e.Snippet
	}
	// Keep the *Error reachable for callers that want the position.
	ue.Err = positionOnly{e}
	return ue
}

// positionOnly carries *Error through usererr without repeating its text.
type positionOnly struct{ e *Error }

func (p positionOnly) Error() string { return "" }
func (p positionOnly) Unwrap() error { return p.e }

func yamlError(name string, err error) *Error {
	var ye yaml.Error
	if !errors.As(err, &ye) {
		return &Error{File: name, Msg: err.Error()}
	}
	e := &Error{File: name, Msg: ye.GetMessage()}
	if tk := ye.GetToken(); tk != nil && tk.Position != nil {
		e.Line, e.Col = tk.Position.Line, tk.Position.Column
	}
	if strings.HasPrefix(e.Msg, "unknown field") {
		e.Msg += " (docs/config.md lists the fields of hoist.yml)"
	}
	// FormatError with source gives the caret snippet; drop its first
	// line, which repeats position and message.
	full := ye.FormatError(false, true)
	if i := strings.IndexByte(full, '\n'); i >= 0 {
		e.Snippet = strings.TrimRight(full[i+1:], "\n")
	}
	return e
}

// fieldError is a validation failure tied to a YAML path like
// $.build.command; positioned turns it into file:line:col.
type fieldError struct {
	path string
	msg  string
}

func (f *fieldError) Error() string { return f.path + ": " + f.msg }

func errAt(p, format string, args ...any) error {
	return &fieldError{path: p, msg: fmt.Sprintf(format, args...)}
}

func positioned(name string, data []byte, fe *fieldError) *Error {
	e := &Error{File: name, Msg: strings.TrimPrefix(fe.path, "$.") + ": " + fe.msg}
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return e
	}
	// Walk up the path until a node exists: a missing key is reported at
	// its parent mapping.
	for p := fe.path; p != "$" && p != ""; p = parentPath(p) {
		yp, err := yaml.PathString(p)
		if err != nil {
			continue
		}
		node, err := yp.FilterFile(file)
		if err != nil || node == nil {
			continue
		}
		tk := node.GetToken()
		if _, isMap := node.(*ast.MappingNode); isMap && p == fe.path {
			// The error is about a whole mapping: point at its key.
			if k := keyToken(file, p); k != nil {
				tk = k
			}
		} else if p != fe.path {
			// Parent mapping: point at its key rather than the first child.
			if m, ok := node.(*ast.MappingNode); ok && len(m.Values) > 0 {
				tk = m.Values[0].Key.GetToken()
			}
		}
		if tk != nil && tk.Position != nil {
			e.Line, e.Col = tk.Position.Line, tk.Position.Column
		}
		return e
	}
	e.Line, e.Col = 1, 1
	return e
}

// keyToken is the token of the key that holds the value at path p.
func keyToken(file *ast.File, p string) *token.Token {
	parent := parentPath(p)
	key := p[len(parent)+1:]
	yp, err := yaml.PathString(parent)
	if err != nil {
		return nil
	}
	node, err := yp.FilterFile(file)
	if err != nil {
		return nil
	}
	m, ok := node.(*ast.MappingNode)
	if !ok {
		return nil
	}
	for _, v := range m.Values {
		if v.Key.String() == key {
			return v.Key.GetToken()
		}
	}
	return nil
}

func parentPath(p string) string {
	if i := strings.LastIndexAny(p, ".["); i > 0 {
		return p[:i]
	}
	return "$"
}

// privateNetworks are the IPv4 networks no internet route leads to:
// RFC 1918's, and the shared space overlay networks use (100.64.0.0/10).
var privateNetworks = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("100.64.0.0/10"),
}

// privateNetwork reports whether cidr is a network inside a private one.
func privateNetwork(cidr string) bool {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return false
	}
	for _, n := range privateNetworks {
		if n.Contains(p.Addr()) && p.Bits() >= n.Bits() {
			return true
		}
	}
	return false
}

func (c *Config) validate() error {
	if c.Version != Version {
		if c.Version == 0 {
			return errAt("$.version", "missing; add `version: 1` at the top")
		}
		return errAt("$.version", "version %d is not supported by this hoist, which reads version %d", c.Version, Version)
	}
	if c.App == "" {
		return errAt("$.app", "missing; name the app, for example `app: myapp`")
	}
	if why := names.CheckApp(c.App); why != "" {
		return errAt("$.app", "%s", why)
	}
	seen := map[string]bool{}
	for i, h := range c.Hosts {
		if strings.TrimSpace(h) == "" || strings.ContainsAny(h, " \t/") {
			return errAt(fmt.Sprintf("$.hosts[%d]", i), "%q is not a host: expected an address, a name or user@host:port", h)
		}
		// Deployed to twice at once, a host would run two activations.
		if seen[h] {
			return errAt(fmt.Sprintf("$.hosts[%d]", i), "%s is listed twice", h)
		}
		seen[h] = true
	}
	if c.SSH.Port < 0 || c.SSH.Port > 65535 {
		return errAt("$.ssh.port", "%d is not a TCP port", c.SSH.Port)
	}
	if c.SSH.Parallel < 1 {
		return errAt("$.ssh.parallel", "must be at least 1")
	}
	check, ok := lookup(registry.builders, c.Build.Builder)
	if !ok {
		return errAt("$.build.builder", "unknown builder %q: expected %s", c.Build.Builder, orList(BuilderNames()))
	}
	if err := check(c); err != nil {
		return err
	}
	for i, p := range c.Build.Caches {
		if p == "" || strings.Contains(p, "..") || p == "/" || path.Clean(p) == "." {
			return errAt(fmt.Sprintf("$.build.caches[%d]", i), "%q is not a cache directory: name one inside the checkout or an absolute path in the build environment", p)
		}
	}
	for i, p := range c.Build.Include {
		if p == "" || path.IsAbs(p) {
			return errAt(fmt.Sprintf("$.build.include[%d]", i), "%q is not a directory of the repository: give it relative to hoist.yml's directory, like ../shared", p)
		}
	}
	for i, p := range c.Build.Packages {
		if p == "" || strings.ContainsAny(p, " \t;&|$`'\"") {
			return errAt(fmt.Sprintf("$.build.packages[%d]", i), "%q is not a package name", p)
		}
	}
	if strings.TrimSpace(c.Build.Command) == "" {
		return errAt("$.build.command", "missing; the command that builds the release, for example `go build -o dist/app .`")
	}
	if c.Build.Output == "" {
		return errAt("$.build.output", "missing; the directory the build leaves the release in, for example `dist`")
	}
	if path.IsAbs(c.Build.Output) || strings.HasPrefix(path.Clean(c.Build.Output), "..") || path.Clean(c.Build.Output) == "." {
		return errAt("$.build.output", "%q must be a directory inside the checkout", c.Build.Output)
	}
	if c.Build.Target == "" {
		c.Build.Target = "linux/" + runtime.GOARCH
	} else if os, arch, ok := strings.Cut(c.Build.Target, "/"); !ok || os == "" || arch == "" {
		return errAt("$.build.target", "%q is not OS/ARCH, for example linux/amd64", c.Build.Target)
	}
	if strings.TrimSpace(c.Run.Command) == "" {
		return errAt("$.run.command", "missing; how to start the app, relative to the release, for example `./app`")
	}
	if c.Run.Port < 1 || c.Run.Port > 65535 {
		return errAt("$.run.port", "%d is not a TCP port", c.Run.Port)
	}
	for k := range c.Run.Env {
		if !envName.MatchString(k) {
			return errAt("$.run.env."+k, "%q is not a valid environment variable name", k)
		}
		switch k {
		case "PORT", "HOIST_RELEASE":
			return errAt("$.run.env."+k, "%s is set by hoist; set run.port instead of PORT", k)
		case "RELEASE_COOKIE":
			return errAt("$.run.env."+k, "RELEASE_COOKIE is a secret, and run.env is written into the app's unit, which every user of the host reads: hoist gives each app a cookie of its own; for one of yours, run `hoist secrets gen RELEASE_COOKIE`")
		case "RELEASE_NODE", "RELEASE_DISTRIBUTION", "ERL_EPMD_PORT", "ERL_EPMD_ADDRESS", "ERL_ZFLAGS":
			return errAt("$.run.env."+k, "%s is set by hoist: each release is an Erlang node of its own, so that two can run side by side (run.erlang.listen says where it listens)", k)
		}
	}
	if l := c.Run.Erlang.Listen; l != ListenLoopback && !privateNetwork(l) {
		return errAt("$.run.erlang.listen", "%q is neither loopback nor a private IPv4 network like 10.0.0.0/16: the Erlang distribution must not face the internet", l)
	}
	for k := range c.Build.Env {
		if !envName.MatchString(k) {
			return errAt("$.build.env."+k, "%q is not a valid environment variable name", k)
		}
	}
	if err := c.Health.Timeout.parse(); err != nil {
		return errAt("$.health.timeout", "%v", err)
	}
	if err := c.Health.Interval.parse(); err != nil {
		return errAt("$.health.interval", "%v", err)
	}
	if err := c.Hooks.Timeout.parse(); err != nil {
		return errAt("$.hooks.timeout", "%v", err)
	}
	if c.Hooks.Timeout.Duration <= 0 {
		return errAt("$.hooks.timeout", "must be positive")
	}
	if err := c.Proxy.DrainTimeout.parse(); err != nil {
		return errAt("$.proxy.drain_timeout", "%v", err)
	}
	if err := c.Proxy.MaxBodyBytes.parse(); err != nil {
		return errAt("$.proxy.max_body_bytes", "%v", err)
	}
	for i, h := range c.Proxy.Hosts {
		if h == "" || strings.ContainsAny(h, "/: ") || (strings.Contains(h, "*") && (!strings.HasPrefix(h, "*.") || strings.Count(h, "*") > 1)) {
			return errAt(fmt.Sprintf("$.proxy.hosts[%d]", i), "%q is not a host name: write app.example.com or *.example.com", h)
		}
	}
	for key, v := range map[string]string{"acme_email": c.Proxy.ACMEEmail, "acme_ca": c.Proxy.ACMECA} {
		if strings.ContainsAny(v, " \t\"'\\%$") {
			return errAt("$.proxy."+key, "%q may not contain spaces, quotes, backslashes, %% or $", v)
		}
	}
	if err := c.Proxy.TLS.parse(); err != nil {
		return errAt("$.proxy.tls", "%v", err)
	}
	if c.Proxy.TLS.On() && len(c.Proxy.Hosts) == 0 {
		return errAt("$.proxy.tls", "TLS needs the names to get certificates for: list them in proxy.hosts")
	}
	if c.Proxy.TLS.Mode == TLSInternal && c.Proxy.ACMERoot != "" {
		return errAt("$.proxy.acme_root", "tls: internal issues certificates from the proxy's own CA; drop acme_root or write tls: acme")
	}
	if c.Proxy.TLS.Mode == TLSInternal && c.Proxy.ACMECA != "" {
		return errAt("$.proxy.acme_ca", "tls: internal issues certificates from the proxy's own CA; drop acme_ca or write tls: acme")
	}
	if c.Proxy.ACMECA != "" && !strings.HasPrefix(c.Proxy.ACMECA, "https://") {
		return errAt("$.proxy.acme_ca", "%q is not an https:// ACME directory URL", c.Proxy.ACMECA)
	}
	if p := c.Proxy.ErrorPages; p != "" && (path.IsAbs(p) || strings.HasPrefix(path.Clean(p), "..")) {
		return errAt("$.proxy.error_pages", "%q must be a directory of the repository, relative to hoist.yml", p)
	}
	if c.Proxy.ErrorPages != "" && len(c.Proxy.Hosts) == 0 {
		return errAt("$.proxy.error_pages", "the pages are the proxy's answers for the app: list its names in proxy.hosts")
	}
	for i, n := range c.Proxy.TrustedProxies {
		at := fmt.Sprintf("$.proxy.trusted_proxies[%d]", i)
		p, err := netip.ParsePrefix(n)
		if err != nil {
			return errAt(at, "%q is not a network: write it as CIDR, like 10.0.0.0/16 or 2400:cb00::/32", n)
		}
		if p.Bits() == 0 {
			return errAt(at, "%s is every address: any client could then say who it is and that it came over HTTPS; name the proxies' own networks", n)
		}
		if len(c.Proxy.Hosts) == 0 {
			return errAt(at, "only hoist's proxy reads X-Forwarded-*: list the app's names in proxy.hosts")
		}
	}
	if c.Proxy.PathPrefix != "" && !strings.HasPrefix(c.Proxy.PathPrefix, "/") {
		return errAt("$.proxy.path_prefix", "%q must start with /", c.Proxy.PathPrefix)
	}
	if len(c.Proxy.Hosts) > 0 && c.Run.Port >= 65535 {
		return errAt("$.run.port", "with the proxy, releases take run.port and run.port+1; %d leaves no room", c.Run.Port)
	}
	if !strings.HasPrefix(c.Health.Path, "/") {
		return errAt("$.health.path", "%q must start with /", c.Health.Path)
	}
	if c.Health.Timeout.Duration <= 0 || c.Health.Interval.Duration <= 0 {
		return errAt("$.health", "timeout and interval must be positive")
	}
	if c.Health.Interval.Duration > c.Health.Timeout.Duration {
		return errAt("$.health.interval", "%s is longer than health.timeout %s", c.Health.Interval, c.Health.Timeout)
	}
	if c.KeepReleases < 2 {
		return errAt("$.keep_releases", "must be at least 2, so that there is a release to roll back to")
	}
	if err := c.Deploy.MaxInFlight.parse(); err != nil {
		return errAt("$.deploy.max_in_flight", "%v", err)
	}
	if c.Deploy.Canary.Hosts < 0 {
		return errAt("$.deploy.canary.hosts", "must be 0 (no canary) or more")
	}
	if err := c.Deploy.Canary.Watch.parse(); err != nil {
		return errAt("$.deploy.canary.watch", "%v", err)
	}
	if c.Deploy.Canary.Watch.Duration < 0 {
		return errAt("$.deploy.canary.watch", "must not be negative")
	}
	switch c.Deploy.Ship {
	case ShipStore, ShipPush:
	default:
		return errAt("$.deploy.ship", "unknown way %q: write store (hosts fetch from the release store) or push (this machine sends it)", c.Deploy.Ship)
	}
	if err := c.validateStore(); err != nil {
		return err
	}
	if err := c.validateAccessories(); err != nil {
		return err
	}
	if err := c.validateSchedule(); err != nil {
		return err
	}
	if err := c.Infra.validate(c); err != nil {
		return err
	}
	return c.validateDNS()
}

var (
	envNamePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,15}$`)
	amiPattern     = regexp.MustCompile(`^ami-[0-9a-f]{8,17}$`)
	userPattern    = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
)

// Images hoist knows by name, looked up through AWS's public SSM
// parameters.
var KnownImages = []string{"debian-12", "ubuntu-24.04", "ubuntu-22.04"}

func (in *Infra) validate(c *Config) error {
	switch in.Provider {
	case "":
		if !reflect.ValueOf(*in).IsZero() {
			return errAt("$.infra.provider", "missing; write %s, or drop the infra section", orList(ProviderNames()))
		}
		return nil
	}
	check, ok := lookup(registry.providers, in.Provider)
	if !ok {
		return errAt("$.infra.provider", "unknown provider %q: expected %s", in.Provider, orList(ProviderNames()))
	}
	if !envNamePattern.MatchString(in.Env) {
		return errAt("$.infra.env", "%q is not an environment name: lowercase letters, digits and dashes, starting with a letter, at most 16", in.Env)
	}
	if in.Count < 1 || in.Count > 20 {
		return errAt("$.infra.count", "%d hosts: hoist provisions from 1 to 20", in.Count)
	}
	if in.DiskGB < 8 || in.DiskGB > 16384 {
		return errAt("$.infra.disk_gb", "%d GiB: the images need at least 8, EBS allows at most 16384", in.DiskGB)
	}
	if !userPattern.MatchString(in.User) || in.User == "root" {
		return errAt("$.infra.user", "%q is not a login user name (and root logs in only through sudo)", in.User)
	}
	if names.IsHoists(in.User) {
		// setup would take it for an app's user or the proxy's, which
		// would then log in and sudo.
		return errAt("$.infra.user", "%q is a name hoist gives its own system users (hoist-APP, %s): choose another login user", in.User, names.ProxyUser)
	}
	if !slices.Contains(KnownImages, in.Image) && !amiPattern.MatchString(in.Image) &&
		!(strings.HasPrefix(in.Image, "ssm:/") && !strings.ContainsAny(in.Image, " \t")) {
		return errAt("$.infra.image", "%q is not an image: write %s, ssm:/PATH of a public parameter, or an ami-... id", in.Image, strings.Join(KnownImages, ", "))
	}
	switch in.Balancer {
	case BalancerNone:
		if in.Certificate != "" {
			return errAt("$.infra.certificate", "a certificate is for the balancer; with balancer: none the proxy gets its own from ACME")
		}
	case BalancerALB:
		if c.Proxy.TLS.On() {
			return errAt("$.proxy.tls", "behind an ALB the balancer serves HTTPS with its ACM certificate and sends plain HTTP to the hosts: write tls: false")
		}
	default:
		return errAt("$.infra.balancer", "unknown balancer %q: expected none or alb", in.Balancer)
	}
	for i, n := range in.SSHFrom {
		if _, err := netip.ParsePrefix(n); err != nil {
			return errAt(fmt.Sprintf("$.infra.ssh_from[%d]", i), "%q is not a network: write it as CIDR, like 203.0.113.7/32", n)
		}
	}
	return check(c)
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Locate is msg about field (a path like infra.region) of the config
// file (of destination dest, when not ""), at the line where the value
// was written: for a warning about a valid value, such as an instance
// type hoist has no price for.
func Locate(file, dest, field, msg string) *Error {
	fe := &fieldError{path: "$." + field, msg: msg}
	if dest != "" {
		ofile := DestinationFile(file, dest)
		if odata, err := os.ReadFile(ofile); err == nil && hasPath(odata, fe.path) {
			return positioned(ofile, odata, fe)
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return &Error{File: file, Msg: field + ": " + msg}
	}
	return positioned(file, data, fe)
}
