// Package kumotest starts kumo, an emulator of AWS's APIs, on loopback
// for tests that drive aws-sdk-go-v2 (Route 53 through libdns/route53).
// kumo proves the calls, not AWS: it checks no signatures and its IDs
// are not AWS's. scripts/deps.sh installs it; under CI=true a missing
// kumo fails the test instead of skipping it. A Cutter stands between
// a client and kumo to cut its connections in the middle of an upload.
package kumotest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/internal/pebbletest"
)

// Version is the kumo release the tests run.
const Version = "v0.33.1"

// Start runs kumo until the test ends and returns its endpoint URL. It
// also sets, for the test, the environment the AWS SDK reads: the
// endpoint, a region and dummy credentials.
func Start(t *testing.T) string { return StartOn(t, "127.0.0.1") }

// StartOn is Start with kumo listening on address host: the lab's
// bridge, for lab hosts to reach.
func StartOn(t *testing.T, host string) string {
	t.Helper()
	bin := binary(t)
	port := pebbletest.FreePort(t)
	pebbletest.Daemon(t, t.TempDir(), nil, bin, "serve", "--host", host, "--port", fmt.Sprint(port))
	addr := net.JoinHostPort(host, fmt.Sprint(port))
	pebbletest.WaitListening(t, addr)
	endpoint := "http://" + addr
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1",
		"AWS_ACCESS_KEY_ID": "kumo", "AWS_SECRET_ACCESS_KEY": "kumo",
		"AWS_PROFILE": "", "AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
	} {
		t.Setenv(k, v)
	}
	return endpoint
}

func binary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("kumo"); err == nil {
		return p
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "kumo")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	msg := "kumo is not installed (GONOSUMDB=github.com/aws/aws-sdk-go-v2 go install github.com/sivchari/kumo/cmd/kumo@" + Version + "; scripts/deps.sh does)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
