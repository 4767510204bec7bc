package provision

import (
	"context"
	"errors"
	"io"
)

// AWSOptions configure the AWS provider.
type AWSOptions struct {
	Log io.Writer
}

// NewAWS returns the AWS provider for spec.
func NewAWS(ctx context.Context, spec Spec, o AWSOptions) (Provider, error) {
	return nil, errors.New("aws: not built yet")
}
