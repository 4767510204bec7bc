package provision

import (
	"errors"
	"net"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"

	"github.com/hoistdev/hoist/internal/usererr"
)

// errorCode is the AWS error code in err, or "".
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// awsUserError turns what AWS answered to op into an error that says
// what to do: credentials, permissions, unknown values, capacity,
// quotas, throttling. It returns nil for a nil err. Retries happened
// before this, in the SDK, for what AWS says may be retried.
func awsUserError(op string, err error) error {
	if err == nil {
		return nil
	}
	code := errorCode(err)
	msg := ""
	var ae smithy.APIError
	if errors.As(err, &ae) {
		msg = ae.ErrorMessage()
	}
	var dns *net.DNSError
	var maxAttempts *retry.MaxAttemptsError
	switch {
	case isNoCredentials(err):
		return usererr.Wrap(err, "cannot %s: no AWS credentials", op).
			WithHint("set AWS_PROFILE to a profile in ~/.aws/config (run `aws sso login` for SSO), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	case anyOf(code, "AuthFailure", "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException", "RequestExpired"):
		return usererr.Wrap(err, "cannot %s: AWS did not accept the credentials", op).
			WithHint("they may have expired: log in again (`aws sso login`), or check AWS_PROFILE and the keys")
	case anyOf(code, "UnauthorizedOperation", "AccessDenied", "AccessDeniedException", "UnauthorizedAccess"):
		return usererr.Wrap(err, "cannot %s: these credentials are not allowed to", op).
			WithHint("give the user or role the EC2, Elastic Load Balancing, ACM and SSM permissions docs/provision.md lists")
	case (code == "InvalidParameterValue" || code == "Unsupported") && mentionsInstanceType(msg) || code == "InvalidInstanceType":
		return usererr.Wrap(err, "cannot %s: the instance type is not offered there", op).
			WithHint("check infra.instance_type (t3.micro, t4g.small...) and that the region and zones offer it")
	case anyOf(code, "InsufficientInstanceCapacity", "InsufficientCapacity", "Unsupported"):
		return usererr.Wrap(err, "cannot %s: AWS has no capacity for it there right now", op).
			WithHint("try another zone (infra.zones) or instance type, or run hoist provision again later; what was made is kept")
	case anyOf(code, "InstanceLimitExceeded", "VcpuLimitExceeded", "VpcLimitExceeded", "AddressLimitExceeded", "TooManyLoadBalancers",
		"TooManyTargetGroups", "LimitExceededException", "LimitExceeded", "SecurityGroupLimitExceeded", "RulesPerSecurityGroupLimitExceeded"):
		return usererr.Wrap(err, "cannot %s: an account quota is reached", op).
			WithHint("raise it in the Service Quotas console for the region, or remove what you no longer use")
	case anyOf(code, "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException") || errors.As(err, &maxAttempts):
		return usererr.Wrap(err, "cannot %s: AWS kept refusing requests this fast, after retrying", op).
			WithHint("wait a minute and run it again; what was made is kept")
	case errors.As(err, &dns):
		return usererr.Wrap(err, "cannot %s: AWS's endpoint could not be found", op).
			WithHint("check infra.region (for example eu-west-1) and this machine's DNS")
	case anyOf(code, "InvalidAMIID.NotFound", "InvalidAMIID.Malformed", "ParameterNotFound"):
		return usererr.Wrap(err, "cannot %s: the image does not exist in this region", op).
			WithHint("check infra.image and infra.region")
	case code == "OptInRequired":
		return usererr.Wrap(err, "cannot %s: the account is not subscribed to it, or the region is not enabled", op).
			WithHint("enable the region in the AWS console (Account settings), or pick another")
	}
	return usererr.Wrap(err, "cannot %s", op)
}

func anyOf(code string, codes ...string) bool {
	for _, c := range codes {
		if code == c {
			return true
		}
	}
	return false
}

// isNoCredentials reports whether the SDK found no credentials at all.
func isNoCredentials(err error) bool {
	s := err.Error()
	return strings.Contains(s, "failed to retrieve credentials") || strings.Contains(s, "failed to refresh cached credentials") ||
		strings.Contains(s, "no EC2 IMDS role found") || strings.Contains(s, "static credentials are empty")
}

func mentionsInstanceType(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "instance type") || strings.Contains(m, "instancetype")
}
