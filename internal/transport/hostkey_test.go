package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/hoistdev/hoist/internal/usererr"
)

// asker stands for the person at the terminal: it answers each
// question with the next answer and keeps the questions.
type asker struct {
	mu        sync.Mutex
	answers   []bool
	questions []string
}

func (a *asker) confirm(q string) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.questions = append(a.questions, q)
	if len(a.answers) == 0 {
		return false, errors.New("asked more than expected")
	}
	yes := a.answers[0]
	a.answers = a.answers[1:]
	return yes, nil
}

func tryDial(target string, o Options) (*SSH, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Dial(ctx, target, o)
}

func trusted(t *testing.T, f *fixture) string {
	t.Helper()
	b, err := os.ReadFile(f.trust)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// A host never seen before: on a terminal, hoist shows its key's type
// and fingerprint and asks; yes records it, no refuses it.
func TestNewHostKeyAsked(t *testing.T) {
	f := newFixture(t)
	fp := ssh.FingerprintSHA256(f.srv.hostKey.PublicKey())
	o := f.opts()
	o.AcceptNewHostKeys = false
	declined := &asker{answers: []bool{false}}
	o.ConfirmHostKey = declined.confirm
	_, err := tryDial(f.srv.addr, o)
	var hk *HostKeyError
	if !errors.As(err, &hk) || !strings.Contains(err.Error(), "not accepted") {
		t.Fatalf("declined: err = %v, want the host refused", err)
	}
	if len(declined.questions) != 1 {
		t.Fatalf("asked %d times, want once", len(declined.questions))
	}
	q := declined.questions[0]
	for _, want := range []string{f.srv.addr, "ssh-ed25519", fp, "(yes/no)"} {
		if !strings.Contains(q, want) {
			t.Errorf("the question does not show %q:\n%s", want, q)
		}
	}
	if got := trusted(t, f); got != "" {
		t.Errorf("a declined key was recorded: %q", got)
	}

	accepted := &asker{answers: []bool{true}}
	o.ConfirmHostKey = accepted.confirm
	c, err := tryDial(f.srv.addr, o)
	if err != nil {
		t.Fatalf("accepted: %v", err)
	}
	c.Close()
	if got := trusted(t, f); !strings.Contains(got, "ssh-ed25519") {
		t.Errorf("the accepted key was not recorded: %q", got)
	}
	// Known now: not asked again.
	again := &asker{}
	o.ConfirmHostKey = again.confirm
	c, err = tryDial(f.srv.addr, o)
	if err != nil {
		t.Fatalf("known host: %v", err)
	}
	c.Close()
	if len(again.questions) != 0 {
		t.Errorf("a known host was asked about: %q", again.questions)
	}
}

// Without a terminal to ask on, a new host is refused, and the error
// names the flag and the ssh_config setting that accept new hosts.
func TestNewHostKeyRefusedWithoutTerminal(t *testing.T) {
	f := newFixture(t)
	o := f.opts()
	o.AcceptNewHostKeys = false
	_, err := tryDial(f.srv.addr, o)
	var hk *HostKeyError
	if !errors.As(err, &hk) {
		t.Fatalf("err = %v, want a refused host key", err)
	}
	fp := ssh.FingerprintSHA256(f.srv.hostKey.PublicKey())
	if !strings.Contains(err.Error(), fp) {
		t.Errorf("the error does not show the key's fingerprint: %v", err)
	}
	hint := usererr.HintOf(err)
	for _, want := range []string{"--accept-new-host-keys", "StrictHostKeyChecking accept-new"} {
		if !strings.Contains(hint, want) {
			t.Errorf("hint %q does not name %s", hint, want)
		}
	}
	if got := trusted(t, f); got != "" {
		t.Errorf("the key was recorded: %q", got)
	}
}

// A changed key is refused, and nobody is asked about it.
func TestChangedHostKeyNotAsked(t *testing.T) {
	f := newFixture(t)
	other, _ := newKey(t)
	os.MkdirAll(filepath.Dir(f.trust), 0o700)
	if err := os.WriteFile(f.trust, []byte(knownhosts.Line([]string{f.srv.addr}, other.PublicKey())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &asker{answers: []bool{true}}
	o := f.opts()
	o.ConfirmHostKey = a.confirm
	if _, err := tryDial(f.srv.addr, o); err == nil || !strings.Contains(err.Error(), "has changed") {
		t.Fatalf("err = %v, want the changed key refused", err)
	}
	if len(a.questions) != 0 {
		t.Errorf("asked about a changed key: %q", a.questions)
	}
}

// A jump host is a host like the others: asked about on a terminal,
// refused without one, each hop on its own.
func TestNewJumpHostKeyAsked(t *testing.T) {
	f := newFixture(t)
	jump := startServer(t, mustPub(t, f.key))
	jh, jp, _ := net.SplitHostPort(jump.addr)
	th, tp, _ := net.SplitHostPort(f.srv.addr)
	cfg := filepath.Join(f.home, "config")
	os.WriteFile(cfg, []byte(fmt.Sprintf("Host bastion\n  HostName %s\n  Port %s\nHost app\n  HostName %s\n  Port %s\n  ProxyJump bastion\n", jh, jp, th, tp)), 0o600)
	o := f.opts()
	o.AcceptNewHostKeys = false
	o.SSHConfigFile = cfg

	_, err := tryDial("app", o)
	if err == nil || !strings.Contains(err.Error(), "jump host bastion") || !strings.Contains(err.Error(), ssh.FingerprintSHA256(jump.hostKey.PublicKey())) {
		t.Fatalf("no terminal: err = %v, want the jump host refused", err)
	}
	if got := trusted(t, f); got != "" {
		t.Errorf("recorded without asking: %q", got)
	}

	declined := &asker{answers: []bool{false}}
	o.ConfirmHostKey = declined.confirm
	if _, err := tryDial("app", o); err == nil || !strings.Contains(err.Error(), "jump host bastion") {
		t.Fatalf("jump host declined: err = %v", err)
	}

	a := &asker{answers: []bool{true, true}}
	o.ConfirmHostKey = a.confirm
	c, err := tryDial("app", o)
	if err != nil {
		t.Fatalf("both accepted: %v", err)
	}
	c.Close()
	if len(a.questions) != 2 || !strings.Contains(a.questions[0], ssh.FingerprintSHA256(jump.hostKey.PublicKey())) ||
		!strings.Contains(a.questions[1], ssh.FingerprintSHA256(f.srv.hostKey.PublicKey())) {
		t.Errorf("questions %q, want the jump host's key, then the target's", a.questions)
	}
	if n := strings.Count(trusted(t, f), "\n"); n != 2 {
		t.Errorf("want both hops' keys recorded, got:\n%s", trusted(t, f))
	}
}

// ssh_config's StrictHostKeyChecking: accept-new (or no) records a new
// host without asking; yes refuses it without asking.
func TestStrictHostKeyChecking(t *testing.T) {
	for _, tt := range []struct {
		value  string
		accept bool
	}{{"accept-new", true}, {"no", true}, {"yes", false}, {"ask", false}} {
		t.Run(tt.value, func(t *testing.T) {
			f := newFixture(t)
			th, tp, _ := net.SplitHostPort(f.srv.addr)
			cfg := filepath.Join(f.home, "config")
			os.WriteFile(cfg, []byte(fmt.Sprintf("Host app\n  HostName %s\n  Port %s\n  StrictHostKeyChecking %s\n", th, tp, tt.value)), 0o600)
			o := f.opts()
			o.AcceptNewHostKeys = false
			o.SSHConfigFile = cfg
			c, err := tryDial("app", o)
			if tt.accept != (err == nil) {
				t.Fatalf("err = %v, want accepted %v", err, tt.accept)
			}
			if c != nil {
				c.Close()
			}
			if recorded := trusted(t, f) != ""; recorded != tt.accept {
				t.Errorf("recorded %v, want %v", recorded, tt.accept)
			}
			if tt.value == "yes" && !strings.Contains(err.Error(), "StrictHostKeyChecking yes") {
				t.Errorf("err = %v, want it to name the setting that refused", err)
			}
		})
	}
}

// The person may take longer to answer than the connect timeout: the
// handshake waits for them.
func TestNewHostKeyAnswerSlowerThanConnectTimeout(t *testing.T) {
	f := newFixture(t)
	o := f.opts()
	o.AcceptNewHostKeys = false
	o.ConnectTimeout = 300 * time.Millisecond
	o.ConfirmHostKey = func(string) (bool, error) {
		<-time.After(900 * time.Millisecond) // a person reading the fingerprint
		return true, nil
	}
	c, err := tryDial(f.srv.addr, o)
	if err != nil {
		t.Fatalf("a slow yes: %v", err)
	}
	c.Close()
}
