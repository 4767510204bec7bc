// Package bucket is where hoist keeps things in object storage: an
// S3-compatible bucket and a key prefix, and the aws-sdk-go-v2 client
// that reaches it with bounded retries. The off-host copies of
// accessories' backups (internal/accessory) and the release store
// (internal/store) both use it.
package bucket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// Location is a bucket and the prefix of the keys hoist uses in it,
// with the credentials to reach it when they come from hoist secrets.
type Location struct {
	Bucket string `json:"bucket"`
	// Prefix begins every object's key.
	Prefix string `json:"prefix"`
	Region string `json:"region"`
	// Endpoint is an S3-compatible server's URL, "" for AWS's; with it,
	// objects are addressed by path (ENDPOINT/BUCKET/KEY).
	Endpoint string `json:"endpoint,omitempty"`
	// AccessKeyID and SecretAccessKey come from hoist secrets when the
	// operator set them there; else the standard AWS chain (environment,
	// ~/.aws, the instance's role) is used.
	AccessKeyID     string `json:"access_key_id,omitempty"`
	SecretAccessKey string `json:"secret_access_key,omitempty"`
}

var (
	bucketName   = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	objectPrefix = regexp.MustCompile(`^[A-Za-z0-9._/-]{0,200}$`)
	regionName   = regexp.MustCompile(`^[a-z0-9-]{1,40}$`)
)

// Validate checks a location received from elsewhere (a host checks
// what the client sent).
func (l *Location) Validate() error {
	switch {
	case !bucketName.MatchString(l.Bucket):
		return fmt.Errorf("invalid bucket %q", l.Bucket)
	case !objectPrefix.MatchString(l.Prefix) || strings.Contains(l.Prefix, ".."):
		return fmt.Errorf("invalid prefix %q", l.Prefix)
	case !regionName.MatchString(l.Region):
		return fmt.Errorf("invalid region %q", l.Region)
	case (l.AccessKeyID == "") != (l.SecretAccessKey == ""):
		return errors.New("an access key needs its secret, and the other way round")
	}
	if l.Endpoint != "" {
		if u, err := url.Parse(l.Endpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			return fmt.Errorf("invalid endpoint %q", l.Endpoint)
		}
	}
	return nil
}

// Where names the location for messages: s3://BUCKET/PREFIX.
func (l *Location) Where() string { return "s3://" + l.Bucket + "/" + l.Prefix }

// Key is the key of object name under the prefix.
func (l *Location) Key(name string) string { return l.Prefix + name }

// Retries bounds how a client tries again: at most Attempts tries of
// each request, waiting up to MaxBackoff (exponential, with jitter)
// between two.
type Retries struct {
	Attempts   int
	MaxBackoff time.Duration
}

// Client is the S3 client of the location, which tries each request at
// most r.Attempts times. A server that does not accept a connection
// within 5s, or answers nothing within a minute, counts as a failed
// attempt.
func (l *Location) Client(ctx context.Context, r Retries) (*s3.Client, error) {
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(l.Region)}
	if l.AccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(l.AccessKeyID, l.SecretAccessKey, "")))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: read the AWS configuration: %w", l.Where(), err)
	}
	httpc := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = 5 * time.Second }).
		WithTransportOptions(func(t *http.Transport) { t.ResponseHeaderTimeout = time.Minute })
	return s3.NewFromConfig(cfg, func(so *s3.Options) {
		so.HTTPClient = httpc
		so.Retryer = retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = max(1, r.Attempts)
			if r.MaxBackoff > 0 {
				o.MaxBackoff = r.MaxBackoff
			}
			// Every request gets its attempts: many objects fetched at
			// once from a store that is down all fail alike, within the
			// bound, rather than some at once on an empty quota.
			o.RateLimiter = ratelimit.None
		})
		so.DisableLogOutputChecksumValidationSkipped = true
		if l.Endpoint != "" {
			so.BaseEndpoint = aws.String(l.Endpoint)
			so.UsePathStyle = true
		}
	}), nil
}

// IsNotFound reports whether err says the object (or the bucket) is
// not there.
func IsNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

// IsNoBucket reports whether err says the bucket does not exist.
func IsNoBucket(err error) bool {
	var nb *types.NoSuchBucket
	if errors.As(err, &nb) {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket"
}

// IsPreconditionFailed reports whether err is a conditional write that
// lost: If-Match or If-None-Match did not hold (412), or S3 saw another
// conditional write of the key at the same time (409).
func IsPreconditionFailed(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "PreconditionFailed" || ae.ErrorCode() == "ConditionalRequestConflict") {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusPreconditionFailed || re.HTTPStatusCode() == http.StatusConflict)
}

// IsUnreachable reports whether err is a request that got no answer
// from the server: it could not connect, or the connection broke or
// timed out, on every attempt.
func IsUnreachable(err error) bool {
	var ae smithy.APIError
	if err == nil || errors.As(err, &ae) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}
