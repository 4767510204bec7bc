package provision

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/hoistdev/hoist/internal/config"
)

func init() {
	Register(Registration{Name: config.ProviderAWS, Check: checkAWS,
		New: func(ctx context.Context, spec Spec, env Env) (Provider, error) {
			return NewAWS(ctx, spec, AWSOptions{Log: env.Log})
		},
		Estimate: estimateAWS,
		// The balancer's nodes take addresses in hoist's VPC's subnets.
		BalancerNetworks: func(Spec, *State) []string { return []string{vpcCIDR} },
		Targets:          NewALBTargets,
		PublicSSH:        true,
	})
}

var (
	regionPattern = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]$`)
	typePattern   = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9]+$`)
)

// checkAWS validates what EC2 and the ALB ask of the infra section.
func checkAWS(c *config.Config) error {
	in := &c.Infra
	if in.Balancer == config.BalancerALB {
		if in.Certificate == "" && len(c.Proxy.Hosts) == 0 {
			return config.FieldError("$.infra.balancer", "an ALB serves HTTPS with a certificate for the app's names: list them in proxy.hosts, or give infra.certificate")
		}
		if in.Certificate != "" && !strings.HasPrefix(in.Certificate, "arn:aws") {
			return config.FieldError("$.infra.certificate", "%q is not an ACM certificate ARN (arn:aws:acm:...)", in.Certificate)
		}
	}
	if in.Region == "" {
		return config.FieldError("$.infra.region", "missing; the AWS region to make the hosts in, for example eu-west-1")
	}
	if !regionPattern.MatchString(in.Region) {
		return config.FieldError("$.infra.region", "%q is not an AWS region name like eu-west-1", in.Region)
	}
	if !typePattern.MatchString(in.InstanceType) {
		return config.FieldError("$.infra.instance_type", "%q is not an EC2 instance type like t3.micro", in.InstanceType)
	}
	seen := map[string]bool{}
	for i, z := range in.Zones {
		if len(z) != len(in.Region)+1 || !strings.HasPrefix(z, in.Region) || z[len(z)-1] < 'a' || z[len(z)-1] > 'z' {
			return config.FieldError(fmt.Sprintf("$.infra.zones[%d]", i), "%q is not a zone of %s: write %sa, %sb...", z, in.Region, in.Region, in.Region)
		}
		if seen[z] {
			return config.FieldError(fmt.Sprintf("$.infra.zones[%d]", i), "%s is listed twice", z)
		}
		seen[z] = true
	}
	if in.Balancer == config.BalancerALB && len(in.Zones) < 2 {
		return config.FieldError("$.infra.zones", "an ALB needs subnets in at least two zones: list two")
	}
	return nil
}

// AWSOptions configure the AWS provider.
type AWSOptions struct {
	// Config replaces the SDK's default configuration (environment,
	// profiles, SSO), for tests; its region is set from the spec.
	Config *aws.Config
	// Poll is how often waits look again. Default 3s.
	Poll time.Duration
	// Wait bounds each wait for AWS (an instance running, a balancer
	// gone, a dependency released). Default 10m.
	Wait time.Duration
	Log  io.Writer
}

// awsProvider makes an app's hosts on EC2: its own VPC with a public
// subnet per zone, security groups, instances booted from the
// distribution's current image, and with balancer: alb an Application
// Load Balancer with its target group, listeners and certificate.
type awsProvider struct {
	spec Spec
	ec2  *ec2.Client
	elb  *elb.Client
	acm  *acm.Client
	ssm  *ssm.Client
	o    AWSOptions

	// What the last Observe found.
	found         found
	requestedCert string // ARN of the certificate hoist requested
}

// NewAWS returns the AWS provider for spec, with credentials from the
// SDK's standard chain. Nothing is asked of AWS until it is used.
func NewAWS(ctx context.Context, spec Spec, o AWSOptions) (Provider, error) {
	var cfg aws.Config
	if o.Config != nil {
		cfg = o.Config.Copy()
	} else {
		var err error
		cfg, err = awsconfig.LoadDefaultConfig(ctx,
			// The standard retryer retries only what AWS marks retryable
			// (throttling, 5xx, timeouts), with exponential backoff.
			awsconfig.WithRetryer(func() aws.Retryer { return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = 6 }) }))
		if err != nil {
			return nil, awsUserError("read the AWS configuration", err)
		}
	}
	cfg.Region = spec.Region
	if o.Poll == 0 {
		o.Poll = 3 * time.Second
	}
	if o.Wait == 0 {
		o.Wait = 10 * time.Minute
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return &awsProvider{spec: spec, ec2: ec2.NewFromConfig(cfg), elb: elb.NewFromConfig(cfg), acm: acm.NewFromConfig(cfg), ssm: ssm.NewFromConfig(cfg), o: o}, nil
}

// Kinds of AWS resources, in the order they are made; deletion goes
// the other way.
const (
	kindVPC       = "vpc"
	kindGateway   = "internet gateway"
	kindSubnet    = "subnet"
	kindSG        = "security group"
	kindInstance  = "instance"
	kindCert      = "certificate"
	kindTargets   = "target group"
	kindBalancer  = "load balancer"
	kindListener  = "listener"
	kindRegistrar = "registrations"
)

var kindRank = map[string]int{kindVPC: 0, kindGateway: 1, kindSubnet: 2, kindSG: 3, kindInstance: 4, kindCert: 5,
	kindTargets: 6, kindBalancer: 7, kindListener: 8, kindRegistrar: 9}

// Roles: the hoist:role tag of each resource.
const (
	roleVPC        = "network"
	roleGateway    = "gateway"
	roleHostsSG    = "hosts"
	roleBalancerSG = "balancer"
	roleCert       = "certificate"
	roleTargets    = "targets"
	roleBalancer   = "balancer"
	roleHTTP       = "http"
	roleHTTPS      = "https"
	roleRegistered = "targets"
)

// TagCertificate on the VPC names the ACM certificate hoist requested:
// ACM's own tags cannot be searched everywhere hoist runs.
const TagCertificate = "hoist:certificate"

const vpcCIDR = "10.77.0.0/16"

func subnetRole(zone string) string { return "subnet-" + zone }

func (p *awsProvider) alb() bool { return p.spec.Balancer == config.BalancerALB }

// Desired lists the resources, in the order they are made.
func (p *awsProvider) Desired() []Resource {
	s := p.spec
	out := []Resource{
		{Kind: kindVPC, Name: roleVPC, Props: vpcCIDR + ", DNS host names on"},
		{Kind: kindGateway, Name: roleGateway, Props: "attached, default route in the main route table"},
	}
	for i, z := range s.Zones {
		out = append(out, Resource{Kind: kindSubnet, Name: subnetRole(z), Props: subnetProps(i, z)})
	}
	if p.alb() {
		out = append(out, Resource{Kind: kindSG, Name: roleBalancerSG, Props: rulesProps(p.balancerRules()), Mutable: true})
	}
	out = append(out, Resource{Kind: kindSG, Name: roleHostsSG, Props: rulesProps(p.hostRules()), Mutable: true})
	for i := 0; i < s.Count; i++ {
		out = append(out, Resource{Kind: kindInstance, Name: s.HostName(i), Props: p.instanceProps(i)})
	}
	if !p.alb() {
		return out
	}
	if s.Certificate == "" {
		out = append(out, Resource{Kind: kindCert, Name: roleCert, Props: certProps(s.Names)})
	}
	out = append(out,
		Resource{Kind: kindTargets, Name: roleTargets, Props: fmt.Sprintf("HTTP:%d, health GET %s", s.TargetPort, s.HealthPath)},
		Resource{Kind: kindBalancer, Name: roleBalancer, Props: "internet-facing application balancer in " + strings.Join(s.Zones, ", ")},
		Resource{Kind: kindListener, Name: roleHTTP, Props: "80 redirects to HTTPS"},
		Resource{Kind: kindListener, Name: roleHTTPS, Props: "443 forwards to the targets with " + p.certName(p.spec.Certificate), Mutable: true},
		Resource{Kind: kindRegistrar, Name: roleRegistered, Props: strings.Join(p.hostNames(), ", "), Mutable: true},
	)
	return out
}

func subnetProps(i int, zone string) string {
	return fmt.Sprintf("10.77.%d.0/24 in %s, public addresses on launch", i, zone)
}

func certProps(names []string) string { return "DNS-validated for " + strings.Join(names, ", ") }

// certName says which certificate a listener uses, the same way for
// what is wanted and what is found.
func (p *awsProvider) certName(arn string) string {
	if arn == "" || arn == p.requestedCert {
		return "hoist's certificate"
	}
	return "certificate " + arn
}

func (p *awsProvider) hostNames() []string {
	var out []string
	for i := 0; i < p.spec.Count; i++ {
		out = append(out, p.spec.HostName(i))
	}
	return out
}

func (p *awsProvider) instanceProps(i int) string {
	s := p.spec
	return fmt.Sprintf("%s, %d GiB gp3 encrypted, %s, IMDSv2 required, in %s", s.InstanceType, s.DiskGB, s.Image, s.Zone(i))
}

// rule is one ingress rule: a TCP port from a network.
type rule struct {
	port int32
	from string // CIDR
	why  string // the rule's description in the group
}

func (p *awsProvider) sshFrom() []string {
	if len(p.spec.SSHFrom) == 0 {
		return []string{"this machine's address"}
	}
	return p.spec.SSHFrom
}

// awsRules turns the network rules into ingress rules: the operator is
// infra.ssh_from, the balancer's nodes and the hosts are in hoist's own
// VPC, which holds nothing else.
func (p *awsProvider) awsRules(rs []Rule) []rule {
	var out []rule
	for _, r := range rs {
		var from []string
		switch r.From {
		case PeerOperator:
			from = p.sshFrom()
		case PeerAnyone:
			from = []string{"0.0.0.0/0"}
		case PeerBalancer, PeerHosts:
			from = []string{vpcCIDR}
		}
		for _, f := range from {
			if !slices.ContainsFunc(out, func(o rule) bool { return o.port == int32(r.Port) && o.from == f }) {
				out = append(out, rule{port: int32(r.Port), from: f, why: r.Why})
			}
		}
	}
	return out
}

func (p *awsProvider) hostRules() []rule { return p.awsRules(Rules(p.spec).Hosts) }

func (p *awsProvider) balancerRules() []rule { return p.awsRules(Rules(p.spec).Balancer) }

func rulesProps(rs []rule) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("tcp %d from %s", r.port, r.from))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// Image parameters: where each distribution publishes its current AMI
// for a region, as a public SSM parameter.
var imageParams = map[string]string{
	"debian-12":    "/aws/service/debian/release/12/latest/%s",
	"ubuntu-24.04": "/aws/service/canonical/ubuntu/server/24.04/stable/current/%s/hvm/ebs-gp3/ami-id",
	"ubuntu-22.04": "/aws/service/canonical/ubuntu/server/22.04/stable/current/%s/hvm/ebs-gp2/ami-id",
}

// gravitonFamily matches instance families of AWS's arm64 processors:
// t4g, m7g, c6gn, r8gd...
var gravitonFamily = regexp.MustCompile(`^[a-z]+[0-9]+[a-z]*g[a-z]*$`)

// Arch is the image architecture an instance type runs.
func Arch(instanceType string) string {
	family, _, _ := strings.Cut(instanceType, ".")
	if gravitonFamily.MatchString(family) {
		return "arm64"
	}
	return "amd64"
}

// ImageParameter is the SSM parameter that names the image's current
// AMI in a region, or "" for an AMI id given as is.
func ImageParameter(image, instanceType string) string {
	if p, ok := strings.CutPrefix(image, "ssm:"); ok {
		return p
	}
	if f, ok := imageParams[image]; ok {
		return fmt.Sprintf(f, Arch(instanceType))
	}
	return ""
}

// DetectPublicAddress asks AWS's checkip service for this machine's
// public IPv4 address, for the SSH rule.
func DetectPublicAddress(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://checkip.amazonaws.com/", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("find this machine's public address: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64))
	if err != nil {
		return "", fmt.Errorf("find this machine's public address: %w", err)
	}
	a, err := netip.ParseAddr(strings.TrimSpace(string(b)))
	if err != nil || !a.Is4() {
		return "", fmt.Errorf("find this machine's public address: checkip answered %q", b)
	}
	return a.String() + "/32", nil
}

// tagsOf turns a spec's tags and a role into EC2 tags.
func (p *awsProvider) ec2Tags(role string, extra map[string]string) []ec2types.Tag {
	tags := []ec2types.Tag{
		{Key: aws.String(TagApp), Value: aws.String(p.spec.App)},
		{Key: aws.String(TagEnv), Value: aws.String(p.spec.Env)},
		{Key: aws.String(TagRole), Value: aws.String(role)},
		{Key: aws.String("Name"), Value: aws.String(p.spec.App + "-" + p.spec.Env + "-" + role)},
	}
	for _, k := range sortedKeys(extra) {
		tags = append(tags, ec2types.Tag{Key: aws.String(k), Value: aws.String(extra[k])})
	}
	return tags
}

func ours(tags map[string]string, s Spec) bool {
	return tags[TagApp] == s.App && tags[TagEnv] == s.Env && tags[TagRole] != ""
}

func sortResources(rs []Resource) {
	slices.SortStableFunc(rs, func(a, b Resource) int {
		if d := kindRank[a.Kind] - kindRank[b.Kind]; d != 0 {
			return d
		}
		return strings.Compare(a.Name, b.Name)
	})
}
