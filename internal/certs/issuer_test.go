package certs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/waittest"
)

// What setup writes, the proxy reads back the same; an issuer naming
// both kinds of CA is refused.
func TestReadIssuer(t *testing.T) {
	dir := t.TempDir()
	tests := map[string]struct {
		file    string // "" for no file
		want    Issuer
		wantErr string
	}{
		"no file":     {"", Issuer{}, ""},
		"internal":    {`{"internal":true}`, Issuer{Internal: true}, ""},
		"acme":        {`{"acme_email":"ops@example.com","acme_ca":"https://ca.test/dir %41"}`, Issuer{ACMEEmail: "ops@example.com", ACMECA: "https://ca.test/dir %41"}, ""},
		"both":        {`{"internal":true,"acme_ca":"https://ca.test/dir"}`, Issuer{}, "takes no ACME CA"},
		"not JSON":    {`internal`, Issuer{}, "invalid character"},
		"with roots":  {`{"acme_roots":"PEM"}`, Issuer{ACMERoots: "PEM"}, ""},
		"empty value": {`{}`, Issuer{}, ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".json")
			if tt.file != "" {
				if err := os.WriteFile(path, []byte(tt.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ReadIssuer(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ReadIssuer: %v, want an error saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ReadIssuer = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// Settings that differ have fingerprints that differ.
func TestIssuerFingerprint(t *testing.T) {
	seen := map[string]Issuer{}
	for _, iss := range []Issuer{{}, {Internal: true}, {ACMECA: "a"}, {ACMECA: "b"}, {ACMEEmail: "a"}, {ACMERoots: "a"}} {
		f := iss.Fingerprint()
		if other, ok := seen[f]; ok {
			t.Errorf("%+v and %+v share fingerprint %s", iss, other, f)
		}
		seen[f] = iss
		if iss.Fingerprint() != f {
			t.Errorf("%+v: fingerprint not stable", iss)
		}
	}
}

// Roots given as PEM are used like a roots file; PEM without a
// certificate is refused.
func TestIssuerRoots(t *testing.T) {
	o := Issuer{ACMECA: "https://ca.test/dir", ACMERoots: "not PEM"}.Options(t.TempDir())
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), "hold no PEM certificate") {
		t.Errorf("New with roots that are not PEM: %v", err)
	}
}

// A new manager on the same storage, as a restarted or upgraded proxy
// has, serves the stored certificate as soon as Manage returns: a
// handshake right after never fails.
func TestManageLoadsStoredAtOnce(t *testing.T) {
	storage := t.TempDir()
	first, err := New(Options{Storage: storage, Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Manage(context.Background(), []string{"a.test"}); err != nil {
		t.Fatal(err)
	}
	waittest.Within(t, 10*time.Second, "a certificate issued for a.test", func() bool { return first.Has("a.test") })
	first.Close()
	for i := 0; i < 20; i++ {
		next, err := New(Options{Storage: storage, Internal: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := next.Manage(context.Background(), []string{"a.test"}); err != nil {
			t.Fatal(err)
		}
		has := next.Has("a.test")
		next.Close()
		if !has {
			t.Fatalf("start %d: Manage returned before the stored certificate was in", i)
		}
	}
}
