package provision

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/hoistdev/hoist/internal/usererr"
)

// ALBTargets takes provisioned hosts out of the balancer's target group
// while a deploy switches them, and back in: a deploy's Balancer.
type ALBTargets struct {
	elb   *elb.Client
	group string            // the target group's ARN
	port  int32             // its port
	ids   map[string]string // a host as deploys dial it (State.Targets) → instance id
	delay time.Duration     // the group's deregistration delay
	o     ALBOptions
}

// ALBOptions configure NewALBTargets.
type ALBOptions struct {
	// Config replaces the SDK's default configuration, for tests; its
	// region is set from the state.
	Config *aws.Config
	// Poll is how often waits look again. Default 3s.
	Poll time.Duration
	// Wait bounds the wait for a host to be healthy again, and what a
	// drain may take beyond the deregistration delay. Default 5m.
	Wait time.Duration
	Log  io.Writer
}

// NewALBTargets returns the balancer of st, which provision made.
func NewALBTargets(ctx context.Context, st *State, o ALBOptions) (*ALBTargets, error) {
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
	if o.Poll == 0 {
		o.Poll = 3 * time.Second
	}
	if o.Wait == 0 {
		o.Wait = 5 * time.Minute
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	b := &ALBTargets{elb: elb.NewFromConfig(cfg), group: group, ids: map[string]string{}, o: o}
	targets := st.Targets()
	for i, h := range st.Hosts {
		if i < len(targets) && h.ID != "" {
			b.ids[targets[i]] = h.ID
		}
	}
	out, err := b.elb.DescribeTargetGroups(ctx, &elb.DescribeTargetGroupsInput{TargetGroupArns: []string{group}})
	if err != nil || len(out.TargetGroups) == 0 {
		return nil, awsUserError("read the balancer's target group", err)
	}
	b.port = aws.ToInt32(out.TargetGroups[0].Port)
	attrs, err := b.elb.DescribeTargetGroupAttributes(ctx, &elb.DescribeTargetGroupAttributesInput{TargetGroupArn: aws.String(group)})
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

// Delay is the target group's deregistration delay: how long a host's
// connections may take to drain.
func (b *ALBTargets) Delay() time.Duration { return b.delay }

func (b *ALBTargets) target(host string) ([]elbtypes.TargetDescription, error) {
	id, ok := b.ids[host]
	if !ok {
		return nil, fmt.Errorf("balancer: %s is not a host provisioning made", host)
	}
	return []elbtypes.TargetDescription{{Id: aws.String(id), Port: aws.Int32(b.port)}}, nil
}

// Deregister takes host out of the target group and waits until the
// balancer has drained its connections (at most the deregistration
// delay, and Wait beyond it).
func (b *ALBTargets) Deregister(ctx context.Context, host string) error {
	t, err := b.target(host)
	if err != nil {
		return err
	}
	if _, err := b.elb.DeregisterTargets(ctx, &elb.DeregisterTargetsInput{TargetGroupArn: aws.String(b.group), Targets: t}); err != nil {
		return awsUserError("take "+host+" out of the balancer", err)
	}
	fmt.Fprintf(b.o.Log, "%s: draining (deregistration delay %s)\n", host, b.delay)
	return b.waitState(ctx, host, t, b.delay+b.o.Wait, func(s elbtypes.TargetHealthStateEnum) bool {
		return s == elbtypes.TargetHealthStateEnumUnused || s == ""
	})
}

// Register puts host back and waits until the balancer finds it healthy.
func (b *ALBTargets) Register(ctx context.Context, host string) error {
	t, err := b.target(host)
	if err != nil {
		return err
	}
	if _, err := b.elb.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: aws.String(b.group), Targets: t}); err != nil {
		return awsUserError("put "+host+" back in the balancer", err)
	}
	return b.waitState(ctx, host, t, b.o.Wait, func(s elbtypes.TargetHealthStateEnum) bool {
		return s == elbtypes.TargetHealthStateEnumHealthy
	})
}

// waitState polls host's state in the target group until done says so.
func (b *ALBTargets) waitState(ctx context.Context, host string, t []elbtypes.TargetDescription, limit time.Duration, done func(elbtypes.TargetHealthStateEnum) bool) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	last := elbtypes.TargetHealthStateEnum("")
	for {
		out, err := b.elb.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(b.group), Targets: t})
		if err == nil {
			last = ""
			if len(out.TargetHealthDescriptions) > 0 && out.TargetHealthDescriptions[0].TargetHealth != nil {
				last = out.TargetHealthDescriptions[0].TargetHealth.State
			}
			if done(last) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return awsUserError("read "+host+"'s state in the balancer", err)
			}
			return fmt.Errorf("balancer: %s is still %q after %s", host, last, limit)
		case <-time.After(b.o.Poll):
		}
	}
}
