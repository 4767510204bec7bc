//go:build lab

package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// maintenanceAware sends GET / for name through the proxy: a 503 with
// Retry-After is an answer ("maintenance RETRY BODY"), as a 200 is; any
// other status, or a connection error, is a failure.
func maintenanceAware(name string) send {
	return func(c *http.Client, addr string) (string, error) {
		req, err := http.NewRequest("GET", "http://"+addr+"/", nil)
		if err != nil {
			return "", err
		}
		req.Host = name
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if err != nil {
			return "", err
		}
		b := string(raw)
		switch {
		case resp.StatusCode == http.StatusOK:
			return b, nil
		case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
			return "maintenance " + resp.Header.Get("Retry-After") + " " + b, nil
		}
		return "", &statusError{Code: resp.StatusCode, Body: b}
	}
}

// TestMaintenanceUnderTraffic is the proof: maintenance on and
// off under a client sending requests — 503 with Retry-After and the
// app's own page with the message while on, even across a deploy, 200
// after, no connection error — while the app keeps running.
func TestMaintenanceUnderTraffic(t *testing.T) {
	hosts := needLab(t)
	h := hosts[0]
	a := newApp(t, "maint", 3720, hosts[:1], "proxy:\n  hosts: [maint.test]\n  error_pages: errors\n")
	if err := os.MkdirAll(filepath.Join(a.dir, "errors"), 0o755); err != nil {
		t.Fatal(err)
	}
	a.write(t, "errors/503.html", "<!doctype html><title>Down for a moment</title><p>maint is resting: {{message}}</p>\n")
	a.commit(t, "pages")
	var setup []struct {
		Host      string `json:"host"`
		OK        bool   `json:"ok"`
		App       bool   `json:"app"`
		Installed bool   `json:"installed"`
		Facts     struct {
			OS string `json:"os"`
		} `json:"facts"`
	}
	if err := json.Unmarshal([]byte(mustHoist(t, a.dir, "setup", "--json")), &setup); err != nil || len(setup) != 1 ||
		setup[0].Host != h || !setup[0].OK || !setup[0].App || setup[0].Facts.OS != "linux" {
		t.Errorf("setup --json: %+v %v", setup, err)
	}
	first := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))
	ask := maintenanceAware("maint.test")
	client := &http.Client{Timeout: 10 * time.Second}
	once := func() string {
		t.Helper()
		body, err := ask(client, h)
		if err != nil {
			t.Fatalf("GET / through the proxy: %v", err)
		}
		return strings.TrimSpace(body)
	}
	if got := once(); got != "hello from release "+first {
		t.Fatalf("before maintenance: %q", got)
	}
	tr := startTraffic(t, []string{h}, ask)

	var switched []struct {
		Host  string `json:"host"`
		OK    bool   `json:"ok"`
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(mustHoist(t, a.dir, "maintenance", "on", "--message", "Migrating <the> notes", "--retry-after", "2m", "--json")), &switched); err != nil ||
		len(switched) != 1 || switched[0].Host != h || !switched[0].OK || switched[0].State != "on" {
		t.Errorf("maintenance on --json: %+v %v", switched, err)
	}
	// The verb returns once the proxy answers so: no wait.
	want := "maintenance 120 <!doctype html><title>Down for a moment</title><p>maint is resting: Migrating &lt;the&gt; notes</p>"
	if got := once(); got != want {
		t.Fatalf("in maintenance: %q\nwant %q", got, want)
	}
	// The app keeps running: its unit, and the proxy's checks of it.
	var st []struct {
		Status struct {
			State string `json:"state"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(mustHoist(t, a.dir, "status", "--json")), &st); err != nil || len(st) != 1 || st[0].Status.State != "active" {
		t.Errorf("status during maintenance: %+v %v", st, err)
	}
	var ms []struct {
		Maintenance *struct {
			Message    string `json:"message"`
			RetryAfter string `json:"retry_after"`
		} `json:"maintenance"`
	}
	if err := json.Unmarshal([]byte(mustHoist(t, a.dir, "maintenance", "status", "--json")), &ms); err != nil || len(ms) != 1 ||
		ms[0].Maintenance == nil || ms[0].Maintenance.Message != "Migrating <the> notes" || ms[0].Maintenance.RetryAfter != "2m0s" {
		t.Errorf("maintenance status --json: %+v %v", ms, err)
	}

	// A deploy meanwhile keeps maintenance on.
	a.change(t)
	second := strings.TrimSpace(mustHoist(t, a.dir, "deploy"))
	if got := once(); got != want {
		t.Fatalf("after a deploy in maintenance: %q", got)
	}

	if err := json.Unmarshal([]byte(mustHoist(t, a.dir, "maintenance", "off", "--json")), &switched); err != nil ||
		len(switched) != 1 || !switched[0].OK || switched[0].State != "off" {
		t.Errorf("maintenance off --json: %+v %v", switched, err)
	}
	if got := once(); got != "hello from release "+second {
		t.Fatalf("after maintenance: %q, want release %s", got, second)
	}
	tr.finish()
	tr.check(t, 50)
	if tr.answers(want) == 0 {
		t.Errorf("the client never saw the maintenance page: %v", tr.seen())
	}
	if tr.answers(first) == 0 || tr.answers(second) == 0 {
		t.Errorf("the client did not see both releases serve, before and after: %v", tr.seen())
	}

	// Back to the first release, as --json says.
	var back []struct {
		Host    string `json:"host"`
		OK      bool   `json:"ok"`
		Release string `json:"release"`
	}
	if err := json.Unmarshal([]byte(mustHoist(t, a.dir, "rollback", "--json")), &back); err != nil || len(back) != 1 || !back[0].OK || back[0].Release != first {
		t.Errorf("rollback --json: %+v %v, want release %s", back, err, first)
	}
	var locks []struct {
		Host string          `json:"host"`
		Lock json.RawMessage `json:"lock"`
	}
	if err := json.Unmarshal([]byte(mustHoist(t, a.dir, "lock", "status", "--json")), &locks); err != nil || len(locks) != 1 || string(locks[0].Lock) != "null" {
		t.Errorf("lock status --json: %+v %v", locks, err)
	}

	audit := mustHoist(t, a.dir, "audit")
	for _, op := range []string{"maintenance on", "maintenance off", "rollback"} {
		if !strings.Contains(audit, op) {
			t.Errorf("the audit trail has no %q:\n%s", op, audit)
		}
	}
	if !strings.Contains(audit, "Migrating <the> notes") {
		t.Errorf("the audit trail does not keep the message:\n%s", audit)
	}
}
