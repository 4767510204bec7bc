// Package config defines hoist.yml, the one versioned file that says how an
// app is built, where it runs and how it is checked, and loads it strictly:
// an unknown key, a wrong type or an invalid value is an error that names
// file:line:col.
package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hoistdev/hoist/internal/services"
)

// FileName is the config file hoist looks for in the app's repository.
const FileName = "hoist.yml"

// Version is the only config format version this hoist reads.
const Version = 1

// Config is the whole of hoist.yml.
type Config struct {
	// Version of the config format; must be 1. A later hoist that changes
	// the format bumps it, so an old file is never misread.
	Version int `yaml:"version"`
	// App is the application's name: lowercase letters, digits and dashes,
	// starting with a letter, at most 32 characters. It names the system
	// user (hoist-APP), the systemd units and the directory on each host;
	// a name whose would be hoist's own (proxy) is reserved.
	App string `yaml:"app"`
	// Hosts to deploy to: an address, a name, or a Host alias from
	// ~/.ssh/config, each optionally as user@host:port.
	Hosts []string `yaml:"hosts"`
	// SSH says how to reach the hosts.
	SSH SSH `yaml:"ssh"`
	// Build says how a release is built from a clean checkout.
	Build Build `yaml:"build"`
	// Run says how the release runs on each host.
	Run Run `yaml:"run"`
	// Health says how hoist decides that a started release works.
	Health Health `yaml:"health"`
	// Hooks are commands run on each host at named points of a deploy.
	Hooks Hooks `yaml:"hooks"`
	// Proxy puts hoist's edge proxy in front of the app on each host, for
	// deploys without downtime.
	Proxy Proxy `yaml:"proxy"`
	// Deploy says how a release goes out to the hosts: how many switch at
	// once, a canary first, hosts passing the release on to each other.
	Deploy Deploy `yaml:"deploy"`
	// DNS keeps the address records of proxy.hosts at the app's DNS
	// provider in step with its hosts, and lets the proxies solve DNS-01
	// challenges through the same provider.
	DNS DNS `yaml:"dns"`
	// KeepReleases is how many releases stay on each host, the current one
	// included; older ones are pruned after a deploy. Default 5, minimum 2
	// so that there is always one to roll back to.
	KeepReleases int `yaml:"keep_releases"`
	// Infra says what hosts `hoist provision` makes for the app, and
	// where; without it, hosts are made by someone else and listed in
	// Hosts.
	Infra Infra `yaml:"infra"`
	// Accessories are services that run beside the app, from the host
	// distribution's packages under systemd: a database, a cache. Each
	// has a name of its own (db, cache), its key here.
	Accessories map[string]Accessory `yaml:"accessories"`
	// Schedule are commands run on a calendar in the current release,
	// each under a name of its own, its key here: systemd timers on the
	// hosts.
	Schedule map[string]Task `yaml:"schedule"`
	// Store keeps the app's releases in an S3-compatible bucket, with a
	// record of the current one signed by the operator's key: hosts fetch
	// releases from there, and trust only what that key signed.
	Store Store `yaml:"store"`

	// Destination is the destination this config was loaded for
	// (hoist -d NAME: hoist.NAME.yml laid over hoist.yml), "" for none.
	Destination string `yaml:"-"`
	// SecretsKey is the file of the age key that opens the app's secrets
	// when the command line names one (--secrets-key), "" otherwise.
	SecretsKey string `yaml:"-"`
}

// Accessory is a service run beside the app on one host, from the host
// distribution's package, under the distribution's own systemd unit
// hardened by hoist, with its data kept in place across deploys, setups
// and hoist upgrades.
type Accessory struct {
	// Service is what runs: postgresql, redis or valkey.
	Service string `yaml:"service"`
	// Host runs it: one of the app's hosts or another, written like
	// them. Default: the first of the app's hosts.
	Host string `yaml:"host"`
	// Package is the Debian package that provides it. Default:
	// postgresql, redis-server or valkey-server.
	Package string `yaml:"package"`
	// Port it listens on. Default 5432 for postgresql, 6379 for redis
	// and valkey.
	Port int `yaml:"port"`
	// Listen is where it accepts connections: "loopback" (default), for
	// an app on the same host, or a private address of its host (10.x,
	// 172.16-31.x, 192.168.x, 100.64-127.x, fc00::/7), for apps on other
	// hosts of the private network. Never a public address.
	Listen string `yaml:"listen"`
	// Allow are the networks (CIDR) that may connect when it listens on
	// a private address. Default: the address's /24 (IPv4) or /64 (IPv6).
	Allow []string `yaml:"allow"`
	// Database is the PostgreSQL database, and the role that owns it,
	// made for the app. Default: the app's name with dashes turned to
	// underscores.
	Database string `yaml:"database"`
	// Env is the variable of the app's environment that gets the URL to
	// reach it, password included. Default DATABASE_URL for postgresql,
	// REDIS_URL for redis and valkey.
	Env string `yaml:"env"`
	// Backup schedules PostgreSQL backups on the accessory's host.
	Backup AccessoryBackup `yaml:"backup"`
}

// AccessoryBackup is when a PostgreSQL accessory is backed up and how
// many backups are kept.
type AccessoryBackup struct {
	// Schedule is when backups run, as systemd's OnCalendar= takes it
	// (daily, hourly, Mon *-*-* 03:00:00); "off" for none. Default daily.
	Schedule string `yaml:"schedule"`
	// Keep is how many backups stay on the host, the newest. Default 7.
	Keep int `yaml:"keep"`
	// Offsite copies each backup, encrypted on the host, to an
	// S3-compatible bucket after each scheduled backup.
	Offsite *AccessoryOffsite `yaml:"offsite"`
}

// AccessoryOffsite is a bucket that backups are copied to, off the
// accessory's host. Its credentials are never here: the host's standard
// AWS chain, or two hoist secrets named by AccessKeySecret and
// SecretKeySecret.
type AccessoryOffsite struct {
	// Bucket is the bucket's name.
	Bucket string `yaml:"bucket"`
	// Prefix begins the key of every object. Default APP/NAME/.
	Prefix string `yaml:"prefix"`
	// Region is the bucket's region. Default us-east-1.
	Region string `yaml:"region"`
	// Endpoint is the URL of an S3-compatible server (MinIO, R2, B2,
	// Ceph...); unset for AWS. With it, objects are addressed by path.
	Endpoint string `yaml:"endpoint"`
	// Recipient is the age public key (age1...) backups are encrypted
	// to before they leave the host; its identity stays with the
	// operator, and is what restores from the bucket.
	Recipient string `yaml:"recipient"`
	// Keep is how many backups the bucket keeps, the newest. Default 30.
	Keep int `yaml:"keep"`
	// AccessKeySecret names the hoist secret holding the access key ID;
	// unset: the host's standard AWS chain.
	AccessKeySecret string `yaml:"access_key_secret"`
	// SecretKeySecret names the hoist secret holding the secret key.
	SecretKeySecret string `yaml:"secret_key_secret"`
}

// Store is the app's release store: a bucket, and the prefix of its
// keys there. Its credentials are never here: the standard AWS chain
// (of this machine, and of each host), or two hoist secrets named by
// AccessKeySecret and SecretKeySecret.
type Store struct {
	// Bucket is the bucket's name.
	Bucket string `yaml:"bucket"`
	// Prefix begins the key of every object. Default APP/store/
	// (APP/DEST/store/ for a destination).
	Prefix string `yaml:"prefix"`
	// Region is the bucket's region. Default us-east-1.
	Region string `yaml:"region"`
	// Endpoint is the URL of an S3-compatible server (MinIO, R2, B2,
	// Ceph...); unset for AWS. With it, objects are addressed by path.
	Endpoint string `yaml:"endpoint"`
	// PublicKey is the public half of the ed25519 key that signs the
	// store's records, as an authorized_keys line (ssh-ed25519 AAAA...):
	// hosts trust records signed by it alone. `hoist store key` makes the
	// key and prints this line.
	PublicKey string `yaml:"public_key"`
	// AccessKeySecret names the hoist secret holding the access key ID;
	// unset: the standard AWS chain.
	AccessKeySecret string `yaml:"access_key_secret"`
	// SecretKeySecret names the hoist secret holding the secret key.
	SecretKeySecret string `yaml:"secret_key_secret"`
}

// On reports whether hoist.yml has a store.
func (s Store) On() bool { return s.Bucket != "" }

// Accessory services.
const (
	ServicePostgreSQL = services.PostgreSQL
	ServiceRedis      = services.Redis
	ServiceValkey     = services.Valkey
	// BackupOff turns scheduled backups off.
	BackupOff = "off"
)

// AccessoryNames are the accessories' names, sorted: the order hoist
// works on them in.
func (c *Config) AccessoryNames() []string {
	names := make([]string, 0, len(c.Accessories))
	for n := range c.Accessories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (a *Accessory) defaults(app string) {
	d, ok := services.Lookup(a.Service)
	if !ok {
		return // validate names the service
	}
	if a.Package == "" {
		a.Package = d.Package
	}
	if a.Port == 0 {
		a.Port = d.Port
	}
	if a.Env == "" {
		a.Env = d.Env
	}
	if a.Listen == "" {
		a.Listen = ListenLoopback
	}
	if d.Database && a.Database == "" {
		a.Database = strings.ReplaceAll(app, "-", "_")
	}
	if d.Backup {
		if a.Backup.Schedule == "" {
			a.Backup.Schedule = "daily"
		}
		if a.Backup.Keep == 0 {
			a.Backup.Keep = 7
		}
		if o := a.Backup.Offsite; o != nil {
			if o.Region == "" {
				o.Region = "us-east-1"
			}
			if o.Keep == 0 {
				o.Keep = 30
			}
		}
	}
}

// Deploy is how a release goes out once it is built. Every host first
// receives it (only what it lacks), then hosts switch to it group by
// group: the canaries, then MaxInFlight at a time. When a host fails,
// the deploy stops and every host that switched goes back to the release
// it served before.
type Deploy struct {
	// MaxInFlight is how many hosts switch at once: a number, or a
	// percentage of the hosts like "25%" (at least one host). Default:
	// all of them; behind a balancer, one.
	MaxInFlight Amount `yaml:"max_in_flight"`
	// Canary switches a few hosts first and watches them before the rest.
	Canary Canary `yaml:"canary"`
	// Relay lets hosts pass the release on to each other over the
	// network between them, so that it leaves this machine once (and
	// hoist itself, at setup). Default true; hosts that cannot reach each
	// other are sent it directly.
	Relay *bool `yaml:"relay"`
	// Ship is how hosts get a release: "store", each fetches what it
	// lacks from the release store (the store section); "push", this
	// machine sends it (relayed between hosts, as relay says). Default
	// store when there is a store, else push.
	Ship string `yaml:"ship"`
}

// Ship modes.
const (
	ShipStore = "store"
	ShipPush  = "push"
)

// Canary is the first step of a deploy.
type Canary struct {
	// Hosts is how many hosts (the first ones listed) switch first.
	// Default 0: no canary.
	Hosts int `yaml:"hosts"`
	// Watch is how long the canaries serve the new release, their health
	// checked every health.interval, before the other hosts follow; a
	// failed check stops the deploy. Default 1m.
	Watch Duration `yaml:"watch"`
}

// RelayOn reports whether hosts pass releases on to each other.
func (d Deploy) RelayOn() bool { return d.Relay == nil || *d.Relay }

// Amount is a count or a percentage ("3", "25%"), parsed during
// validation like Duration.
type Amount struct {
	N       int
	Percent bool
	raw     string
}

// UnmarshalYAML keeps the raw text for validate.
func (a *Amount) UnmarshalYAML(b []byte) error {
	a.raw = strings.Trim(strings.TrimSpace(string(b)), `"'`)
	return nil
}

// MarshalYAML writes the amount as it was written.
func (a Amount) MarshalYAML() (any, error) {
	if a.Percent {
		return fmt.Sprintf("%d%%", a.N), nil
	}
	return a.N, nil
}

// Set reports whether an amount was given.
func (a Amount) Set() bool { return a.N > 0 }

// Of is the amount of n hosts: at least 1, at most n.
func (a Amount) Of(n int) int {
	v := a.N
	if a.Percent {
		v = a.N * n / 100
	}
	return max(1, min(v, n))
}

func (a *Amount) parse() error {
	if a.raw == "" {
		return nil
	}
	s, pct := strings.CutSuffix(a.raw, "%")
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 || (pct && v > 100) {
		return fmt.Errorf("%q is not a number of hosts or a percentage like 25%%", a.raw)
	}
	a.N, a.Percent = v, pct
	return nil
}

// Infra is the infrastructure hoist makes for an app: hosts booted from
// a plain image and configured by cloud-init with user data hoist
// renders, and what fronts them.
type Infra struct {
	// Provider makes the hosts: "lab" (systemd-nspawn machines on this
	// machine, from a bare cloud image) or "aws" (EC2). Empty: hoist
	// provisions nothing.
	Provider string `yaml:"provider"`
	// Env names the environment (production, staging...). Everything
	// hoist makes is tagged with the app and the environment, and destroy
	// removes only what carries both. Default "production".
	Env string `yaml:"env"`
	// Region is the AWS region, for example eu-west-1. Required for aws.
	Region string `yaml:"region"`
	// Zones are the availability zones hosts and the balancer's subnets
	// go in, each a letter after the region (eu-west-1a). Hosts are
	// spread over them in turn. Default: the region's a zone, and its b
	// zone too with an ALB, which needs two.
	Zones []string `yaml:"zones"`
	// InstanceType is the EC2 instance type. Default t3.micro.
	InstanceType string `yaml:"instance_type"`
	// Count is how many hosts, 1 to 20. Default 1 (a written 0 is refused).
	Count int `yaml:"count"`
	// DiskGB is each host's root disk in GiB (gp3, encrypted). Default 8.
	DiskGB int `yaml:"disk_gb"`
	// Image is what hosts boot: debian-12 (default) or ubuntu-24.04,
	// looked up in the region through AWS's public SSM parameters;
	// ssm:/PATH for another public parameter; or an ami-... id of your own.
	Image string `yaml:"image"`
	// Balancer is what fronts the hosts: "none" (default) lets hoist's
	// proxy on each host take HTTP and HTTPS itself, with certificates
	// from ACME; "alb" puts an Application Load Balancer in front, over
	// two zones, with HTTPS from an ACM certificate and HTTP redirected.
	// On the lab, "alb" is the lab's balancer twin, which does the same
	// with a certificate from the lab's CA (docs/provision.md).
	Balancer string `yaml:"balancer"`
	// Certificate is the ARN of an ACM certificate for the ALB. Default:
	// hoist requests one for proxy.hosts, validated by DNS.
	Certificate string `yaml:"certificate"`
	// SSHFrom are the networks (CIDR) allowed to reach SSH. Default: the
	// public address of the machine running hoist provision, as a /32,
	// which hoist asks checkip.amazonaws.com for (on AWS; set this to
	// skip the question); on the lab, this machine's address on the
	// lab's bridge.
	SSHFrom []string `yaml:"ssh_from"`
	// User is the login user cloud-init makes on each host, with the
	// operator's public key and passwordless sudo. Default "admin". hoist
	// logs in as it when ssh.user is not set. Not hoist-*: hoist names
	// its own system users so.
	User string `yaml:"user"`
	// PublicKey is the operator's public key file for that user. Default:
	// the first of ~/.ssh/id_ed25519.pub, id_ecdsa.pub, id_rsa.pub, else
	// a key hoist makes in its own directory.
	PublicKey string `yaml:"public_key"`
}

// Infra providers and fronts.
const (
	ProviderLab  = "lab"
	ProviderAWS  = "aws"
	BalancerNone = "none"
	BalancerALB  = "alb"
)

// SSH holds connection settings shared by all hosts. ~/.ssh/config still
// applies for anything not set here (User, Port, IdentityFile, ProxyJump).
type SSH struct {
	// User to log in as; it must be root or have passwordless sudo.
	// Default: infra.user when hoist provisions the hosts; else
	// ssh_config's User, else root.
	User string `yaml:"user"`
	// Port of the SSH server. Default: ssh_config's Port, else 22.
	Port int `yaml:"port"`
	// IdentityFile is a private key to try before the usual ones
	// (ssh-agent, ~/.ssh/id_ed25519, id_ecdsa, id_rsa, the lab key).
	IdentityFile string `yaml:"identity_file"`
	// Parallel is how many hosts hoist works on at once. Default 8.
	Parallel int `yaml:"parallel"`
}

// Build describes the build of a release directory.
type Build struct {
	// Builder that runs the command, always in a scratch checkout of the
	// commit: "local" on this machine; "rootfs" in a cached root tree of
	// the target distribution (systemd-nspawn, needs root); "container" in
	// a podman or docker container; "remote" on a build host over SSH.
	Builder string `yaml:"builder"`
	// Distro is the distribution the rootfs builder builds in, as
	// NAME/RELEASE: debian/bookworm, debian/trixie, ubuntu/noble... Pick
	// the hosts' own, so that the release links against their libraries.
	Distro string `yaml:"distro"`
	// Packages are installed in the rootfs builder's tree (for example
	// elixir, erlang-dev, build-essential). The tree is cached per list.
	Packages []string `yaml:"packages"`
	// Image is the container builder's image (for example
	// docker.io/library/elixir:1.17); Dockerfile, if set instead, is built
	// into the image first.
	Image string `yaml:"image"`
	// Dockerfile for the container builder, relative to the repository.
	Dockerfile string `yaml:"dockerfile"`
	// Host is the remote builder's build host ([user@]host[:port]).
	Host string `yaml:"host"`
	// Caches are directories that persist from one build to the next:
	// relative ones inside the checkout (deps, _build, target), absolute
	// ones inside the build environment (/root/.cache/go-build). They are
	// keyed by the lockfiles (mix.lock, go.sum, Cargo.lock,
	// package-lock.json...), so that a dependency change starts afresh.
	Caches []string `yaml:"caches"`
	// Command is run with sh -c in the app's directory (where hoist.yml
	// is) of the clean checkout. It must leave a self-contained release
	// in Output.
	Command string `yaml:"command"`
	// Output is the directory, relative to the app's directory, that
	// becomes the release. It must exist and be non-empty after Command.
	Output string `yaml:"output"`
	// Include are more directories of the repository that the build
	// needs, relative to the app's directory (for example ../shared or
	// ../../assets). When hoist.yml is in a subdirectory of a larger
	// repository, the clean checkout holds only the app's directory,
	// these, and the files directly inside each directory above them
	// (a top-level go.mod or package.json); a release is reused for a
	// commit that changed none of that.
	Include []string `yaml:"include"`
	// Env adds variables to the build command's environment.
	Env map[string]string `yaml:"env"`
	// Target is the OS/architecture the release is built for, as GOOS/GOARCH
	// ("linux/amd64"); recorded in the manifest. Default: this machine's
	// architecture on linux.
	Target string `yaml:"target"`
}

// Run describes how the release is started on a host.
type Run struct {
	// Command starts the app, relative to the release directory (for
	// example "./hello" or "bin/myapp start"). It must stay in the
	// foreground and serve HTTP on $PORT.
	Command string `yaml:"command"`
	// Port the app listens on, passed to it as $PORT. Default 3000.
	Port int `yaml:"port"`
	// Env adds plain, non-secret variables to the app's environment.
	Env map[string]string `yaml:"env"`
	// Erlang says where an OTP release's node can be reached; it is
	// ignored for other releases.
	Erlang Erlang `yaml:"erlang"`
}

// Erlang is how the Erlang node of an OTP release (mix release, relx)
// is reached: its epmd and its distribution port.
type Erlang struct {
	// Listen is where each release's epmd and distribution port listen:
	// "loopback" (default), so that only commands on the host (hoist
	// exec -- bin/APP rpc) reach the node; or a private network in CIDR
	// notation (10.0.0.0/16) in which each host has an address, for
	// nodes that connect to each other across hosts.
	Listen string `yaml:"listen"`
}

// ListenLoopback is the default of Erlang.Listen and Accessory.Listen:
// loopback only.
const ListenLoopback = "loopback"

// Health is the HTTP check that a started release must pass before it
// becomes current.
type Health struct {
	// Path requested with GET on 127.0.0.1:$PORT; any 2xx answer is healthy.
	// Default "/up".
	Path string `yaml:"path"`
	// Timeout is how long a new release has to turn healthy. Default 30s.
	Timeout Duration `yaml:"timeout"`
	// Interval between two checks. Default 1s.
	Interval Duration `yaml:"interval"`
}

// Hooks run in the new release directory, as the app's user, with the
// app's environment (secrets included), through sh -c.
type Hooks struct {
	// BeforeSwitch runs once the release is on the host and before it
	// starts, while the previous release still serves: database
	// migrations go here. If it fails, the deploy stops and nothing changes.
	BeforeSwitch string `yaml:"before_switch"`
	// AfterSwitch runs once the release is current. If it fails, the
	// deploy reports it; the release stays current.
	AfterSwitch string `yaml:"after_switch"`
	// Timeout bounds each hook. Default 5m.
	Timeout Duration `yaml:"timeout"`
}

// Proxy routes requests to the app through hoist's edge proxy on each
// host. With it, a new release starts beside the old one, and requests
// move to it only once it is healthy; without it (no hosts), the app
// serves run.port itself and a deploy restarts it.
type Proxy struct {
	// Hosts are the names the app answers to (exact, or *.example.com).
	Hosts []string `yaml:"hosts"`
	// PathPrefix routes only paths under it to the app. Default: all.
	PathPrefix string `yaml:"path_prefix"`
	// DrainTimeout is how long requests in flight on the old release may
	// take to finish after a switch; WebSockets still open then are closed
	// with 1001 Going Away. Default 30s.
	DrainTimeout Duration `yaml:"drain_timeout"`
	// TLS serves the app over HTTPS and redirects plain HTTP to it. The
	// certificates come from an ACME CA with "acme" (or true): Let's
	// Encrypt unless ACMECA says otherwise, by HTTP-01 or TLS-ALPN-01; or
	// from a local CA of each host's proxy with "internal", for labs and
	// private networks (clients trust the roots `hoist proxy ca` prints).
	// Default false: plain HTTP only.
	TLS TLS `yaml:"tls"`
	// HSTS adds Strict-Transport-Security to HTTPS answers.
	HSTS bool `yaml:"hsts"`
	// MaxBodyBytes bounds a request's body: bigger requests are answered
	// 413 by the proxy and never reach the app. Write it as bytes, or
	// with a unit (512KiB, 64MiB, 1GiB, or 1MB for 10^6). Default 64MiB.
	MaxBodyBytes Size `yaml:"max_body_bytes"`
	// ErrorPages is a directory of the repository, relative to hoist.yml,
	// with the app's own pages for what the proxy answers for it:
	// 502.html, 503.html, 504.html, any of them. In 503.html, which is
	// also the maintenance page, {{message}} is the maintenance message.
	ErrorPages string `yaml:"error_pages"`
	// Pages are the pages read from ErrorPages, by status, once the
	// config is loaded with its repository.
	Pages map[int]string `yaml:"-"`
	// ACMEEmail is the contact for the ACME account.
	ACMEEmail string `yaml:"acme_email"`
	// ACMECA is the ACME directory URL, for a staging or private CA.
	ACMECA string `yaml:"acme_ca"`
	// ACMERoot is a PEM file, relative to hoist.yml, of root
	// certificates to trust the ACME CA's API with: a private CA's.
	ACMERoot string `yaml:"acme_root"`
	// Challenge is how the ACME CA checks that the app's hosts serve its
	// names: "http-01" (HTTP-01 or TLS-ALPN-01, answered by the proxies),
	// "dns-01" (a TXT record set through the dns section's provider), or
	// "auto" (the default): DNS-01 for wildcards and for names whose
	// records hoist does not point at the hosts (dns.records: false, a
	// CDN or NAT in front), HTTP-01 otherwise.
	Challenge string `yaml:"challenge"`
	// Challenges choose the challenge of single names, overriding
	// Challenge: {"cdn.example.com": "dns-01"}.
	Challenges map[string]string `yaml:"challenges"`
	// TrustedProxies are the networks (CIDR) of the proxies in front of
	// the hosts (a CDN's): only from them does the proxy keep the
	// headers about the client (X-Forwarded-*, X-Real-IP...), so that
	// the app sees the real client and https. The balancer hoist
	// provisioned (the VPC behind infra.balancer: alb, the lab's
	// balancer twin) is trusted apart, with X-Forwarded-For, -Proto and
	// -Port alone. The proxy is shared by a host's apps and trusts what
	// any of them lists.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// DNS is the app's DNS provider and zone. Credentials never go here:
// hoist reads them from the environment or from hoist secrets.
type DNS struct {
	// Provider is the DNS provider's name: cloudflare, dnsimple, rfc2136
	// (any DNS server that takes RFC 2136 updates signed with TSIG) or
	// route53.
	Provider string `yaml:"provider"`
	// Zone is the DNS zone that holds the names of proxy.hosts, like
	// example.com.
	Zone string `yaml:"zone"`
	// Records keeps the A and AAAA records of every name of proxy.hosts
	// pointing at the app's hosts: set by hoist setup and hoist dns
	// apply, removed by hoist dns destroy. Default true; false leaves
	// the records to the user (a CDN in front) and uses the provider only
	// for DNS-01.
	Records *bool `yaml:"records"`
	// TTL of the records hoist writes. Default 5m.
	TTL Duration `yaml:"ttl"`
	// Owner is written in the ownership record beside each name hoist
	// sets, and hoist changes only names marked with it. Default: the
	// app's name.
	Owner string `yaml:"owner"`
	// Addresses are the addresses a host's names point at, by the host
	// as hosts lists it, when they are not the address hoist reaches it
	// by (a private address, an SSH alias).
	Addresses map[string][]string `yaml:"addresses"`
	// Settings are the provider's settings that are not credentials, by
	// the provider's own field names: rfc2136's server, key_name and
	// key_alg; route53's region or hosted_zone_id; dnsimple's account_id.
	Settings map[string]string `yaml:"settings"`
	// Resolvers are the DNS servers (host or host:port) the proxies ask
	// to see that a DNS-01 record is visible before the CA looks.
	// Default: the hosts' own resolvers.
	Resolvers []string `yaml:"resolvers"`
}

// On reports whether hoist.yml names a DNS provider.
func (d DNS) On() bool { return d.Provider != "" }

// KeepsRecords reports whether hoist keeps the address records.
func (d DNS) KeepsRecords() bool { return d.On() && (d.Records == nil || *d.Records) }

// OwnerOr is the ownership mark: Owner, or the app's name.
func (d DNS) OwnerOr(app string) string {
	if d.Owner != "" {
		return d.Owner
	}
	return app
}

// Challenge names.
const (
	ChallengeAuto = "auto"
	ChallengeHTTP = "http-01"
	ChallengeDNS  = "dns-01"
)

// ChallengeFor is the challenge the ACME CA uses for one of the proxy's
// names: "dns-01" or "http-01".
func (c *Config) ChallengeFor(name string) string {
	if ch := c.Proxy.Challenges[name]; ch != "" {
		return ch
	}
	switch c.Proxy.Challenge {
	case ChallengeHTTP, ChallengeDNS:
		return c.Proxy.Challenge
	}
	if strings.HasPrefix(name, "*.") || (c.DNS.On() && !c.DNS.KeepsRecords()) {
		return ChallengeDNS
	}
	return ChallengeHTTP
}

// Defaults fills in unset fields. Load calls it; it is exported for tests
// and for configs built in code.
func (c *Config) Defaults() {
	if c.SSH.Parallel == 0 {
		c.SSH.Parallel = 8
	}
	if c.Build.Builder == "" {
		c.Build.Builder = "local"
	}
	if c.Run.Port == 0 {
		c.Run.Port = 3000
	}
	if c.Run.Erlang.Listen == "" {
		c.Run.Erlang.Listen = ListenLoopback
	}
	if c.Health.Path == "" {
		c.Health.Path = "/up"
	}
	if c.Health.Timeout.raw == "" && c.Health.Timeout.Duration == 0 {
		c.Health.Timeout.Duration = 30 * time.Second
	}
	if c.Health.Interval.raw == "" && c.Health.Interval.Duration == 0 {
		c.Health.Interval.Duration = time.Second
	}
	if c.Hooks.Timeout.raw == "" && c.Hooks.Timeout.Duration == 0 {
		c.Hooks.Timeout.Duration = 5 * time.Minute
	}
	if c.DNS.TTL.raw == "" && c.DNS.TTL.Duration == 0 {
		c.DNS.TTL.Duration = 5 * time.Minute
	}
	if c.Proxy.DrainTimeout.raw == "" && c.Proxy.DrainTimeout.Duration == 0 {
		c.Proxy.DrainTimeout.Duration = 30 * time.Second
	}
	if c.KeepReleases == 0 {
		c.KeepReleases = 5
	}
	if c.Deploy.Canary.Watch.raw == "" && c.Deploy.Canary.Watch.Duration == 0 {
		c.Deploy.Canary.Watch.Duration = time.Minute
	}
	c.Infra.defaults()
	if c.Store.On() {
		if c.Store.Prefix == "" {
			c.Store.Prefix = c.App + "/"
			if c.Destination != "" {
				c.Store.Prefix += c.Destination + "/"
			}
			c.Store.Prefix += "store/"
		}
		if c.Store.Region == "" {
			c.Store.Region = "us-east-1"
		}
		if c.Deploy.Ship == "" {
			c.Deploy.Ship = ShipStore
		}
	}
	if c.Deploy.Ship == "" {
		c.Deploy.Ship = ShipPush
	}
	for name, a := range c.Accessories {
		a.defaults(c.App)
		c.Accessories[name] = a
	}
	for name, t := range c.Schedule {
		t.defaults()
		c.Schedule[name] = t
	}
	if c.SSH.User == "" && c.Infra.Provider != "" {
		c.SSH.User = c.Infra.User // the user cloud-init made on the hosts
	}
}

func (in *Infra) defaults() {
	if in.Provider == "" {
		return
	}
	if in.Env == "" {
		in.Env = "production"
	}
	if in.InstanceType == "" {
		in.InstanceType = "t3.micro"
	}
	if in.Count == 0 {
		in.Count = 1
	}
	if in.DiskGB == 0 {
		in.DiskGB = 8
	}
	if in.Image == "" {
		in.Image = "debian-12"
	}
	if in.Balancer == "" {
		in.Balancer = BalancerNone
	}
	if in.User == "" {
		in.User = "admin"
	}
	if len(in.Zones) == 0 && in.Region != "" {
		in.Zones = []string{in.Region + "a"}
		if in.Balancer == BalancerALB {
			in.Zones = append(in.Zones, in.Region+"b")
		}
	}
}

// TLS is where the proxy gets the app's certificates: "" (none), "acme"
// or "internal". It is parsed during validation, like Duration.
type TLS struct {
	Mode string
	raw  string
}

// TLS modes.
const (
	TLSACME     = "acme"
	TLSInternal = "internal"
)

// On reports whether the app is served over HTTPS.
func (t TLS) On() bool { return t.Mode != "" }

// UnmarshalYAML keeps the raw text for validate.
func (t *TLS) UnmarshalYAML(b []byte) error {
	t.raw = strings.Trim(strings.TrimSpace(string(b)), `"'`)
	return nil
}

// MarshalYAML writes the mode, or false.
func (t TLS) MarshalYAML() (any, error) {
	if t.Mode == "" {
		return false, nil
	}
	return t.Mode, nil
}

func (t *TLS) parse() error {
	switch strings.ToLower(t.raw) {
	case "", "false", "off", "no":
		t.Mode = ""
	case "true", "on", "yes", TLSACME:
		t.Mode = TLSACME
	case TLSInternal:
		t.Mode = TLSInternal
	default:
		return fmt.Errorf("%q is not a TLS mode: write acme (or true) for certificates from an ACME CA, internal for the proxy's own CA, or false", t.raw)
	}
	return nil
}

// Duration is a length of time written like "30s" or "1m30s". It is parsed
// during validation so that a bad value is reported with its position.
type Duration struct {
	time.Duration
	raw string
}

// UnmarshalYAML keeps the raw text for validate.
func (d *Duration) UnmarshalYAML(b []byte) error {
	d.raw = strings.Trim(strings.TrimSpace(string(b)), `"'`)
	return nil
}

// MarshalYAML writes the duration as Go's time.Duration text.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Size is a number of bytes written like 1048576, 512KiB or 64MiB. It
// is parsed during validation so that a bad value is reported with its
// position.
type Size struct {
	Bytes int64
	raw   string
}

// UnmarshalYAML keeps the raw text for validate.
func (s *Size) UnmarshalYAML(b []byte) error {
	s.raw = strings.Trim(strings.TrimSpace(string(b)), `"'`)
	return nil
}

// MarshalYAML writes the number of bytes.
func (s Size) MarshalYAML() (any, error) { return s.Bytes, nil }

var sizeUnits = map[string]int64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}

func (s *Size) parse() error {
	if s.raw == "" {
		return nil
	}
	num := strings.TrimRight(s.raw, "BKMGi ")
	unit := strings.TrimSpace(s.raw[len(num):])
	n, err := strconv.ParseInt(num, 10, 64)
	mult, ok := sizeUnits[unit]
	if err != nil || !ok || n <= 0 || n > (1<<62)/mult {
		return fmt.Errorf("%q is not a size; write it like 1048576, 512KiB or 64MiB", s.raw)
	}
	s.Bytes = n * mult
	return nil
}

func (d *Duration) parse() error {
	if d.raw == "" {
		return nil
	}
	v, err := time.ParseDuration(d.raw)
	if err != nil {
		return fmt.Errorf("%q is not a duration; write it like 30s, 500ms or 2m", d.raw)
	}
	d.Duration = v
	return nil
}
