package config_test

// The providers and builders register their checks with config from
// their own packages; the tests of config see them all, as hoist does.
import (
	_ "github.com/hoistdev/hoist/internal/build"
	_ "github.com/hoistdev/hoist/internal/provision"
)
