//go:build integration

package provision

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
)

// TestALBTargetsOnKumo takes a host out of a target group and back, as
// a deploy behind the balancer does, against kumo: the other host stays
// in, the deregistration delay is read from the group, and the host is
// waited on until the balancer reports it healthy again.
func TestALBTargetsOnKumo(t *testing.T) {
	cfg := startKumo(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	elbc := elb.NewFromConfig(cfg)
	tg, err := elbc.CreateTargetGroup(ctx, &elb.CreateTargetGroupInput{Name: aws.String("shop-production"), Protocol: elbtypes.ProtocolEnumHttp,
		Port: aws.Int32(80), VpcId: aws.String("vpc-12345678"), TargetType: elbtypes.TargetTypeEnumInstance})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(tg.TargetGroups[0].TargetGroupArn)
	if _, err := elbc.ModifyTargetGroupAttributes(ctx, &elb.ModifyTargetGroupAttributesInput{TargetGroupArn: aws.String(arn),
		Attributes: []elbtypes.TargetGroupAttribute{{Key: aws.String("deregistration_delay.timeout_seconds"), Value: aws.String("5")}}}); err != nil {
		t.Fatal(err)
	}
	ids := []string{"i-0aaaaaaaaaaaaaaa1", "i-0aaaaaaaaaaaaaaa2"}
	if _, err := elbc.RegisterTargets(ctx, &elb.RegisterTargetsInput{TargetGroupArn: aws.String(arn),
		Targets: []elbtypes.TargetDescription{{Id: aws.String(ids[0]), Port: aws.Int32(80)}, {Id: aws.String(ids[1]), Port: aws.Int32(80)}}}); err != nil {
		t.Fatal(err)
	}
	st := &State{App: "shop", Env: "production", Region: "us-east-1", User: "admin",
		Hosts:     []Host{{Name: "shop-production-0", ID: ids[0], PublicAddr: "203.0.113.10"}, {Name: "shop-production-1", ID: ids[1], PublicAddr: "203.0.113.11"}},
		Resources: []Resource{{Kind: kindTargets, Name: roleTargets, ID: arn}}}
	b, err := NewALBTargets(ctx, st, ALBOptions{Config: &cfg, Poll: 50 * time.Millisecond, Wait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if b.Delay() != 5*time.Second {
		t.Errorf("deregistration delay %s, want the group's 5s", b.Delay())
	}
	health := func() map[string]elbtypes.TargetHealthStateEnum {
		t.Helper()
		out, err := elbc.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(arn),
			Targets: []elbtypes.TargetDescription{{Id: aws.String(ids[0]), Port: aws.Int32(80)}, {Id: aws.String(ids[1]), Port: aws.Int32(80)}}})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]elbtypes.TargetHealthStateEnum{}
		for _, d := range out.TargetHealthDescriptions {
			m[aws.ToString(d.Target.Id)] = d.TargetHealth.State
		}
		return m
	}
	first := st.Targets()[0]
	if err := b.Deregister(ctx, first); err != nil {
		t.Fatal(err)
	}
	if h := health(); h[ids[0]] != elbtypes.TargetHealthStateEnumUnused || h[ids[1]] != elbtypes.TargetHealthStateEnumHealthy {
		t.Errorf("after deregistering %s: %v", first, h)
	}
	if err := b.Register(ctx, first); err != nil {
		t.Fatal(err)
	}
	if h := health(); h[ids[0]] != elbtypes.TargetHealthStateEnumHealthy || h[ids[1]] != elbtypes.TargetHealthStateEnumHealthy {
		t.Errorf("after registering %s again: %v", first, h)
	}
	if err := b.Deregister(ctx, "admin@198.51.100.1"); err == nil {
		t.Error("a host provisioning did not make was taken out")
	}
}
