// Package services names the accessory services hoist runs beside an
// app and says what each one is: its Debian package, port and variable
// by default, and what it can do (hold the app's database, be backed
// up). It also says which addresses are private, where an accessory may
// listen. config checks hoist.yml with it on the laptop, and accessory
// runs the services on the host, so both import this package; it
// imports nothing of hoist's.
package services

import (
	"net/netip"
	"sort"
)

// The services hoist runs.
const (
	PostgreSQL = "postgresql"
	Redis      = "redis"
	Valkey     = "valkey"
)

// Service is what hoist knows of one service before it runs it.
type Service struct {
	// Package, Port and Env are the defaults of accessory.package,
	// .port and .env.
	Package string
	Port    int
	Env     string
	// Database says the service holds the app's database, named by
	// accessory.database, which hoist makes with its owner role.
	Database bool
	// Backup says hoist backs the service's data up (on a schedule,
	// off site, and on demand) and restores it.
	Backup bool
}

var known = map[string]Service{
	PostgreSQL: {Package: "postgresql", Port: 5432, Env: "DATABASE_URL", Database: true, Backup: true},
	Redis:      {Package: "redis-server", Port: 6379, Env: "REDIS_URL"},
	Valkey:     {Package: "valkey-server", Port: 6379, Env: "REDIS_URL"},
}

// Lookup returns the service named name.
func Lookup(name string) (Service, bool) {
	s, ok := known[name]
	return s, ok
}

// Names are the services hoist runs, sorted.
func Names() []string { return namesWhere(func(Service) bool { return true }) }

// BackedUp are the services hoist backs up, sorted.
func BackedUp() []string { return namesWhere(func(s Service) bool { return s.Backup }) }

// BacksUp reports whether hoist backs up service name.
func BacksUp(name string) bool { return known[name].Backup }

// HasDatabase reports whether service name holds the app's database.
func HasDatabase(name string) bool { return known[name].Database }

func namesWhere(f func(Service) bool) []string {
	var out []string
	for n, s := range known {
		if f(s) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Private networks: RFC 1918 and ULA (netip's IsPrivate), and the
// shared address space of RFC 6598 that private clouds use.
var sharedSpace = netip.MustParsePrefix("100.64.0.0/10")

// IsPrivate reports whether addr is in a private network: loopback,
// RFC 1918, RFC 6598 shared space or IPv6 ULA.
func IsPrivate(addr netip.Addr) bool {
	addr = addr.Unmap()
	return addr.IsLoopback() || addr.IsPrivate() || sharedSpace.Contains(addr)
}
