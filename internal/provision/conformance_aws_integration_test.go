//go:build integration

package provision

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/kumotest"
)

// TestAWSConformance runs the provider conformance suite for aws
// against kumo (integration tier).
func TestAWSConformance(t *testing.T) {
	kumotest.Start(t)
	ctx := context.Background()
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// What AWS publishes for every region; kumo starts empty.
	if _, err := ssm.NewFromConfig(cfg).PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/aws/service/debian/release/12/latest/amd64"),
		Value: aws.String("ami-0123456789abcdef0"), Type: "String"}); err != nil {
		t.Fatal(err)
	}
	testConformance(t, conformance{
		Name: config.ProviderAWS,
		Spec: specOf(t, "proxy: {hosts: [shop.test]}\ninfra: {provider: aws, region: us-east-1, ssh_from: [203.0.113.7/32], instance_type: t2.micro}\n"),
		New: func(t *testing.T, s Spec) Provider {
			p, err := NewAWS(ctx, s, AWSOptions{Config: &cfg, Poll: 10 * time.Millisecond, Wait: 10 * time.Second, Log: testLog{t}})
			if err != nil {
				t.Fatal(err)
			}
			return p
		},
		Timeout: 3 * time.Minute,
	})
}
