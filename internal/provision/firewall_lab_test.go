//go:build lab && linux

package provision

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/lab"
	"github.com/hoistdev/hoist/internal/labtest"
)

// TestLabFirewallMatchesRules boots two lab hosts with the firewall of
// two topologies in turn and lists what answers on each host, port by
// port, from this machine (the operator), from the other host, from the
// balancer's address and from a stranger on the lab's network: exactly
// what the network rules let each of them reach, and nothing else, even
// where something listens.
func TestLabFirewallMatchesRules(t *testing.T) {
	labtest.Need(t)
	dir := t.TempDir()
	name := fmt.Sprintf("fw%d", os.Getpid()%100000)
	o := lab.Options{Name: name, StateDir: filepath.Join(dir, "state"), KeyPath: filepath.Join(dir, "id_ed25519"),
		KnownHostsPath: filepath.Join(dir, "known_hosts"), Log: testLog{t}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := lab.Down(ctx, o); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	topologies := []string{
		"proxy: {hosts: [shop.test], tls: acme}\ninfra: {provider: lab, count: 2}\naccessories: {db: {service: postgresql, listen: 10.77.0.10}}\n",
		"proxy: {hosts: [shop.test]}\ninfra: {provider: lab, count: 2, balancer: alb}\n",
	}
	ports := portsOf(t, topologies)
	op, _, lb, err := lab.LabAddrs(lab.DefaultSubnet(name), 2)
	if err != nil {
		t.Fatal(err)
	}
	stranger := op.As4()
	stranger[3] = 250
	var hosts []lab.Host
	var vantages map[string]string // name → network namespace
	for i, yml := range topologies {
		s := specOf(t, yml)
		o.Firewall = LabFirewall(s)
		var err error
		if hosts, err = lab.Up(ctx, o, 2); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			for _, h := range hosts {
				labtest.Listen(t, h.Name, ports...)
			}
			vantages = map[string]string{
				"operator": "",
				"balancer": labtest.Stranger(t, "hlb-"+name, "hoistb-"+name, lb.String()),
				"stranger": labtest.Stranger(t, "hlb-"+name, "hoists-"+name, netip.AddrFrom4(stranger).String()),
			}
		}
		t.Run(fmt.Sprint(s.Balancer, " ", s.ACME), func(t *testing.T) {
			got, want := listing(t, hosts, vantages, s, ports)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("what answers (-rules +lab):\n%s", diff)
			}
		})
	}
}

// portsOf are the ports any topology's rules name, and ports none does
// that a host may listen on: the app's, epmd, the proxy's metrics.
func portsOf(t *testing.T, topologies []string) []int {
	ports := []int{4000, 4001, 4369, 9180}
	for _, yml := range topologies {
		for _, r := range Rules(specOf(t, yml)).Hosts {
			ports = append(ports, r.Port)
		}
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

// listing probes every port of every host from each vantage point and
// returns what answered, with what the rules say should.
func listing(t *testing.T, hosts []lab.Host, vantages map[string]string, s Spec, ports []int) (got, want map[string][]int) {
	want = map[string][]int{}
	var probes []labtest.Probe
	peers := map[string]Peer{"operator": PeerOperator, "neighbour": PeerHosts, "balancer": PeerBalancer}
	for hi, h := range hosts {
		vs := map[string]string{"neighbour": hosts[1-hi].Name}
		maps.Copy(vs, vantages)
		for v, ns := range vs {
			key := fmt.Sprintf("%s from %s", h.Name, v)
			want[key] = Rules(s).HostPortsFor(peers[v])
			probes = append(probes, labtest.Probe{Key: key, NS: ns, Addr: h.Addr})
		}
	}
	return labtest.Survey(t, probes, ports, 700*time.Millisecond), want
}
