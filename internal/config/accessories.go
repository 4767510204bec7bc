package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strings"

	"filippo.io/age"

	"github.com/hoistdev/hoist/internal/services"
)

var (
	accessoryName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	debPackage    = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	// Database names leave room for the suffix of a restore's scratch
	// database within PostgreSQL's 63 bytes.
	databaseName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,47}$`)
)

func (c *Config) validateAccessories() error {
	envs := map[string]string{}
	for _, name := range c.AccessoryNames() {
		a := c.Accessories[name]
		at := func(key string) string { return "$.accessories." + name + key }
		if !accessoryName.MatchString(name) || strings.HasSuffix(name, "-") {
			return errAt(at(""), "%q is not an accessory name: lowercase letters, digits and dashes, starting with a letter, at most 32", name)
		}
		if _, ok := services.Lookup(a.Service); !ok {
			if a.Service == "" {
				return errAt(at(".service"), "missing; write %s", orList(services.Names()))
			}
			return errAt(at(".service"), "unknown service %q: hoist runs %s", a.Service, andList(services.Names()))
		}
		if a.Host != "" && (strings.ContainsAny(a.Host, " \t/")) {
			return errAt(at(".host"), "%q is not a host: expected an address, a name or user@host:port", a.Host)
		}
		if !debPackage.MatchString(a.Package) {
			return errAt(at(".package"), "%q is not a Debian package name", a.Package)
		}
		if a.Port < 1024 || a.Port > 65535 {
			return errAt(at(".port"), "%d is not a port an accessory can have: from 1024 to 65535 (lower ones are for root)", a.Port)
		}
		if err := a.validateNetwork(at); err != nil {
			return err
		}
		if !envName.MatchString(a.Env) {
			return errAt(at(".env"), "%q is not a valid environment variable name", a.Env)
		}
		if other, dup := envs[a.Env]; dup {
			return errAt(at(".env"), "%s already carries accessory %s's URL: give this one another variable", a.Env, other)
		}
		if _, set := c.Run.Env[a.Env]; set {
			return errAt(at(".env"), "%s is also set in run.env, which would hide the accessory's URL", a.Env)
		}
		envs[a.Env] = name
		// A service that holds no database is not backed up either:
		// it keeps its data in its own files.
		if !services.HasDatabase(a.Service) {
			if a.Database != "" || a.Backup != (AccessoryBackup{}) {
				return errAt(at(""), "database and backup are for %s; %s keeps its data in its own files", orList(services.BackedUp()), a.Service)
			}
			continue
		}
		if !databaseName.MatchString(a.Database) {
			return errAt(at(".database"), "%q is not a database name: lowercase letters, digits and underscores, starting with a letter or underscore, at most 48", a.Database)
		}
		if !services.BacksUp(a.Service) {
			if a.Backup != (AccessoryBackup{}) {
				return errAt(at(".backup"), "backup is for %s; hoist does not back %s up", orList(services.BackedUp()), a.Service)
			}
			continue
		}
		if s := a.Backup.Schedule; strings.ContainsAny(s, "\n\r\"'\\;%$`") || strings.TrimSpace(s) == "" {
			return errAt(at(".backup.schedule"), "%q is not a schedule: write daily, hourly or a systemd calendar like *-*-* 03:00:00, or off", s)
		}
		if a.Backup.Keep < 1 || a.Backup.Keep > 1000 {
			return errAt(at(".backup.keep"), "%d backups: keep from 1 to 1000", a.Backup.Keep)
		}
		if o := a.Backup.Offsite; o != nil {
			if err := o.validate(func(key string) string { return at(".backup.offsite" + key) }); err != nil {
				return err
			}
		}
	}
	return nil
}

var (
	s3Bucket = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	s3Prefix = regexp.MustCompile(`^[A-Za-z0-9._/-]{0,200}$`)
	s3Region = regexp.MustCompile(`^[a-z0-9-]{1,40}$`)
)

func (o *AccessoryOffsite) validate(at func(string) string) error {
	if err := validateBucket(at, o.Bucket, o.Prefix, o.Region, o.Endpoint, o.AccessKeySecret, o.SecretKeySecret); err != nil {
		return err
	}
	if _, err := age.ParseX25519Recipient(o.Recipient); err != nil {
		return errAt(at(".recipient"), "%q is not an age public key (age1...): make a key pair with age-keygen, keep the identity, give the public key here", o.Recipient)
	}
	if o.Keep < 1 || o.Keep > 10000 {
		return errAt(at(".keep"), "%d backups: keep from 1 to 10000", o.Keep)
	}
	return nil
}

// validateBucket checks a bucket, its key prefix, region and endpoint,
// and the names of the secrets of its credentials: an accessory's
// off-host target's, the release store's.
func validateBucket(at func(string) string, bucket, prefix, region, endpoint, accessKeySecret, secretKeySecret string) error {
	if !s3Bucket.MatchString(bucket) {
		return errAt(at(".bucket"), "%q is not a bucket name: 3 to 63 lowercase letters, digits, dots and dashes", bucket)
	}
	if !s3Prefix.MatchString(prefix) || strings.Contains(prefix, "..") {
		return errAt(at(".prefix"), "%q is not a key prefix: letters, digits, . _ - and /", prefix)
	}
	if !s3Region.MatchString(region) {
		return errAt(at(".region"), "%q is not a region", region)
	}
	if endpoint != "" {
		if u, err := url.Parse(endpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			return errAt(at(".endpoint"), "%q is not an endpoint: write its URL, like https://s3.example.com (never with credentials in it)", endpoint)
		}
	}
	if (accessKeySecret == "") != (secretKeySecret == "") {
		return errAt(at(""), "access_key_secret and secret_key_secret go together (or neither: the standard AWS chain)")
	}
	for key, name := range map[string]string{".access_key_secret": accessKeySecret, ".secret_key_secret": secretKeySecret} {
		if name != "" && !envName.MatchString(name) {
			return errAt(at(key), "%q is not a secret's name", name)
		}
	}
	return nil
}

// validateNetwork checks listen and allow: loopback or private only.
func (a *Accessory) validateNetwork(at func(string) string) error {
	if a.Listen == ListenLoopback {
		if len(a.Allow) > 0 {
			return errAt(at(".allow"), "an accessory listening on loopback is reached from its own host only; allow needs listen: a private address")
		}
		return nil
	}
	addr, err := netip.ParseAddr(a.Listen)
	if err != nil || addr.Zone() != "" {
		return errAt(at(".listen"), "%q is not loopback or an address", a.Listen)
	}
	if !services.IsPrivate(addr) {
		return errAt(at(".listen"), "%s is not a private address: an accessory listens on loopback or a private network only, never a public one", addr)
	}
	for i, n := range a.Allow {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			return errAt(fmt.Sprintf("%s[%d]", at(".allow"), i), "%q is not a network: write it as CIDR, like 10.0.1.0/24", n)
		}
		if !services.IsPrivate(p.Addr()) || (p.Addr().Is4() && p.Bits() < 8) || (p.Addr().Is6() && p.Bits() < 7) {
			return errAt(fmt.Sprintf("%s[%d]", at(".allow"), i), "%s is not a private network", n)
		}
	}
	return nil
}
