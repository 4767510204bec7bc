package provision

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/hoistdev/hoist/internal/usererr"
)

// answer is what the injected middleware gives one attempt of an
// operation: an error shaped as AWS sends it, or an output.
type answer func(attempt int) (any, error)

// injector answers every call in place of AWS, per operation, and counts
// the attempts each got (the SDK's retries included). It runs after the
// retry and signing middleware, so that both still do their work.
type injector struct {
	mu       sync.Mutex
	answers  map[string]answer
	attempts map[string]int
}

func (in *injector) middleware(stack *middleware.Stack) error {
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("hoist-test-inject",
		func(ctx context.Context, _ middleware.FinalizeInput, _ middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			op := middleware.GetOperationName(ctx)
			in.mu.Lock()
			in.attempts[op]++
			n := in.attempts[op]
			in.mu.Unlock()
			a, ok := in.answers[op]
			if !ok {
				return middleware.FinalizeOutput{}, middleware.Metadata{}, errors.New("test: no answer for " + op)
			}
			out, err := a(n)
			return middleware.FinalizeOutput{Result: out}, middleware.Metadata{}, err
		}), middleware.After)
}

func apiErr(code, msg string) error { return &smithy.GenericAPIError{Code: code, Message: msg} }

// emptyWorld answers the calls Observe makes with nothing found.
func emptyWorld() map[string]answer {
	return map[string]answer{
		"DescribeTags":          func(int) (any, error) { return &ec2.DescribeTagsOutput{}, nil },
		"DescribeLoadBalancers": func(int) (any, error) { return &elb.DescribeLoadBalancersOutput{}, nil },
		"DescribeTargetGroups":  func(int) (any, error) { return &elb.DescribeTargetGroupsOutput{}, nil },
		"GetParameter": func(int) (any, error) {
			return &ssm.GetParameterOutput{Parameter: &ssmtypes.Parameter{Value: aws.String("ami-0123456789abcdef0")}}, nil
		},
		"DescribeInstances":      func(int) (any, error) { return &ec2.DescribeInstancesOutput{}, nil },
		"DescribeSecurityGroups": func(int) (any, error) { return &ec2.DescribeSecurityGroupsOutput{}, nil },
	}
}

func injected(t *testing.T, creds aws.CredentialsProvider, answers map[string]answer) (*awsProvider, *injector) {
	t.Helper()
	in := &injector{answers: answers, attempts: map[string]int{}}
	if creds == nil {
		creds = credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")
	}
	cfg := aws.Config{
		Region: "us-east-1", Credentials: creds, APIOptions: []func(*middleware.Stack) error{in.middleware},
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 4
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
			})
		},
	}
	spec := Spec{App: "shop", Env: "production", Provider: "aws", Region: "us-east-1", Zones: []string{"us-east-1a"},
		InstanceType: "t3.micro", Count: 1, DiskGB: 8, Image: "debian-12", Balancer: "none", User: "admin", SSHFrom: []string{"203.0.113.7/32"}}
	p, err := NewAWS(context.Background(), spec, AWSOptions{Config: &cfg, Poll: time.Millisecond, Wait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return p.(*awsProvider), in
}

func with(base map[string]answer, op string, a answer) map[string]answer {
	base[op] = a
	return base
}

func always(err error) answer { return func(int) (any, error) { return nil, err } }

// TestAWSErrorsUsersMeet drives the provider into the errors users meet,
// shaped as AWS sends them, and checks each says what to do — and that
// only what AWS marks retryable was tried again.
func TestAWSErrorsUsersMeet(t *testing.T) {
	noCreds := aws.NewCredentialsCache(aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{}, errors.New("failed to retrieve credentials: no environment variables, profiles or SSO session")
	}))
	run := func(p *awsProvider) error {
		if _, err := p.Observe(context.Background()); err != nil {
			return err
		}
		p.found.ids[subnetRole("us-east-1a")], p.found.ids[roleHostsSG] = "subnet-1", "sg-1"
		return p.createInstance(context.Background(), Resource{Kind: kindInstance, Name: "shop-production-0", Props: "x"},
			ApplyEnv{UserData: func(context.Context, string) ([]byte, error) { return []byte("#cloud-config\n"), nil }})
	}
	tests := map[string]struct {
		creds    aws.CredentialsProvider
		answers  map[string]answer
		msg      string // in the error
		hint     string // in its hint
		op       string // and this operation was attempted
		attempts int    // this many times: 1 unless AWS says to retry
	}{
		// Without credentials nothing reaches AWS.
		"no credentials": {noCreds, emptyWorld(), "no AWS credentials", "AWS_PROFILE", "DescribeTags", 0},
		"expired credentials": {nil, with(emptyWorld(), "DescribeTags", always(apiErr("AuthFailure", "AWS was not able to validate the provided access credentials"))),
			"did not accept the credentials", "aws sso login", "DescribeTags", 1},
		"unauthorized": {nil, with(emptyWorld(), "RunInstances", always(apiErr("UnauthorizedOperation", "You are not authorized to perform this operation."))),
			"not allowed", "permissions", "RunInstances", 1},
		"unknown instance type": {nil, with(emptyWorld(), "RunInstances", always(apiErr("InvalidParameterValue", "Invalid value 't9.micro' for InstanceType."))),
			"instance type is not offered", "infra.instance_type", "RunInstances", 1},
		"no capacity": {nil, with(emptyWorld(), "RunInstances", always(apiErr("InsufficientInstanceCapacity", "We currently do not have sufficient t3.micro capacity in the Availability Zone you requested (us-east-1a)."))),
			"no capacity", "another zone", "RunInstances", 1},
		"quota": {nil, with(emptyWorld(), "RunInstances", always(apiErr("VcpuLimitExceeded", "You have requested more vCPU capacity than your current vCPU limit of 0 allows"))),
			"quota", "Service Quotas", "RunInstances", 1},
		"unknown region": {nil, with(emptyWorld(), "DescribeTags", always(&net.DNSError{Err: "no such host", Name: "ec2.xx-moon-1.amazonaws.com", IsNotFound: true})),
			"endpoint could not be found", "infra.region", "DescribeTags", 1},
		"throttled throughout": {nil, with(emptyWorld(), "DescribeTags", always(apiErr("RequestLimitExceeded", "Request limit exceeded."))),
			"kept refusing", "wait a minute", "DescribeTags", 4},
		"image parameter missing": {nil, with(emptyWorld(), "GetParameter", always(apiErr("ParameterNotFound", ""))),
			"image does not exist", "infra.image", "GetParameter", 1},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			p, in := injected(t, tt.creds, tt.answers)
			err := run(p)
			if err == nil {
				t.Fatal("no error")
			}
			if !usererr.Is(err) || !strings.Contains(err.Error(), tt.msg) || !strings.Contains(usererr.HintOf(err), tt.hint) {
				t.Errorf("error %q, hint %q; want %q and a hint with %q", err, usererr.HintOf(err), tt.msg, tt.hint)
			}
			if got := in.attempts[tt.op]; got != tt.attempts {
				t.Errorf("%s attempted %d times, want %d", tt.op, got, tt.attempts)
			}
		})
	}
}

// TestThrottlingIsRetried: throttled twice, the third attempt goes
// through, and the caller never sees the throttling.
func TestThrottlingIsRetried(t *testing.T) {
	answers := with(emptyWorld(), "DescribeTags", func(n int) (any, error) {
		if n < 3 {
			return nil, apiErr("Throttling", "Rate exceeded")
		}
		return &ec2.DescribeTagsOutput{}, nil
	})
	p, in := injected(t, nil, answers)
	if _, err := p.Observe(context.Background()); err != nil {
		t.Fatal(err)
	}
	if in.attempts["DescribeTags"] != 3 {
		t.Errorf("DescribeTags attempted %d times, want 3", in.attempts["DescribeTags"])
	}
}

// TestDeleteWaitsForDependencies: AWS answers DependencyViolation while
// a deleted instance still holds its network interface; the delete is
// tried again until it goes through, and only for as long as allowed.
func TestDeleteWaitsForDependencies(t *testing.T) {
	answers := with(emptyWorld(), "DeleteSecurityGroup", func(n int) (any, error) {
		if n < 3 {
			return nil, apiErr("DependencyViolation", "resource sg-1 has a dependent object")
		}
		return &ec2.DeleteSecurityGroupOutput{}, nil
	})
	p, in := injected(t, nil, answers)
	if err := p.remove(context.Background(), Resource{Kind: kindSG, Name: roleHostsSG, ID: "sg-1"}); err != nil {
		t.Fatal(err)
	}
	if in.attempts["DeleteSecurityGroup"] != 3 {
		t.Errorf("DeleteSecurityGroup attempted %d times, want 3", in.attempts["DeleteSecurityGroup"])
	}
	stuck, _ := injected(t, nil, with(emptyWorld(), "DeleteVpc", always(apiErr("DependencyViolation", "The vpc has dependencies"))))
	if err := stuck.remove(context.Background(), Resource{Kind: kindVPC, Name: roleVPC, ID: "vpc-1"}); err == nil || !strings.Contains(err.Error(), "waited") {
		t.Errorf("a dependency that never goes: %v", err)
	}
}
