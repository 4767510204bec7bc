//go:build lab

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mdns "github.com/miekg/dns"

	"github.com/hoistdev/hoist/internal/bindtest"
	"github.com/hoistdev/hoist/internal/certs"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/pebbletest"
)

// TestDNSAndCertificatesOnTwoHosts runs the whole story on two
// lab hosts, with bind9 as the zone's server (RFC 2136 updates signed
// with TSIG) and Pebble as the ACME CA, validating against that bind9:
//
//   - hoist setup points both names at both hosts in bind9, and leaves
//     a record it does not own alone (and refuses to change it);
//   - after a deploy both hosts serve a valid certificate from Pebble for
//     shared.dnse2e.test (HTTP-01) and *.wild.dnse2e.test (DNS-01 from
//     the first host), the same on both, after one order per name;
//   - hoist proxy status tells, per host and name, the issuer, expiry,
//     how it was obtained and when renewal is due;
//   - a host's address changes and the records follow;
//   - hoist dns destroy removes every record hoist made, nothing else.
//
// Every check of the records queries bind9.
func TestDNSAndCertificatesOnTwoHosts(t *testing.T) {
	hosts := needLab(t)
	addr := netip.MustParseAddr(hosts[0]).As4()
	addr[3] = 1
	bridge := netip.AddrFrom4(addr).String()
	bind := bindtest.Start(t, bindtest.Options{Zone: "dnse2e.test", Listen: bridge, Records: []string{"legacy IN A 192.0.2.9"}})

	dir := t.TempDir()
	caPEM, certPEM, keyPEM := privateCA(t, bridge)
	for name, b := range map[string][]byte{"ca.pem": caPEM, "api.pem": certPEM, "api.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ca := pebbletest.Start(t, pebbletest.Options{Listen: bridge, HTTPPort: 80, TLSPort: 443, DNSServer: bind.Addr,
		APICert: filepath.Join(dir, "api.pem"), APIKey: filepath.Join(dir, "api.key"), APIRoots: filepath.Join(dir, "ca.pem")})

	const shared, wild = "shared.dnse2e.test", "*.wild.dnse2e.test"
	section := func() string {
		return fmt.Sprintf("proxy:\n  hosts: [%s, %q]\n  tls: acme\n  acme_ca: %s\n  acme_root: ca.pem\n"+
			"dns:\n  provider: rfc2136\n  zone: dnse2e.test\n  ttl: 60s\n  resolvers: [%s]\n", shared, wild, ca.Directory, bind.Addr)
	}
	a := newApp(t, "dnsapp", 3520, hosts, section())
	a.write(t, "ca.pem", string(caPEM))
	a.commit(t, "ca")
	env := append(slices.Clone(hoistEnv), bind.Env()...)
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		stdout, stderr, err := hoistWithEnv(ctx, a.dir, env, args...)
		if err != nil {
			t.Fatalf("hoist %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout, stderr)
		}
		return stdout
	}
	wantRecords := func(when string, addrs ...string) {
		t.Helper()
		slices.Sort(addrs)
		for _, n := range []string{"shared", "anything.wild"} {
			if got := bind.Query(t, n, mdns.TypeA); !cmp.Equal(got, addrs) {
				t.Errorf("%s: %s A = %v, want %v", when, n, got, addrs)
			}
		}
		if got := bind.Query(t, "legacy", mdns.TypeA); !cmp.Equal(got, []string{"192.0.2.9"}) {
			t.Errorf("%s: legacy A = %v, want the record hoist does not own untouched", when, got)
		}
	}

	run("setup")
	wantRecords("after setup", hosts...)
	if got := bind.Query(t, "_hoist.shared", mdns.TypeTXT); !cmp.Equal(got, []string{"heritage=hoist,hoist/owner=dnsapp"}) {
		t.Errorf("ownership record of shared = %v", got)
	}

	// A record hoist does not own: named, refused, left alone.
	a.write(t, "legacy.yml", strings.Replace(readFile(t, filepath.Join(a.dir, "hoist.yml")), "hosts: ["+shared, "hosts: [legacy.dnse2e.test, "+shared, 1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	_, stderr, err := hoistWithEnv(ctx, a.dir, env, "-c", "legacy.yml", "dns", "apply")
	cancel()
	if err == nil || !strings.Contains(stderr, "legacy.dnse2e.test: A 192.0.2.9, not made by hoist") {
		t.Errorf("apply over legacy: %v\n%s", err, stderr)
	}
	wantRecords("after a refused apply", hosts...)

	// Certificates: one order per name, the same certificate on both
	// hosts, the wildcard by DNS-01.
	id := strings.TrimSpace(run("deploy"))
	roots := ca.Roots(t)
	serials := map[string]string{}
	for _, h := range hosts {
		for _, n := range []string{shared, "a.wild.dnse2e.test"} {
			ans, leaf := getHTTPS(t, h, n, roots)
			if got := strings.TrimSpace(ans.body); got != "hello from release "+id {
				t.Errorf("%s at %s over HTTPS: %q", n, h, got)
			}
			if prev, ok := serials[n]; ok && prev != leaf.SerialNumber.String() {
				t.Errorf("%s: the hosts serve different certificates (%s, %s)", n, prev, leaf.SerialNumber)
			}
			serials[n] = leaf.SerialNumber.String()
		}
	}
	// Other tests' routes on these hosts may ask this CA too: count the
	// orders of these names.
	for _, n := range []string{shared, wild} {
		if got := ca.OrdersFor(t, n); got != 1 {
			t.Errorf("Pebble took %d orders for %s, served by two hosts; want 1", got, n)
		}
	}
	wantStatus(t, run("proxy", "status", "--json"), hosts, shared, wild)

	// A host's address changes: the records follow at the next setup.
	moved := netip.AddrFrom4([4]byte{addr[0], addr[1], addr[2], 222}).String()
	ns := labNamespace(t, hosts[1])
	ip := func(verb string) error {
		out, err := exec.Command("ip", "-n", ns, "addr", verb, moved+"/24", "dev", "eth0").CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip addr %s %s in %s: %v: %s", verb, moved, ns, err, out)
		}
		return nil
	}
	if err := ip("add"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ip("del") })
	a.writeConfig(t, []string{hosts[0], moved}, section())
	a.commit(t, "host 2 moved")
	// The operator knows the host moved: they accept its key at the new
	// address, which hoist has not seen.
	run("--accept-new-host-keys", "setup")
	wantRecords("after the move", hosts[0], moved)

	// Destroy: hoist's records go, the others stay.
	run("dns", "destroy", "--yes")
	for _, n := range []string{"shared", "anything.wild", "_hoist.shared", "_hoist-wildcard.wild"} {
		if got := append(bind.Query(t, n, mdns.TypeA), bind.Query(t, n, mdns.TypeTXT)...); len(got) != 0 {
			t.Errorf("after destroy %s = %v", n, got)
		}
	}
	if got := bind.Query(t, "legacy", mdns.TypeA); !cmp.Equal(got, []string{"192.0.2.9"}) {
		t.Errorf("after destroy legacy A = %v", got)
	}
}

// wantStatus checks proxy status --json: on each host, each name has a
// certificate from Pebble, obtained by its challenge on the first host
// and copied from it on the second, with renewal due before expiry.
// labNamespace is the network namespace of the lab host at addr: the
// guest may not change its own addresses.
func labNamespace(t *testing.T, addr string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		ns := strings.Fields(line + " ")[0]
		if !strings.HasPrefix(ns, "hoist-"+labName+"-") {
			continue
		}
		a, _ := exec.Command("ip", "-n", ns, "-4", "-o", "addr", "show").Output()
		if strings.Contains(string(a), " "+addr+"/") {
			return ns
		}
	}
	t.Fatalf("no lab namespace holds %s", addr)
	return ""
}

func wantStatus(t *testing.T, out string, hosts []string, shared, wild string) {
	t.Helper()
	var st []struct {
		Host   string `json:"host"`
		Routes []struct {
			App          string                          `json:"app"`
			Certificates map[string]hostproto.CertStatus `json:"certificates"`
		} `json:"routes"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("proxy status --json: %v\n%s", err, out)
	}
	peer := fmt.Sprintf("%s:%d", hosts[0], certs.DefaultPeerPort)
	want := map[string]map[string]string{
		hosts[0]: {shared: "http-01", wild: "dns-01"},
		hosts[1]: {shared: "copied from " + peer + " (http-01", wild: "copied from " + peer + " (dns-01 there)"},
	}
	for _, hs := range st {
		for _, r := range hs.Routes {
			if r.App != "dnsapp" {
				continue
			}
			for name, how := range want[hs.Host] {
				c := r.Certificates[name]
				if !strings.HasPrefix(c.ObtainedBy, how) || !strings.Contains(c.Issuer, "Pebble") ||
					!c.RenewAt.After(time.Now()) || !c.RenewAt.Before(c.Expires) {
					t.Errorf("status of %s on %s: %+v, want obtained by %q", name, hs.Host, c, how)
				}
			}
			delete(want, hs.Host)
		}
	}
	if len(want) > 0 {
		t.Errorf("proxy status has no route of dnsapp on %v:\n%s", want, out)
	}
}
