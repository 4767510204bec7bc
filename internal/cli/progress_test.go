package cli

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/vbauerster/mpb/v8"
)

// TestUploadBars drives the bars into a buffer: each host's bar ends as
// done or failed, and log lines come out whole above them.
func TestUploadBars(t *testing.T) {
	var out bytes.Buffer
	b := drawUploadBars(&out, []string{"10.0.0.1", "web2"}, mpb.WithAutoRefresh(), mpb.WithWidth(100))
	ok := b.meter("10.0.0.1", 0, 4096)
	ok.Add(1024)
	ok.Add(3072)
	ok.Done(nil)
	bad := b.meter("web2", 1024, 4096) // a resumed transfer that then fails
	bad.Add(100)
	io.WriteString(b, "web2: uploading r1 (4.0 KiB)\n")
	bad.Done(errors.New("connection lost"))
	b.wait()

	got := out.String()
	for _, want := range []string{"10.0.0.1", "4.0 KiB / 4.0 KiB", "done", "web2", "failed", "web2: uploading r1 (4.0 KiB)\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("bars do not show %q:\n%s", want, got)
		}
	}
}
