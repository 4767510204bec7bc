package provision

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/hoistdev/hoist/internal/twin"
	"github.com/hoistdev/hoist/internal/usererr"
)

// Targets takes provisioned hosts out of the balancer in front of them
// while a deploy switches them, and back in: a deploy's Balancer. The
// balancer is an ALB's target group (ELBv2), or the lab's balancer twin,
// which speaks ELBv2's states; both are waited on the same way.
type Targets struct {
	group targetGroup
	delay time.Duration // the group's deregistration delay
	o     ALBOptions
}

// targetGroup is where hosts are registered: their states are ELBv2's
// (initial, healthy, unhealthy, draining, unused; "" for none).
type targetGroup interface {
	register(ctx context.Context, host string) error
	deregister(ctx context.Context, host string) error
	state(ctx context.Context, host string) (string, error)
}

// ALBOptions configure NewTargets.
type ALBOptions struct {
	// Config replaces the SDK's default configuration, for tests; its
	// region is set from the state.
	Config *aws.Config
	// Poll is how often waits look again. Default 3s (300ms on the lab).
	Poll time.Duration
	// Wait bounds the wait for a host to be healthy again, and what a
	// drain may take beyond the deregistration delay. Default 5m.
	Wait time.Duration
	Log  io.Writer
}

func (o *ALBOptions) defaults(poll time.Duration) {
	if o.Poll == 0 {
		o.Poll = poll
	}
	if o.Wait == 0 {
		o.Wait = 5 * time.Minute
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// NewTargets returns the balancer provision made in front of st's
// hosts: the ALB on AWS, the balancer twin on the lab.
func NewTargets(ctx context.Context, st *State, o ALBOptions) (*Targets, error) {
	r := lookupSpec(st.Provider)
	if r.Targets == nil {
		return nil, fmt.Errorf("provider %q puts no balancer in front of its hosts", st.Provider)
	}
	return r.Targets(ctx, st, o)
}

// NewLabTargets returns the lab's balancer twin of st.
func NewLabTargets(st *State, o ALBOptions) (*Targets, error) {
	if st.Balancer == nil || st.Balancer.ID == "" {
		return nil, usererr.New("hoist.yml puts %s behind a balancer, but provisioning recorded no balancer twin on the lab", st.App).
			WithHint("run `hoist provision` to make it")
	}
	o.defaults(300 * time.Millisecond)
	c := &twin.Client{Socket: st.Balancer.ID}
	g := &twinGroup{c: c, addrs: map[string]string{}}
	targets := st.Targets()
	for i, h := range st.Hosts {
		if i < len(targets) {
			g.addrs[targets[i]] = net.JoinHostPort(h.PrivateAddr, "80")
		}
	}
	return &Targets{group: g, delay: labDeregistrationDelay, o: o}, nil
}

// twinGroup is the lab's balancer twin, over its control socket.
type twinGroup struct {
	c     *twin.Client
	addrs map[string]string // a host as deploys dial it → its target
}

func (g *twinGroup) target(host string) (string, error) {
	a, ok := g.addrs[host]
	if !ok {
		return "", fmt.Errorf("balancer: %s is not a host provisioning made", host)
	}
	return a, nil
}

func (g *twinGroup) register(ctx context.Context, host string) error {
	t, err := g.target(host)
	if err != nil {
		return err
	}
	return g.c.Register(ctx, t)
}

func (g *twinGroup) deregister(ctx context.Context, host string) error {
	t, err := g.target(host)
	if err != nil {
		return err
	}
	return g.c.Deregister(ctx, t)
}

func (g *twinGroup) state(ctx context.Context, host string) (string, error) {
	t, err := g.target(host)
	if err != nil {
		return "", err
	}
	h, err := g.c.Health(ctx, t)
	if err != nil || len(h) == 0 {
		return "", err
	}
	return h[0].State, nil
}

// elbGroup is an ALB's target group.
type elbGroup struct {
	elb   *elb.Client
	group string            // the target group's ARN
	port  int32             // its port
	ids   map[string]string // a host as deploys dial it (State.Targets) → instance id
}

// NewALBTargets returns the ALB's target group of st, which provision
// made.
func NewALBTargets(ctx context.Context, st *State, o ALBOptions) (*Targets, error) {
	var group string
	for _, r := range st.Resources {
		if r.Kind == kindTargets && r.ID != "" {
			group = r.ID
		}
	}
	if group == "" {
		return nil, usererr.New("hoist.yml puts %s behind a balancer, but provisioning recorded no target group", st.App).
			WithHint("run `hoist provision` to make it")
	}
	var cfg aws.Config
	if o.Config != nil {
		cfg = o.Config.Copy()
	} else {
		var err error
		if cfg, err = awsconfig.LoadDefaultConfig(ctx); err != nil {
			return nil, awsUserError("read the AWS configuration", err)
		}
	}
	if st.Region != "" {
		cfg.Region = st.Region
	}
	o.defaults(3 * time.Second)
	g := &elbGroup{elb: elb.NewFromConfig(cfg), group: group, ids: map[string]string{}}
	b := &Targets{group: g, o: o}
	targets := st.Targets()
	for i, h := range st.Hosts {
		if i < len(targets) && h.ID != "" {
			g.ids[targets[i]] = h.ID
		}
	}
	out, err := g.elb.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{TargetGroupArns: []string{group}})
	if err != nil || len(out.TargetGroups) == 0 {
		return nil, awsUserError("read the balancer's target group", err)
	}
	g.port = aws.ToInt32(out.TargetGroups[0].Port)
	attrs, err := g.elb.DescribeTargetGroupAttributes(ctx, &elb.DescribeTargetGroupAttributesInput{TargetGroupArn: aws.String(group)})
	if err != nil {
		return nil, awsUserError("read the target group's deregistration delay", err)
	}
	for _, a := range attrs.Attributes {
		if aws.ToString(a.Key) == "deregistration_delay.timeout_seconds" {
			n, _ := strconv.Atoi(aws.ToString(a.Value))
			b.delay = time.Duration(n) * time.Second
		}
	}
	return b, nil
}

func (g *elbGroup) target(host string) ([]elbtypes.TargetDescription, error) {
	id, ok := g.ids[host]
	if !ok {
		return nil, fmt.Errorf("balancer: %s is not a host provisioning made", host)
	}
	return []elbtypes.TargetDescription{{Id: aws.String(id), Port: aws.Int32(g.port)}}, nil
}

func (g *elbGroup) register(ctx context.Context, host string) error {
	t, err := g.target(host)
	if err != nil {
		return err
	}
	_, err = g.elb.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: aws.String(g.group), Targets: t})
	return awsUserError("put "+host+" back in the balancer", err)
}

func (g *elbGroup) deregister(ctx context.Context, host string) error {
	t, err := g.target(host)
	if err != nil {
		return err
	}
	_, err = g.elb.DeregisterTargets(ctx, &elb.DeregisterTargetsInput{TargetGroupArn: aws.String(g.group), Targets: t})
	return awsUserError("take "+host+" out of the balancer", err)
}

func (g *elbGroup) state(ctx context.Context, host string) (string, error) {
	t, err := g.target(host)
	if err != nil {
		return "", err
	}
	out, err := g.elb.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(g.group), Targets: t})
	if err != nil {
		return "", awsUserError("read "+host+"'s state in the balancer", err)
	}
	if len(out.TargetHealthDescriptions) > 0 && out.TargetHealthDescriptions[0].TargetHealth != nil {
		return string(out.TargetHealthDescriptions[0].TargetHealth.State), nil
	}
	return "", nil
}

// Delay is the target group's deregistration delay: how long a host's
// connections may take to drain.
func (b *Targets) Delay() time.Duration { return b.delay }

// Deregister takes host out of the target group and waits until the
// balancer has drained its connections (at most the deregistration
// delay, and Wait beyond it).
func (b *Targets) Deregister(ctx context.Context, host string) error {
	if err := b.group.deregister(ctx, host); err != nil {
		return err
	}
	fmt.Fprintf(b.o.Log, "%s: draining (deregistration delay %s)\n", host, b.delay)
	return b.waitState(ctx, host, b.delay+b.o.Wait, func(s string) bool {
		return s == string(elbtypes.TargetHealthStateEnumUnused) || s == ""
	})
}

// Register puts host back and waits until the balancer finds it healthy.
func (b *Targets) Register(ctx context.Context, host string) error {
	if err := b.group.register(ctx, host); err != nil {
		return err
	}
	return b.waitState(ctx, host, b.o.Wait, func(s string) bool {
		return s == string(elbtypes.TargetHealthStateEnumHealthy)
	})
}

// waitState polls host's state in the target group until done says so.
func (b *Targets) waitState(ctx context.Context, host string, limit time.Duration, done func(string) bool) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	last := ""
	for {
		s, err := b.group.state(ctx, host)
		if err == nil {
			last = s
			if done(last) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return err
			}
			return fmt.Errorf("balancer: %s is still %q after %s", host, last, limit)
		case <-time.After(b.o.Poll):
		}
	}
}
