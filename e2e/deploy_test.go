//go:build lab

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestDeployLifecycle walks one app through the skeleton's promises, in
// order: setup, deploy, second deploy, rollback, a release that fails its
// health check, a concurrent deploy that is refused, status, logs, exec.
func TestDeployLifecycle(t *testing.T) {
	hosts := needLab(t)
	a := newApp(t, "hello", 3000, hosts, "")

	mustHoist(t, a.dir, "setup")
	// A second setup changes nothing and still succeeds.
	mustHoist(t, a.dir, "setup")

	var r1, r2 string
	t.Run("deploy", func(t *testing.T) {
		r1 = strings.TrimSpace(mustHoist(t, a.dir, "deploy"))
		a.wantServed(t, hosts, r1)
	})
	t.Run("second deploy", func(t *testing.T) {
		a.change(t)
		r2 = strings.TrimSpace(mustHoist(t, a.dir, "deploy"))
		if r2 == r1 {
			t.Fatalf("second deploy reused release id %s", r1)
		}
		a.wantServed(t, hosts, r2)
		var out []hostReleases
		if err := json.Unmarshal([]byte(mustHoist(t, a.dir, "releases", "--json")), &out); err != nil {
			t.Fatal(err)
		}
		for _, hr := range out {
			if got := hr.current(); got != r2 || len(hr.Releases) != 2 {
				t.Errorf("%s: releases %+v, want 2 with %s current", hr.Host, hr.Releases, r2)
			}
		}
	})
	t.Run("rollback", func(t *testing.T) {
		mustHoist(t, a.dir, "rollback")
		a.wantServed(t, hosts, r1)
		mustHoist(t, a.dir, "rollback", r2)
		a.wantServed(t, hosts, r2)
	})
	t.Run("unchanged source reuses the release", func(t *testing.T) {
		a.commit(t, "a commit that changes no file")
		stdout, stderr, err := hoist(context.Background(), a.dir, "deploy")
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		if got := strings.TrimSpace(stdout); got != r2 || !strings.Contains(stderr, "reusing release "+r2) {
			t.Errorf("deploy of an unchanged tree gave %q:\n%s", got, stderr)
		}
		a.wantServed(t, hosts, r2)
	})
	t.Run("failed health check keeps the previous release", func(t *testing.T) {
		a.edit(t, "main.go", `fmt.Fprintln(w, "ok")`, `log.Print("health check is broken on purpose"); w.WriteHeader(500)`)
		stderr := failHoist(t, a.dir, "deploy")
		for _, want := range []string{"failed its health check", "GET /up answered 500", "health check is broken on purpose", "deploy of"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr does not say %q:\n%s", want, stderr)
			}
		}
		a.wantServed(t, hosts, r2)
		if t.Failed() {
			t.Logf("journal:\n%s", mustHoist(t, a.dir, "logs", "-n", "60"))
		}
		st := status(t, a)
		for _, s := range st {
			if s.Status.Current != r2 || s.Status.State != "active" {
				t.Errorf("%s: status %+v, want %s active", s.Host, s.Status, r2)
			}
		}
		a.edit(t, "main.go", `log.Print("health check is broken on purpose"); w.WriteHeader(500)`, `fmt.Fprintln(w, "ok")`)
	})
	t.Run("concurrent deploy is refused", func(t *testing.T) {
		// A slow-booting release keeps the first deploy's lock for a while.
		a.writeConfig(t, hosts, "")
		a.edit(t, "hoist.yml", "run:\n", "run:\n  env:\n    STARTUP_DELAY: 4s\n")
		results := hoistAtOnce(a.dir, 2, "deploy")
		var won, refused []hoistRun
		for _, r := range results {
			if r.err == nil {
				won = append(won, r)
			} else {
				refused = append(refused, r)
			}
		}
		if len(won) != 1 || len(refused) != 1 {
			t.Fatalf("want one deploy to win and one refused, got %d and %d:\n%+v", len(won), len(refused), results)
		}
		for _, want := range []string{"another deploy holds the lock", "since", "(pid "} {
			if !strings.Contains(refused[0].stderr, want) {
				t.Errorf("refusal does not say %q:\n%s", want, refused[0].stderr)
			}
		}
		a.wantServed(t, hosts, strings.TrimSpace(won[0].stdout))
		// The winner released its lock.
		for _, s := range status(t, a) {
			if s.Status.Lock != nil {
				t.Errorf("%s still locked by %+v", s.Host, s.Status.Lock)
			}
		}
	})
	t.Run("status logs exec", func(t *testing.T) {
		for _, st := range status(t, a) {
			if h := st.Status.Host; h == nil || h.OS != "linux" || h.Arch != runtime.GOARCH || !strings.HasPrefix(h.GLIBC, "2.") {
				t.Errorf("%s: setup recorded host facts %+v", st.Host, h)
			}
		}
		out := mustHoist(t, a.dir, "status")
		for _, h := range hosts {
			if !strings.Contains(out, h) || !strings.Contains(out, "active") {
				t.Errorf("status does not show %s active:\n%s", h, out)
			}
		}
		logs := mustHoist(t, a.dir, "logs", "-n", "200")
		for _, h := range hosts {
			if !strings.Contains(logs, h+" | ") || !strings.Contains(logs, "listening on :3000") {
				t.Errorf("logs lack %s's lines:\n%s", h, logs)
			}
		}
		got := mustHoist(t, a.dir, "exec", "--host", hosts[0], "--", "sh", "-c", "id -un; echo $HOIST_RELEASE; pwd")
		cur := status(t, a)[0].Status.Current
		want := "hoist-hello\n" + cur + "\n/var/lib/hoist/hello/releases/" + cur + "\n"
		if got != want {
			t.Errorf("exec printed %q, want %q", got, want)
		}
		// The unit's hardening, as systemd scores it (docs/hosts.md).
		wantExposure(t, hosts[0], "hoist-hello@"+cur+".service", 2.0)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _, err := hoist(ctx, a.dir, "exec", "--", "sh", "-c", "exit 7")
		if code := exitCode(err); code != 7 {
			t.Errorf("exec of `exit 7` exited %d", code)
		}
	})
}

type hostReleases struct {
	Host     string `json:"host"`
	Releases []struct {
		ID      string `json:"id"`
		Current bool   `json:"current"`
		Failed  bool   `json:"failed"`
	} `json:"releases"`
	Error string `json:"error"`
}

func (h hostReleases) current() string {
	for _, r := range h.Releases {
		if r.Current {
			return r.ID
		}
	}
	return ""
}

type hostStatus struct {
	Host   string `json:"host"`
	Status struct {
		Current string `json:"current"`
		State   string `json:"state"`
		Lock    *struct {
			Holder string `json:"holder"`
		} `json:"lock"`
		Host *struct {
			OS    string `json:"os"`
			Arch  string `json:"arch"`
			GLIBC string `json:"glibc"`
		} `json:"host"`
	} `json:"status"`
	Error string `json:"error"`
}

func status(t *testing.T, a *appRepo) []hostStatus {
	t.Helper()
	var out []hostStatus
	if err := json.Unmarshal([]byte(mustHoist(t, a.dir, "status", "--json")), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// wantExposure checks the exposure systemd-analyze security gives unit
// on host, 0 (confined) to 10 (not at all), is at most limit.
func wantExposure(t *testing.T, host, unit string, limit float64) {
	t.Helper()
	var sec strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := dialLab(t, host).Run(ctx, "systemd-analyze security --no-pager "+unit+" | tail -n 1", nil, &sec, nil); err != nil {
		t.Fatal(err)
	}
	var score float64
	line := strings.TrimSpace(sec.String())
	if _, err := fmt.Sscanf(line[strings.LastIndex(line, ": ")+2:], "%g", &score); err != nil || score > limit {
		t.Errorf("systemd-analyze security: %q, want an exposure of at most %g", line, limit)
	}
	t.Logf("systemd-analyze security: %s", line)
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee interface{ ExitCode() int }
	if e, ok := err.(interface{ ExitCode() int }); ok {
		ee = e
		return ee.ExitCode()
	}
	return -1
}
