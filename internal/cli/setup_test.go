package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/usererr"
)

func TestACMERootsRead(t *testing.T) {
	repo := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	os.WriteFile(filepath.Join(repo, "good.pem"), cert, 0o644)
	os.WriteFile(filepath.Join(repo, "junk.pem"), []byte("not a certificate"), 0o644)
	tests := map[string]struct {
		root    string
		wantErr string // "" for none
	}{
		"none":     {"", ""},
		"relative": {"good.pem", ""},
		"missing":  {"missing.pem", "proxy.acme_root"},
		"not PEM":  {"junk.pem", "holds no PEM certificate"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			a := &app{cfg: &config.Config{Proxy: config.Proxy{ACMERoot: tt.root}}, repo: repo}
			got, err := acmeRoots(a)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if (tt.root == "") != (got == "") {
					t.Errorf("roots = %q", got)
				}
				return
			}
			var ue *usererr.Error
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &ue) {
				t.Errorf("error = %v, want a user error saying %q", err, tt.wantErr)
			}
		})
	}
}
