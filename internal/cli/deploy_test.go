package cli

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hoistdev/hoist/internal/deploy"
)

// TestDeployReportSaysWhatHappened: a rolling deploy in which one of 12
// hosts failed its health check, six that had switched went back and
// five never switched ends on a line that counts each, as the table
// does, not "failed on 12 of 12".
func TestDeployReportSaysWhatHappened(t *testing.T) {
	out := &deploy.Outcome{Release: "20261207T015917Z-abc1234", Stopped: "web07 failed to switch: health check"}
	for i := range 12 {
		r := &deploy.HostReport{Host: fmt.Sprintf("web%02d", i+1)}
		switch {
		case i < 6:
			r.Status = deploy.StatusRolledBack
		case i == 6:
			r.Status, r.Err, r.Error = deploy.StatusFailed, errors.New("health check: 503"), "health check: 503"
		default:
			r.Status = deploy.StatusNotSwitched
		}
		out.Hosts = append(out.Hosts, r)
	}
	var w bytes.Buffer
	err := deployReport(&w, out)
	if err == nil {
		t.Fatal("a deploy that stopped reports no error")
	}
	want := "deploy of 20261207T015917Z-abc1234 failed on 1 of 12 host(s): 1 failed, 6 rolled back, 5 not switched"
	if err.Error() != want {
		t.Errorf("last line %q\nwant      %q", err, want)
	}
	if n := strings.Count(w.String(), "failed web"); n != 1 || !strings.Contains(w.String(), "failed web07: health check: 503") {
		t.Errorf("%d host(s) printed as failed, want web07 alone:\n%s", n, w.String())
	}
	for _, r := range out.Hosts {
		r.Status, r.Err, r.Error = deploy.StatusDeployed, nil, ""
	}
	out.Stopped = ""
	if err := deployReport(&w, out); err != nil {
		t.Errorf("a deploy that went through: %v", err)
	}
}
