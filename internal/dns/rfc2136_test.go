//go:build integration

package dns

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	mdns "github.com/miekg/dns"

	"github.com/hoistdev/hoist/internal/bindtest"
	"github.com/hoistdev/hoist/internal/usererr"
)

// bindZone is a Zone on s through the rfc2136 provider, with s's key
// unless creds says otherwise.
func bindZone(t *testing.T, s *bindtest.Server, owner string, creds Credentials) *Zone {
	t.Helper()
	if creds == nil {
		creds = Credentials{"server": s.Addr, "key_name": s.KeyName, "key_alg": s.KeyAlg, "key": s.Key}
	}
	p, err := New("rfc2136", creds)
	if err != nil {
		t.Fatal(err)
	}
	return &Zone{Provider: "rfc2136", Name: s.Zone, Owner: owner, API: p}
}

func sync2(t *testing.T, z *Zone, names []string, tg Targets, takeOver ...string) (*Plan, error) {
	t.Helper()
	want, err := Desired(names, tg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := z.Plan(context.Background(), want, takeOver)
	if err != nil {
		return nil, err
	}
	return p, z.Apply(context.Background(), p, nil)
}

// TestRFC2136FollowsHosts keeps records in bind9 in step through
// RFC 2136 updates signed with TSIG: they appear, follow an address
// change, and vanish when no longer wanted, while a record hoist did not
// make is left alone. Every check queries bind9.
func TestRFC2136FollowsHosts(t *testing.T) {
	s := bindtest.Start(t, bindtest.Options{Zone: "hoist.test", Records: []string{"legacy IN A 192.0.2.9"}})
	z := bindZone(t, s, "shop", nil)
	names := []string{"www.hoist.test", "*.apps.hoist.test", "hoist.test"}

	if _, err := sync2(t, z, names, addrs("10.0.0.1", "10.0.0.2", "2001:db8::1")); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"www", "anything.apps", "@"} {
		if got := s.Query(t, n, mdns.TypeA); !cmp.Equal(got, []string{"10.0.0.1", "10.0.0.2"}) {
			t.Errorf("%s A = %v", n, got)
		}
		if got := s.Query(t, n, mdns.TypeAAAA); !cmp.Equal(got, []string{"2001:db8::1"}) {
			t.Errorf("%s AAAA = %v", n, got)
		}
	}
	if got := s.Query(t, "_hoist.www", mdns.TypeTXT); !cmp.Equal(got, []string{"heritage=hoist,hoist/owner=shop"}) {
		t.Errorf("ownership record = %v", got)
	}

	// A host's address changes: the records follow; a second run has
	// nothing to do.
	if _, err := sync2(t, z, names, addrs("10.0.0.1", "10.0.0.3")); err != nil {
		t.Fatal(err)
	}
	if got := s.Query(t, "www", mdns.TypeA); !cmp.Equal(got, []string{"10.0.0.1", "10.0.0.3"}) {
		t.Errorf("after the change, www A = %v", got)
	}
	if got := s.Query(t, "www", mdns.TypeAAAA); len(got) != 0 {
		t.Errorf("after the change, www AAAA = %v", got)
	}
	p, err := sync2(t, z, names, addrs("10.0.0.1", "10.0.0.3"))
	if err != nil || len(p.Changes()) != 0 {
		t.Errorf("second run: %v, changes %+v", err, p.Changes())
	}

	// A record hoist does not own is refused by name, and left alone.
	_, err = sync2(t, z, append(names, "legacy.hoist.test"), addrs("10.0.0.1"))
	if err == nil || !strings.Contains(err.Error(), "legacy.hoist.test: A 192.0.2.9, not made by hoist") {
		t.Errorf("apply over a stranger's record: %v", err)
	}
	if got := s.Query(t, "legacy", mdns.TypeA); !cmp.Equal(got, []string{"192.0.2.9"}) {
		t.Errorf("legacy A = %v, want it untouched", got)
	}

	// Destroy: nothing wanted, every record hoist made goes; the
	// stranger's stays.
	if _, err := sync2(t, z, nil, Targets{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"www", "anything.apps", "@", "_hoist.www", "_hoist-wildcard.apps", "_hoist"} {
		for _, typ := range []uint16{mdns.TypeA, mdns.TypeTXT} {
			if got := s.Query(t, n, typ); len(got) != 0 {
				t.Errorf("after destroy, %s %s = %v", n, mdns.TypeToString[typ], got)
			}
		}
	}
	if got := s.Query(t, "legacy", mdns.TypeA); !cmp.Equal(got, []string{"192.0.2.9"}) {
		t.Errorf("after destroy, legacy A = %v", got)
	}
}

// TestRFC2136BadInput: a wrong TSIG key and a zone the server does not
// serve are clear errors naming the provider and what was asked, with a
// hint, and change nothing.
func TestRFC2136BadInput(t *testing.T) {
	s := bindtest.Start(t, bindtest.Options{Zone: "hoist.test"})
	tests := map[string]struct {
		creds    Credentials
		zone     string
		wantErr  string
		wantHint string
	}{
		"wrong key": {creds: Credentials{"server": s.Addr, "key_name": s.KeyName, "key_alg": s.KeyAlg, "key": "d3Jvbmcta2V5LXdyb25nLWtleQ=="},
			wantErr: `rfc2136 (zone hoist.test): read zone: ` + s.Addr + ` refused the TSIG key "hoist-test-key"`, wantHint: "refused the credentials"},
		"unknown key name": {creds: Credentials{"server": s.Addr, "key_name": "nobody", "key_alg": s.KeyAlg, "key": s.Key},
			wantErr: "rfc2136 (zone hoist.test): read zone", wantHint: "refused the credentials"},
		"no such zone": {zone: "elsewhere.test", wantErr: "rfc2136 (zone elsewhere.test): read zone: " + s.Addr + " does not serve zone elsewhere.test.", wantHint: "check dns.zone"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			z := bindZone(t, s, "shop", tt.creds)
			if tt.zone != "" {
				z.Name = tt.zone
			}
			_, err := sync2(t, z, []string{"www." + strings.TrimPrefix(z.Name, ".")}, addrs("10.0.0.1"))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want %q", err, tt.wantErr)
			}
			if h := usererr.HintOf(err); !strings.Contains(h, tt.wantHint) {
				t.Errorf("error %v: hint = %q, want %q", err, h, tt.wantHint)
			}
			if got := s.Query(t, "www", mdns.TypeA); len(got) != 0 {
				t.Errorf("www A = %v after a failed run", got)
			}
		})
	}
}

// TestRFC2136ServerGoneMidChange cuts the way to bind9 after the first
// update of a run: the error names the update that failed and the
// provider, the updates made are reported, bind9 holds exactly those,
// and a second run, the server back, converges.
func TestRFC2136ServerGoneMidChange(t *testing.T) {
	s := bindtest.Start(t, bindtest.Options{Zone: "hoist.test"})
	relay := newRelay(t, s.Addr)
	z := bindZone(t, s, "shop", Credentials{"server": relay.addr, "key_name": s.KeyName, "key_alg": s.KeyAlg, "key": s.Key})
	want, _ := Desired([]string{"www.hoist.test", "api.hoist.test"}, addrs("10.0.0.1"))
	p, err := z.Plan(context.Background(), want, nil)
	if err != nil {
		t.Fatal(err)
	}
	var done []Step
	err = z.Apply(context.Background(), p, func(st Step) {
		done = append(done, st)
		relay.cut.Store(true)
	})
	var ae *ApplyError
	if !errors.As(err, &ae) {
		t.Fatalf("apply with the server gone: %v, want an *ApplyError", err)
	}
	if len(done) != 1 || len(ae.Done) != 1 || !strings.Contains(err.Error(), "rfc2136 (zone hoist.test): "+ae.Failed.String()) {
		t.Errorf("error %q after steps %v", err, done)
	}
	if !strings.Contains(usererr.HintOf(err), "did not answer") {
		t.Errorf("hint = %q", usererr.HintOf(err))
	}
	// bind9 holds exactly the one update reported: the ownership record
	// of the first name.
	if got := s.Query(t, "_hoist.api", mdns.TypeTXT); !cmp.Equal(got, []string{"heritage=hoist,hoist/owner=shop"}) || done[0].Name != "_hoist.api.hoist.test" {
		t.Errorf("after %v: _hoist.api TXT = %v", done, got)
	}
	relay.cut.Store(false)
	if _, err := sync2(t, z, []string{"www.hoist.test", "api.hoist.test"}, addrs("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"www", "api"} {
		if got := s.Query(t, n, mdns.TypeA); !cmp.Equal(got, []string{"10.0.0.1"}) {
			t.Errorf("after the second run, %s A = %v", n, got)
		}
	}
}

// relay forwards TCP connections to a server until cut, then closes
// every new one at once: a server that became unreachable.
type relay struct {
	addr string
	cut  atomic.Bool
}

func newRelay(t *testing.T, to string) *relay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if r.cut.Load() {
				c.Close()
				continue
			}
			wg.Go(func() {
				defer c.Close()
				up, err := net.Dial("tcp", to)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { io.Copy(up, c); up.Close() }()
				io.Copy(c, up)
			})
		}
	})
	return r
}
