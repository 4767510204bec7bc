package transport

import (
	"context"
	"os"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestSignersLogIn: a key held in memory (a CI job's, from its
// environment) logs in with no key file at all.
func TestSignersLogIn(t *testing.T) {
	f := newFixture(t)
	pemBytes, err := os.ReadFile(f.key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.ParsePrivateKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	o := f.opts()
	o.IdentityFiles = nil
	t.Setenv("SSH_AUTH_SOCK", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c, err := Dial(ctx, f.srv.addr, o); err == nil {
		c.Close()
		t.Fatal("logged in with no key")
	}
	o.Signers = []ssh.Signer{s}
	c := dial(t, f.srv.addr, o)
	if err := c.Run(ctx, "true", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
}
