package host

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/hoistdev/hoist/internal/hostclient"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/usererr"
)

// A change of secrets is in the audit trail with who made it and the
// names that changed, never the values; sending the same secrets again
// is not a change.
func TestSecretsChangeIsAudited(t *testing.T) {
	c, _, l := newFakeClient(t, "root")
	c.Actor = &hostproto.Actor{Name: "Ada", Email: "ada@example.com", Login: "ada@laptop"}
	ctx := context.Background()
	for _, env := range []string{"A=\"1\"\nB=\"2\"\n", "A=\"1\"\nB=\"2\"\n", "A=\"one\"\nC=\"3\"\n"} {
		if err := c.SetEnv(ctx, []byte(env)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.Audit(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []hostproto.AuditEntry{
		{App: "hello", Op: "secrets", Detail: "set A, B", Outcome: OutcomeOK, Who: *c.Actor},
		{App: "hello", Op: "secrets", Detail: "set A, C; removed B", Outcome: OutcomeOK, Who: *c.Actor},
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(hostproto.AuditEntry{}, "Time")); diff != "" {
		t.Errorf("audit trail (-want +got):\n%s", diff)
	}
	b, _ := os.ReadFile(l.AuditLog())
	if strings.Contains(string(b), "one") || strings.Contains(string(b), `"3"`) {
		t.Errorf("the audit trail holds a secret's value:\n%s", b)
	}
	if last, _ := c.Audit(ctx, 1); len(last) != 1 || last[0].Detail != "set A, C; removed B" {
		t.Errorf("the newest line = %+v", last)
	}
}

// Beside who the client says asked, a line holds the SSH login the
// host found itself; a client that names someone else changes only
// the former.
func TestAuditHoldsTheHostsSSHLogin(t *testing.T) {
	login := &hostproto.SSHLogin{User: "deploy", Method: "publickey", Key: "ED25519 SHA256:k", From: "10.0.0.9"}
	findSSHLogin, sshLoginOnce = func() *hostproto.SSHLogin { return login }, sync.Once{}
	t.Cleanup(func() { findSSHLogin, sshLoginOnce = func() *hostproto.SSHLogin { return nil }, sync.Once{} })
	c, _, _ := newFakeClient(t, "root")
	c.Actor = &hostproto.Actor{Name: "Someone Else", Login: "root@forged"}
	if err := c.SetEnv(context.Background(), []byte("A=\"1\"\n")); err != nil {
		t.Fatal(err)
	}
	got, err := c.Audit(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Who != *c.Actor || !cmp.Equal(got[0].SSH, login) {
		t.Errorf("audit trail %+v, want who as claimed and the host's login %+v", got, login)
	}
}

func TestReadAuditSkipsACutLine(t *testing.T) {
	_, _, l := newFakeClient(t, "root")
	for i := 0; i < 5; i++ {
		if err := appendAudit(l, hostproto.AuditEntry{App: "hello", Op: "deploy", Release: strings.Repeat("x", i)}); err != nil {
			t.Fatal(err)
		}
	}
	f, _ := os.OpenFile(l.AuditLog(), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"app":"hello","op":"depl`) // a crash mid-line
	f.Close()
	all, err := readAudit(l, 0)
	if err != nil || len(all) != 5 {
		t.Errorf("all lines: %d, %v", len(all), err)
	}
	last, _ := readAudit(l, 2)
	if len(last) != 2 || last[1].Release != "xxxx" {
		t.Errorf("the last 2 = %+v", last)
	}
}

// A host set up for one destination refuses the requests of another,
// and of none, before it does anything.
func TestDestinationGuard(t *testing.T) {
	c, conn, l := newFakeClient(t, "root")
	ctx := context.Background()
	if _, err := c.Status(ctx); err != nil {
		t.Fatalf("a host with nothing recorded: %v", err)
	}
	if err := recordDestination(l, "production"); err != nil {
		t.Fatal(err)
	}
	for _, dest := range []string{"", "staging"} {
		other := &hostclient.Client{Conn: conn, App: "hello", Destination: dest}
		err := other.SetEnv(ctx, []byte("TOKEN=\"staging\"\n"))
		if err == nil || !strings.Contains(err.Error(), "serves hello for destination production") {
			t.Errorf("destination %q: %v, want a refusal", dest, err)
		}
		if _, err := os.Stat(l.EnvFile()); !os.IsNotExist(err) {
			t.Errorf("destination %q wrote the env file", dest)
		}
	}
	c.Destination = "production"
	if err := c.SetEnv(ctx, []byte("TOKEN=\"production\"\n")); err != nil {
		t.Errorf("its own destination: %v", err)
	}
	if got := l.Accessory("db").BackupRequest; !strings.Contains(got, `"destination":"production"`) {
		t.Errorf("the backup timer's request %s does not name the destination", got)
	}
}

// A host set up for no destination (hoist.yml alone) joins one when its
// setup says to adopt it; without that it is refused, and the refusal
// names the command that adopts it.
func TestDestinationAdoptsHostOfNone(t *testing.T) {
	_, conn, l := newFakeClient(t, "root")
	ctx := context.Background()
	if err := recordDestination(l, ""); err != nil {
		t.Fatal(err)
	}
	prod := &hostclient.Client{Conn: conn, App: "hello", Destination: "production"}
	err := prod.SetEnv(ctx, []byte("TOKEN=\"p\"\n"))
	if err == nil || !strings.Contains(err.Error(), "serves hello for no destination") || !strings.Contains(usererr.HintOf(err), "hoist -d production setup --adopt") {
		t.Fatalf("refusal %v (hint %q); want the adopting command", err, usererr.HintOf(err))
	}
	prod.Adopt = true
	if err := prod.SetEnv(ctx, []byte("TOKEN=\"p\"\n")); err != nil {
		t.Fatalf("adopting: %v", err)
	}
	// Only setup records; once recorded, the host is production's.
	if have, _, _ := recordedDestination(l); have != "" {
		t.Errorf("a request other than setup recorded %q", have)
	}
	if err := recordDestination(l, "production"); err != nil {
		t.Fatal(err)
	}
	staging := &hostclient.Client{Conn: conn, App: "hello", Destination: "staging", Adopt: true}
	if err := staging.SetEnv(ctx, nil); err == nil {
		t.Error("adopt took over a host of another destination")
	}
	none := &hostclient.Client{Conn: conn, App: "hello", Adopt: true}
	if err := none.SetEnv(ctx, nil); err == nil {
		t.Error("a setup for no destination adopted a destination's host")
	}
}
