//go:build !linux

package proxy

// becomeSubreaper: the proxy's upgrade tests run on Linux, where it runs.
func becomeSubreaper() {}
