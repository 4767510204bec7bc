package host

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// A change of secrets is in the audit trail with who made it and the
// names that changed, never the values; sending the same secrets again
// is not a change.
func TestSecretsChangeIsAudited(t *testing.T) {
	c, _, l := newFakeClient(t, "root")
	c.Actor = &Actor{Name: "Ada", Email: "ada@example.com", Login: "ada@laptop"}
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
	want := []AuditEntry{
		{App: "hello", Op: "secrets", Detail: "set A, B", Outcome: OutcomeOK, Who: *c.Actor},
		{App: "hello", Op: "secrets", Detail: "set A, C; removed B", Outcome: OutcomeOK, Who: *c.Actor},
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(AuditEntry{}, "Time")); diff != "" {
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

func TestReadAuditSkipsACutLine(t *testing.T) {
	_, _, l := newFakeClient(t, "root")
	for i := 0; i < 5; i++ {
		if err := appendAudit(l, AuditEntry{App: "hello", Op: "deploy", Release: strings.Repeat("x", i)}); err != nil {
			t.Fatal(err)
		}
	}
	f, _ := os.OpenFile(l.AuditLog(), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"app":"hello","op":"depl`) // a crash mid-line
	f.Close()
	all, err := ReadAudit(l, 0)
	if err != nil || len(all) != 5 {
		t.Errorf("all lines: %d, %v", len(all), err)
	}
	last, _ := ReadAudit(l, 2)
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
		other := &Client{Conn: conn, App: "hello", Destination: dest}
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
