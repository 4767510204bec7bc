package cli

import (
	"bytes"
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

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/lab"
	"github.com/hoistdev/hoist/internal/provision"
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
			a := &app{&deploy.App{Config: &config.Config{Proxy: config.Proxy{ACMERoot: tt.root}}, Repo: repo}}
			got, err := deploy.ACMERoots(a.App)
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

// TestTrustedProxiesOfSetup: setup tells the hosts' proxies to trust
// proxy.trusted_proxies, and the balancer hoist put in front of the
// hosts (the VPC behind an ALB, the lab's twin) as a balancer, with its
// X-Forwarded-For, -Proto and -Port alone. (setup passed none, so behind
// an ALB the app saw http and the balancer as its client.)
func TestTrustedProxiesOfSetup(t *testing.T) {
	const base = "version: 1\napp: horse\nbuild: {command: make, output: dist}\nrun: {command: ./horse}\n"
	tests := map[string]struct {
		yml                string
		proxies, balancers []string
	}{
		"none":             {"proxy: {hosts: [horse.test]}\n", nil, nil},
		"a CDN's":          {"proxy: {hosts: [horse.test], trusted_proxies: [173.245.48.0/20, \"2400:cb00::/32\"]}\n", []string{"173.245.48.0/20", "2400:cb00::/32"}, nil},
		"behind an ALB":    {"proxy: {hosts: [horse.test]}\ninfra: {provider: aws, region: eu-west-1, balancer: alb, ssh_from: [203.0.113.7/32]}\n", nil, []string{"10.77.0.0/16"}},
		"a CDN and an ALB": {"proxy: {hosts: [horse.test], trusted_proxies: [173.245.48.0/20]}\ninfra: {provider: aws, region: eu-west-1, balancer: alb}\n", []string{"173.245.48.0/20"}, []string{"10.77.0.0/16"}},
		"no balancer":      {"proxy: {hosts: [horse.test]}\ninfra: {provider: aws, region: eu-west-1}\n", nil, nil},
		"the lab's twin":   {"proxy: {hosts: [horse.test]}\ninfra: {provider: lab, count: 2, balancer: alb}\n", nil, []string{labTwin(t, "horse")}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			writeApp(t, base+tt.yml)
			cfg, err := config.Parse("hoist.yml", []byte(base+tt.yml))
			if err != nil {
				t.Fatal(err)
			}
			proxies, balancers, err := deploy.TrustedProxies(cfg, hoistHome())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.proxies, proxies); diff != "" {
				t.Errorf("trusted proxies (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.balancers, balancers); diff != "" {
				t.Errorf("trusted balancers (-want +got):\n%s", diff)
			}
		})
	}
}

// labTwin is the address of the balancer twin of app's lab, as a /32.
func labTwin(t *testing.T, app string) string {
	t.Helper()
	_, _, lb, err := lab.LabAddrs(lab.DefaultSubnet(provision.LabName(provision.Spec{App: app, Env: "production"})), 0)
	if err != nil {
		t.Fatal(err)
	}
	return lb.String() + "/32"
}

// TestSetupFingerprintCarriesBucketKeys: what provision's staleSetups
// compares with a host's last setup is made as setup makes it, with the
// backup bucket's keys from the secrets. (It left them out, so with an
// off-host backup every provision set up every host again.) A key that
// changes makes the setup stale, so the hosts get the new one.
func TestSetupFingerprintCarriesBucketKeys(t *testing.T) {
	dir := dayTwoRepo(t)
	// The database on an app host, whose fingerprint covers it.
	yml := strings.ReplaceAll(dayTwoConfig, "10.0.0.9", "10.0.0.1") + `    backup:
      schedule: daily
      offsite:
        bucket: shop-backups
        recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
        access_key_secret: BACKUP_KEY_ID
        secret_key_secret: BACKUP_KEY
`
	if err := os.WriteFile(filepath.Join(dir, "hoist.yml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	set := func(name, val string) {
		t.Helper()
		if _, stderr, err := run(t, dir, "secrets", "set", name, val); err != nil {
			t.Fatalf("secrets set %s: %v\n%s", name, err, stderr)
		}
	}
	set("BACKUP_KEY_ID", "AKIDEXAMPLE")
	set("BACKUP_KEY", "first")
	fingerprint := func() string {
		t.Helper()
		a, err := loadApp(&globalOptions{configPath: filepath.Join(dir, "hoist.yml")}, &streams{out: &bytes.Buffer{}, err: &bytes.Buffer{}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		byHost, err := a.SetupAccessorySpecs()
		if err != nil {
			t.Fatal(err)
		}
		o := byHost["10.0.0.1"][0].Offsite
		if o == nil || o.AccessKeyID != "AKIDEXAMPLE" || o.SecretAccessKey == "" {
			t.Fatalf("accessory db's bucket as setup sends it: %+v, want the keys of the secrets", o)
		}
		spec, err := deploy.SetupSpec(a.App)
		if err != nil {
			t.Fatal(err)
		}
		fps, err := a.SetupFingerprints(spec, byHost, nil)
		if err != nil {
			t.Fatal(err)
		}
		return fps["10.0.0.1"]
	}
	first := fingerprint()
	if again := fingerprint(); again != first {
		t.Errorf("two fingerprints of one hoist.yml differ: %s, %s", first, again)
	}
	set("BACKUP_KEY", "second")
	if rotated := fingerprint(); rotated == first {
		t.Errorf("a new bucket key leaves the fingerprint as it was (%s): the hosts would keep the old key", first)
	}
}
