package provision

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/lab"
)

// specOf reads a hoist.yml with the given infra and proxy sections.
func specOf(t *testing.T, yml string) Spec {
	t.Helper()
	c, err := config.Parse("hoist.yml", []byte("version: 1\napp: shop\nbuild: {command: make, output: dist}\nrun: {command: ./shop, port: 4000}\n"+yml))
	if err != nil {
		t.Fatal(err)
	}
	return SpecFrom(c)
}

// ruleSpecs are the topologies the network tests go through.
var ruleSpecs = map[string]string{
	"one host, proxy": "proxy: {hosts: [shop.test]}\ninfra: {provider: aws, region: eu-west-1}\n",
	"two hosts, acme": "proxy: {hosts: [shop.test], tls: acme}\ninfra: {provider: aws, region: eu-west-1, count: 2, ssh_from: [203.0.113.7/32, 198.51.100.0/24]}\n",
	"two hosts, alb":  "proxy: {hosts: [shop.test]}\ninfra: {provider: aws, region: eu-west-1, count: 2, balancer: alb}\n",
	"no proxy":        "infra: {provider: aws, region: eu-west-1, count: 3}\ndeploy: {relay: false}\n",
	"accessory on the private network": "proxy: {hosts: [shop.test]}\ninfra: {provider: aws, region: eu-west-1, count: 2}\n" +
		"accessories: {db: {service: postgresql, listen: 10.77.0.10}, cache: {service: redis}}\n",
}

// TestRulesOfTopologies: what the description lets in, topology by
// topology: nothing but what each needs.
func TestRulesOfTopologies(t *testing.T) {
	want := map[string][]string{
		"one host, proxy": {"tcp 22 from the operator", "tcp 443 from anyone", "tcp 80 from anyone"},
		"two hosts, acme": {"tcp 22 from the operator", "tcp 443 from anyone", "tcp 7373 from the app's hosts", "tcp 80 from anyone",
			"tcp 9443 from the app's hosts"},
		"two hosts, alb":                   {"tcp 22 from the operator", "tcp 7373 from the app's hosts", "tcp 80 from the balancer"},
		"no proxy":                         {"tcp 22 from the operator", "tcp 4000 from anyone"},
		"accessory on the private network": {"tcp 22 from the operator", "tcp 443 from anyone", "tcp 5432 from the app's hosts", "tcp 7373 from the app's hosts", "tcp 80 from anyone"},
	}
	for name, yml := range ruleSpecs {
		t.Run(name, func(t *testing.T) {
			got := strings.Split(describeRules(Rules(specOf(t, yml)).Hosts), "; ")
			if diff := cmp.Diff(want[name], got); diff != "" {
				t.Errorf("hosts' rules (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAWSAndLabRulesFromOneDescription: the AWS security groups and the
// lab's nftables rules let in exactly the ports of the description,
// each from the addresses its peer stands for on that provider. The
// AWS groups lacked the certificate peer channel (9443) with tls: acme
// on two hosts, which this test caught.
func TestAWSAndLabRulesFromOneDescription(t *testing.T) {
	const subnet = "10.213.9.0/24"
	for name, yml := range ruleSpecs {
		t.Run(name, func(t *testing.T) {
			s := specOf(t, yml)
			rules := Rules(s)
			p := &awsProvider{spec: s}
			// AWS: each peer is a set of CIDRs.
			sshFrom := s.SSHFrom
			if len(sshFrom) == 0 {
				sshFrom = []string{"this machine's address"}
			}
			awsPeers := map[Peer][]string{PeerOperator: sshFrom, PeerAnyone: {"0.0.0.0/0"}, PeerBalancer: {vpcCIDR}, PeerHosts: {vpcCIDR}}
			if diff := cmp.Diff(expand(rules.Hosts, awsPeers), awsSet(p.hostRules())); diff != "" {
				t.Errorf("AWS hosts' group (-description +group):\n%s", diff)
			}
			if diff := cmp.Diff(expand(rules.Balancer, awsPeers), awsSet(p.balancerRules())); diff != "" {
				t.Errorf("AWS balancer's group (-description +group):\n%s", diff)
			}

			// The lab: the same peers as the lab's addresses, read back
			// from the nft script it applies.
			op, hosts, lb, err := lab.LabAddrs(subnet, s.Count)
			if err != nil {
				t.Fatal(err)
			}
			one := func(a netip.Addr) string { return a.String() + "/32" }
			operator := []string{one(op)}
			if len(s.SSHFrom) > 0 {
				operator = s.SSHFrom
			}
			var hostNets []string
			for _, h := range hosts {
				hostNets = append(hostNets, one(h))
			}
			labPeers := map[Peer][]string{PeerOperator: operator, PeerAnyone: {"any"}, PeerBalancer: {one(lb)}, PeerHosts: hostNets}
			hostScript, lbScript, err := lab.FirewallScripts(LabFirewall(s), subnet, s.Count)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(expand(rules.Hosts, labPeers), nftSet(t, hostScript)); diff != "" {
				t.Errorf("lab hosts' nft rules (-description +nft):\n%s\n%s", diff, hostScript)
			}
			if diff := cmp.Diff(expand(rules.Balancer, labPeers), nftSet(t, lbScript)); diff != "" {
				t.Errorf("lab balancer's nft rules (-description +nft):\n%s\n%s", diff, lbScript)
			}
			// Whatever else comes in is dropped.
			if !strings.Contains(hostScript, "policy drop;") {
				t.Errorf("the lab's hosts do not drop what no rule lets in:\n%s", hostScript)
			}
		})
	}
}

// expand lists "port from network" for every network each rule's peer
// stands for.
func expand(rs []Rule, peers map[Peer][]string) []string {
	var out []string
	for _, r := range rs {
		for _, n := range peers[r.From] {
			out = append(out, fmt.Sprintf("%d from %s", r.Port, n))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func awsSet(rs []rule) []string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%d from %s", r.port, r.from))
	}
	slices.Sort(out)
	return out
}

var nftAccept = regexp.MustCompile(`^\s*(?:ip saddr \{ ([^}]*) \} )?tcp dport (\d+) accept`)

// nftSet reads the accept rules of an nft script back.
func nftSet(t *testing.T, script string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(script, "\n") {
		m := nftAccept.FindStringSubmatch(line)
		if m == nil {
			if strings.Contains(line, "dport") {
				t.Errorf("an nft rule this test cannot read: %q", line)
			}
			continue
		}
		port, _ := strconv.Atoi(m[2])
		if m[1] == "" {
			out = append(out, fmt.Sprintf("%d from any", port))
			continue
		}
		for _, n := range strings.Split(m[1], ", ") {
			out = append(out, fmt.Sprintf("%d from %s", port, n))
		}
	}
	slices.Sort(out)
	return out
}

// TestLabPlanHasFirewallAndTwin: a lab plan makes the hosts' firewall
// as AWS makes security groups, and with balancer: alb the balancer
// twin, checking the hosts' proxies where the ALB would.
func TestLabPlanHasFirewallAndTwin(t *testing.T) {
	s := specOf(t, "proxy: {hosts: [shop.test]}\ninfra: {provider: lab, count: 2, balancer: alb}\n")
	var kinds []string
	var twin string
	for _, r := range NewLab(s, t.TempDir()+"/known_hosts", nil).Desired() {
		kinds = append(kinds, r.Kind)
		if r.Kind == labBalancer {
			twin = r.Props
		}
	}
	if diff := cmp.Diff([]string{labKind, labKind, labFirewall, labBalancer}, kinds); diff != "" {
		t.Errorf("lab plan (-want +got):\n%s", diff)
	}
	if !strings.Contains(twin, "HTTPS for shop.test") || !strings.Contains(twin, "health GET /.hoist/up/shop") {
		t.Errorf("the twin: %q", twin)
	}
}
