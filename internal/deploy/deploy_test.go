package deploy

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/build"
	"github.com/hoistdev/hoist/internal/host"
	"github.com/hoistdev/hoist/internal/hostclient"
	"github.com/hoistdev/hoist/internal/hostproto"
)

// activatingHost answers an activate request with two lines of log on
// stderr and success.
type activatingHost struct{}

func (activatingHost) Addr() string { return "h1" }
func (activatingHost) User() string { return "root" }
func (activatingHost) Close() error { return nil }
func (activatingHost) Run(_ context.Context, _ string, stdin io.Reader, stdout, stderr io.Writer) error {
	io.Copy(io.Discard, stdin)
	io.WriteString(stderr, "   0.1s starting release X\n   0.2s warning: prune: no space left\n   1.2s healthy after 1.1s\n")
	io.WriteString(stdout, `{"ok":true}`+"\n")
	return nil
}

// With --verbose, a host's activation log is shown line by line with the
// host's name; without, only its warnings.
func TestActivationLogOnlyWhenVerbose(t *testing.T) {
	for name, tt := range map[string]struct {
		verbose bool
		want    string
	}{
		"verbose": {true, "h1:    0.1s starting release X\nh1:    0.2s warning: prune: no space left\nh1:    1.2s healthy after 1.1s\n"},
		"quiet":   {false, "h1:    0.2s warning: prune: no space left\n"},
	} {
		t.Run(name, func(t *testing.T) {
			var log bytes.Buffer
			o := ShipOptions{Log: &log, LogMu: &sync.Mutex{}, Verbose: tt.verbose}
			c := &hostclient.Client{Conn: activatingHost{}, App: "demo"}
			if err := o.activate(context.Background(), "h1", c, &hostproto.Spec{}, "X", "deploy"); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, log.String()); diff != "" {
				t.Errorf("log (-want +got):\n%s", diff)
			}
		})
	}
}

// TestKeptFilesAreDeltaCandidates: the files a build keeps when it packs
// a release are those a delta is made of, no larger.
func TestKeptFilesAreDeltaCandidates(t *testing.T) {
	if build.MaxKeptFile != host.MaxDeltaFile {
		t.Errorf("build keeps files up to %d bytes, deltas are made of files up to %d", build.MaxKeptFile, host.MaxDeltaFile)
	}
}
