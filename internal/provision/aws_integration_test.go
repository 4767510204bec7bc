//go:build integration

package provision

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/transport"
	"github.com/hoistdev/hoist/internal/waittest"
)

// startKumo runs kumo, an AWS emulator, on a free loopback port, and
// returns an SDK configuration that talks to it.
func startKumo(t *testing.T) aws.Config {
	t.Helper()
	bin, err := exec.LookPath("kumo")
	if err != nil {
		if gp, e := exec.Command("go", "env", "GOPATH").Output(); e == nil {
			bin = filepath.Join(strings.TrimSpace(string(gp)), "bin", "kumo")
		}
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kumo is not installed (scripts/deps.sh installs it): %v", err)
		}
		t.Skipf("kumo is not installed (scripts/deps.sh installs it): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--host", "127.0.0.1", "--port", strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "KUMO_DATA_DIR=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var last error
	if !waittest.PollEvery(30*time.Second, 100*time.Millisecond, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if last = err; err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Fatalf("kumo did not listen on %s within 30s: %v", addr, last)
	}
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion("us-east-1"),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
		awsconfig.WithBaseEndpoint("http://"+addr))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func kumoSpec(t *testing.T, env, infra string) Spec {
	t.Helper()
	c, err := config.Parse("hoist.yml", []byte(`version: 1
app: shop
build: {command: make, output: dist}
run: {command: ./shop}
proxy: {hosts: [shop.example.com]}
infra:
  provider: aws
  region: us-east-1
  env: `+env+`
  ssh_from: [203.0.113.7/32]
  instance_type: t2.micro
`+infra))
	if err != nil {
		t.Fatal(err)
	}
	return SpecFrom(c)
}

// TestAWSOnKumo runs the whole sequence against kumo for both of the
// seed's topologies: plan, provision, a second run that changes nothing,
// a changed SSH rule updated in place, and destroy with nothing of the
// app left — while another environment's VPC and an untagged one stay.
func TestAWSOnKumo(t *testing.T) {
	cfg := startKumo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ec2c, elbc := ec2.NewFromConfig(cfg), elb.NewFromConfig(cfg)
	// What AWS publishes for every region; kumo starts empty.
	if _, err := ssm.NewFromConfig(cfg).PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/aws/service/debian/release/12/latest/amd64"),
		Value: aws.String("ami-0123456789abcdef0"), Type: "String"}); err != nil {
		t.Fatal(err)
	}
	// Not ours: an untagged VPC, and the same app's staging VPC.
	other, err := ec2c.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.1.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	staging, err := ec2c.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.2.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ec2c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{*staging.Vpc.VpcId}, Tags: []ec2types.Tag{
		{Key: aws.String(TagApp), Value: aws.String("shop")}, {Key: aws.String(TagEnv), Value: aws.String("staging")}, {Key: aws.String(TagRole), Value: aws.String(roleVPC)}}}); err != nil {
		t.Fatal(err)
	}
	imported := importCert(t, ctx, acm.NewFromConfig(cfg))

	tests := map[string]struct {
		infra string
		kinds map[string]int // resources made, by kind
	}{
		"single instance with hoist's proxy": {"", map[string]int{kindVPC: 1, kindGateway: 1, kindSubnet: 1, kindSG: 1, kindInstance: 1}},
		"behind an ALB with an ACM certificate": {"  balancer: alb\n  count: 2\n  certificate: " + imported + "\n", map[string]int{kindVPC: 1, kindGateway: 1, kindSubnet: 2,
			kindSG: 2, kindInstance: 2, kindTargets: 1, kindBalancer: 1, kindListener: 2, kindRegistrar: 1}},
		"behind an ALB with a certificate hoist requests": {"  balancer: alb\n", map[string]int{kindVPC: 1, kindGateway: 1, kindSubnet: 2,
			kindSG: 2, kindInstance: 1, kindCert: 1, kindTargets: 1, kindBalancer: 1, kindListener: 1, kindRegistrar: 1}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			spec := kumoSpec(t, "production", tt.infra)
			o, hostsSeen := engineOn(t, ctx, cfg, spec)
			// A failing case must not leave resources for the next one.
			t.Cleanup(func() { Destroy(ctx, o) })

			plan, err := MakePlan(ctx, o, false)
			if err != nil {
				t.Fatal(err)
			}
			if n := plan.Counts()[Create]; n != len(o.Provider.Desired()) || len(plan.Changes) != n {
				t.Fatalf("plan from nothing: %s", plan.Summary())
			}
			if _, err := Apply(ctx, o, plan); err != nil {
				t.Fatal(err)
			}
			inv, err := o.Provider.Observe(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			for _, r := range inv.Resources {
				got[r.Kind]++
			}
			if !mapsEqual(got, tt.kinds) {
				t.Errorf("made %v, want %v", got, tt.kinds)
			}
			if len(o.State.Hosts) != spec.Count || hostsSeen() != spec.Count {
				t.Errorf("state has %d hosts and %d were secured, want %d", len(o.State.Hosts), hostsSeen(), spec.Count)
			}
			if spec.Balancer == config.BalancerALB && (o.State.Balancer == nil || o.State.Balancer.DNSName == "") {
				t.Errorf("the state has no balancer name: %+v", o.State.Balancer)
			}
			if strings.Contains(tt.infra, "certificate:") == false && spec.Balancer == config.BalancerALB && len(o.State.Balancer.Validation) == 0 {
				t.Errorf("no validation records recorded for the requested certificate")
			}
			assertHostRules(t, ctx, ec2c, inv, spec)

			// Again: nothing to do, nothing done, no host touched.
			again, err := MakePlan(ctx, o, false)
			if err != nil {
				t.Fatal(err)
			}
			wantAgain := 0
			if name == "behind an ALB with a certificate hoist requests" {
				wantAgain = 1 // the HTTPS listener waits for the certificate, which kumo never issues
			}
			if len(again.Changes) != wantAgain {
				t.Errorf("second plan: %s, want %d change(s): %+v", again.Summary(), wantAgain, again.Changes)
			}
			res, err := Apply(ctx, o, again)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.New) != 0 || hostsSeen() != spec.Count {
				t.Errorf("second run made %v new hosts and secured %d", res.New, hostsSeen())
			}

			// A changed SSH rule is an update in place, and converges.
			o.Spec.SSHFrom = []string{"198.51.100.0/24"}
			o.Provider, _ = NewAWS(ctx, o.Spec, AWSOptions{Config: &cfg, Poll: 10 * time.Millisecond, Wait: 10 * time.Second})
			upd, err := MakePlan(ctx, o, false)
			if err != nil {
				t.Fatal(err)
			}
			if upd.Counts()[Update] != 1 || upd.Counts()[Replace] != 0 || upd.Counts()[Create] != wantAgain {
				t.Fatalf("plan after ssh_from changed: %+v", upd.Changes)
			}
			if _, err := Apply(ctx, o, upd); err != nil {
				t.Fatal(err)
			}
			if after, _ := MakePlan(ctx, o, false); len(after.Changes) != wantAgain {
				t.Errorf("plan after the update: %+v", after.Changes)
			}

			gone, err := Destroy(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			if len(gone) != len(inv.Resources) {
				t.Errorf("destroy removed %d resources, want %d", len(gone), len(inv.Resources))
			}
			assertNothingLeft(t, ctx, ec2c, elbc, inv)
			for _, id := range []string{*other.Vpc.VpcId, *staging.Vpc.VpcId} {
				if _, err := ec2c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{id}}); err != nil {
					t.Errorf("destroy removed %s, which was not this app's production: %v", id, err)
				}
			}
		})
	}
}

// engineOn returns engine options against kumo. kumo's instances are
// not machines, so the SSH side is a fake connection that checks what
// hoist sends; the lab's end-to-end test covers real hosts.
func engineOn(t *testing.T, ctx context.Context, cfg aws.Config, spec Spec) (Options, func() int) {
	t.Helper()
	prov, err := NewAWS(ctx, spec, AWSOptions{Config: &cfg, Poll: 10 * time.Millisecond, Wait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	st, err := LoadState(home, spec.App, spec.Env)
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeHosts{t: t, known: filepath.Join(home, "known_hosts")}
	return Options{Spec: spec, Provider: prov, State: st, KnownHosts: fake.known, AuthorizedKeys: []string{testOperatorKey},
		Dial: fake.dial, Prices: mustPrices(t), BootTimeout: 5 * time.Second, Log: testLog{t}}, fake.secured
}

func assertHostRules(t *testing.T, ctx context.Context, c *ec2.Client, inv *Inventory, spec Spec) {
	t.Helper()
	for _, r := range inv.Resources {
		if r.Kind != kindSG || r.Name != roleHostsSG {
			continue
		}
		want := "tcp 22 from 203.0.113.7/32; tcp 443 from 0.0.0.0/0; tcp 80 from 0.0.0.0/0"
		if spec.Balancer == config.BalancerALB {
			want = "tcp 22 from 203.0.113.7/32; tcp 80 from 10.77.0.0/16"
		}
		if spec.Count > 1 {
			want = strings.Replace(want, "; tcp 80", "; tcp 7373 from 10.77.0.0/16; tcp 80", 1)
		}
		if r.Props != want {
			t.Errorf("hosts' security group: %q, want %q", r.Props, want)
		}
		return
	}
	t.Error("no hosts' security group found")
}

func assertNothingLeft(t *testing.T, ctx context.Context, ec2c *ec2.Client, elbc *elb.Client, inv *Inventory) {
	t.Helper()
	for _, r := range inv.Resources {
		var err error
		n := 0 // how many the describe call returned
		switch r.Kind {
		case kindVPC:
			var out *ec2.DescribeVpcsOutput
			if out, err = ec2c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{r.ID}}); err == nil {
				n = len(out.Vpcs)
			}
		case kindSubnet:
			var out *ec2.DescribeSubnetsOutput
			if out, err = ec2c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{r.ID}}); err == nil {
				n = len(out.Subnets)
			}
		case kindSG:
			var out *ec2.DescribeSecurityGroupsOutput
			if out, err = ec2c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{r.ID}}); err == nil {
				n = len(out.SecurityGroups)
			}
		case kindGateway:
			var out *ec2.DescribeInternetGatewaysOutput
			if out, err = ec2c.DescribeInternetGateways(ctx, &ec2.DescribeInternetGatewaysInput{InternetGatewayIds: []string{r.ID}}); err == nil {
				n = len(out.InternetGateways)
			}
		case kindBalancer:
			var out *elb.DescribeLoadBalancersOutput
			if out, err = elbc.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{LoadBalancerArns: []string{r.ID}}); err == nil {
				n = len(out.LoadBalancers)
			}
		case kindTargets:
			var out *elb.DescribeTargetGroupsOutput
			if out, err = elbc.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{TargetGroupArns: []string{r.ID}}); err == nil {
				n = len(out.TargetGroups)
			}
		case kindInstance:
			out, e := ec2c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{r.ID}})
			if e == nil {
				for _, res := range out.Reservations {
					for _, in := range res.Instances {
						if in.State.Name != ec2types.InstanceStateNameTerminated {
							t.Errorf("instance %s is %s after destroy", r.ID, in.State.Name)
						}
					}
				}
			}
			continue
		default:
			continue
		}
		if n > 0 || (err != nil && !notFound(err)) {
			t.Errorf("%s %s (%s) is still there after destroy: %d found, %v", r.Kind, r.Name, r.ID, n, err)
		}
	}
}

// importCert imports a self-signed certificate into ACM, as a user who
// brings their own would, and returns its ARN.
func importCert(t *testing.T, ctx context.Context, c *acm.Client) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "shop.example.com"}, DNSNames: []string{"shop.example.com"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.ImportCertificate(ctx, &acm.ImportCertificateInput{
		Certificate: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		PrivateKey:  pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
	})
	if err != nil {
		t.Fatal(err)
	}
	return *out.CertificateArn
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestValidationPrintedBeforeHostsAnswer: the DNS records ACM waits for
// are printed as soon as ACM gives them, even by a provision that then
// fails (here its hosts never answer SSH, as kumo's never do): before,
// only a provision that succeeded printed them, and the user waited on
// a certificate that could not be issued without being told why.
func TestValidationPrintedBeforeHostsAnswer(t *testing.T) {
	cfg := startKumo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := ssm.NewFromConfig(cfg).PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/aws/service/debian/release/12/latest/amd64"),
		Value: aws.String("ami-0123456789abcdef0"), Type: "String"}); err != nil {
		t.Fatal(err)
	}
	spec := kumoSpec(t, "production", "  balancer: alb\n")
	o, _ := engineOn(t, ctx, cfg, spec)
	t.Cleanup(func() { Destroy(ctx, o) })
	var log strings.Builder
	o.Log = io.MultiWriter(&log, testLog{t})
	prov, err := NewAWS(ctx, spec, AWSOptions{Config: &cfg, Poll: 10 * time.Millisecond, Wait: 10 * time.Second, Log: o.Log})
	if err != nil {
		t.Fatal(err)
	}
	o.Provider = prov
	o.Dial = func(context.Context, string) (transport.Conn, error) { return nil, errors.New("no route to host") }
	o.BootTimeout = time.Second
	plan, err := MakePlan(ctx, o, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(ctx, o, plan); err == nil {
		t.Fatal("provision succeeded with hosts that never answer")
	}
	if !strings.Contains(log.String(), "certificate for shop.example.com: ACM issues it once this record exists: _") {
		t.Errorf("a provision that failed did not print the certificate's validation record:\n%s", log.String())
	}
}
