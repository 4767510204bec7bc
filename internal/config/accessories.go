package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

var (
	accessoryName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	debPackage    = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	// Database names leave room for the suffix of a restore's scratch
	// database within PostgreSQL's 63 bytes.
	databaseName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,47}$`)
	// Private networks: RFC 1918 and ULA (netip's IsPrivate), and the
	// shared address space of RFC 6598 that private clouds use.
	sharedSpace = netip.MustParsePrefix("100.64.0.0/10")
)

func (c *Config) validateAccessories() error {
	envs := map[string]string{}
	for _, name := range c.AccessoryNames() {
		a := c.Accessories[name]
		at := func(key string) string { return "$.accessories." + name + key }
		if !accessoryName.MatchString(name) || strings.HasSuffix(name, "-") {
			return errAt(at(""), "%q is not an accessory name: lowercase letters, digits and dashes, starting with a letter, at most 32", name)
		}
		if _, ok := accessoryDefaults[a.Service]; !ok {
			if a.Service == "" {
				return errAt(at(".service"), "missing; write postgresql, redis or valkey")
			}
			return errAt(at(".service"), "unknown service %q: hoist runs postgresql, redis and valkey", a.Service)
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
		if a.Service != ServicePostgreSQL {
			if a.Database != "" || a.Backup != (AccessoryBackup{}) {
				return errAt(at(""), "database and backup are for postgresql; %s keeps its data in its own files", a.Service)
			}
			continue
		}
		if !databaseName.MatchString(a.Database) {
			return errAt(at(".database"), "%q is not a database name: lowercase letters, digits and underscores, starting with a letter or underscore, at most 48", a.Database)
		}
		if s := a.Backup.Schedule; strings.ContainsAny(s, "\n\r\"'\\;%$`") || strings.TrimSpace(s) == "" {
			return errAt(at(".backup.schedule"), "%q is not a schedule: write daily, hourly or a systemd calendar like *-*-* 03:00:00, or off", s)
		}
		if a.Backup.Keep < 1 || a.Backup.Keep > 1000 {
			return errAt(at(".backup.keep"), "%d backups: keep from 1 to 1000", a.Backup.Keep)
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
	if !IsPrivate(addr) {
		return errAt(at(".listen"), "%s is not a private address: an accessory listens on loopback or a private network only, never a public one", addr)
	}
	for i, n := range a.Allow {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			return errAt(fmt.Sprintf("%s[%d]", at(".allow"), i), "%q is not a network: write it as CIDR, like 10.0.1.0/24", n)
		}
		if !IsPrivate(p.Addr()) || (p.Addr().Is4() && p.Bits() < 8) || (p.Addr().Is6() && p.Bits() < 7) {
			return errAt(fmt.Sprintf("%s[%d]", at(".allow"), i), "%s is not a private network", n)
		}
	}
	return nil
}

// IsPrivate reports whether addr is in a private network: loopback,
// RFC 1918, RFC 6598 shared space or IPv6 ULA.
func IsPrivate(addr netip.Addr) bool {
	addr = addr.Unmap()
	return addr.IsLoopback() || addr.IsPrivate() || sharedSpace.Contains(addr)
}
