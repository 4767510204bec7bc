package services

import (
	"net/netip"
	"slices"
	"testing"
)

func TestIsPrivate(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1": true, "10.1.2.3": true, "172.16.0.1": true, "192.168.1.1": true, "100.64.0.1": true,
		"fd00::1": true, "::1": true, "::ffff:10.0.0.1": true,
		"8.8.8.8": false, "100.128.0.1": false, "2001:db8::1": false,
	} {
		if got := IsPrivate(netip.MustParseAddr(addr)); got != want {
			t.Errorf("IsPrivate(%s) = %v, want %v", addr, got, want)
		}
	}
}

// TestCapabilities: backups and databases are what a service says it
// can do, not a comparison with one name.
func TestCapabilities(t *testing.T) {
	if got := Names(); !slices.Equal(got, []string{PostgreSQL, Redis, Valkey}) {
		t.Errorf("Names() = %v", got)
	}
	if got := BackedUp(); !slices.Equal(got, []string{PostgreSQL}) {
		t.Errorf("BackedUp() = %v", got)
	}
	if !BacksUp(PostgreSQL) || BacksUp(Redis) || BacksUp("mysql") || !HasDatabase(PostgreSQL) || HasDatabase(Valkey) {
		t.Error("capabilities of postgresql, redis, valkey, mysql wrong")
	}
	if s, ok := Lookup(Redis); !ok || s.Package != "redis-server" || s.Port != 6379 || s.Env != "REDIS_URL" {
		t.Errorf("Lookup(redis) = %+v, %v", s, ok)
	}
}
