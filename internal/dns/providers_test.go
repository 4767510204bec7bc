package dns

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/libdns/rfc2136"

	"github.com/hoistdev/hoist/internal/usererr"
)

func TestEveryProviderIsComplete(t *testing.T) {
	for _, name := range Providers() {
		k := providers[name]
		if _, ok := New(name, Credentials{}); ok != nil {
			t.Errorf("%s: %v", name, ok)
		}
		for _, key := range append(append([]string{}, k.settings...), k.required...) {
			if _, ok := k.field(key); !ok {
				t.Errorf("%s lists %q, which is not one of its fields %v", name, key, k.keys())
			}
		}
	}
	for _, want := range []string{"cloudflare", "dnsimple", "rfc2136", "route53"} {
		if _, ok := providers[want]; !ok {
			t.Errorf("no provider %s", want)
		}
	}
}

func TestGatherAndNew(t *testing.T) {
	env := map[string]string{"RFC2136_KEY_NAME": "hoist-key", "RFC2136_KEY": "c2VjcmV0", "RFC2136_KEY_ALG": ""}
	c, err := Gather("rfc2136", map[string]string{"server": "127.0.0.1:53", "key_alg": "hmac-sha256", "key": "from-yml"},
		func(n string) (string, bool) { v, ok := env[n]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	// The credential comes from the environment only; an empty variable
	// leaves hoist.yml's setting.
	want := Credentials{"key_name": "hoist-key", "key": "c2VjcmV0", "key_alg": "hmac-sha256", "server": "127.0.0.1:53"}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("credentials (-want +got):\n%s", diff)
	}
	p, err := New("rfc2136", c)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&rfc2136Provider{rfc2136.Provider{KeyName: "hoist-key", Key: "c2VjcmV0", KeyAlg: "hmac-sha256", Server: "127.0.0.1:53"}}, p); diff != "" {
		t.Errorf("provider (-want +got):\n%s", diff)
	}

	r, err := New("route53", Credentials{"region": "eu-west-1", "max_retries": "2", "route53_max_wait": "30s", "wait_for_route53_sync": "true"})
	if err != nil {
		t.Fatal(err)
	}
	got := &r.(*route53Provider).Provider
	if got.Region != "eu-west-1" || got.MaxRetries != 2 || got.Route53MaxWait != 30*time.Second || !got.WaitForRoute53Sync {
		t.Errorf("route53 provider filled as %+v", got)
	}
}

// TestRFC2136KeyCheckedHere: a TSIG secret that is not base64, or an
// algorithm TSIG does not have, is named here: the server would answer
// BADKEY or BADSIG, which reads as a wrong key. No algorithm is
// tsig-keygen's default.
func TestRFC2136KeyCheckedHere(t *testing.T) {
	base := Credentials{"server": "127.0.0.1:53", "key_name": "k", "key": "c2VjcmV0", "key_alg": "hmac-sha256"}
	with := func(k, v string) Credentials {
		c := maps.Clone(base)
		c[k] = v
		return c
	}
	tests := map[string]struct {
		creds Credentials
		err   string
	}{
		"good":                  {base, ""},
		"algorithm as bind":     {with("key_alg", "HMAC-SHA512."), ""},
		"no algorithm":          {with("key_alg", ""), ""},
		"not base64":            {with("key", "not base64!"), "the TSIG secret (RFC2136_KEY) is not base64"},
		"no such algorithm":     {with("key_alg", "hmac-sha3"), `key_alg "hmac-sha3" is not a TSIG algorithm`},
		"the name as algorithm": {with("key_alg", "hoist-key"), `key_alg "hoist-key" is not a TSIG algorithm`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := New("rfc2136", tt.creds)
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if alg := p.(*rfc2136Provider).KeyAlg; alg == "" {
					t.Error("no algorithm set")
				}
				return
			}
			var ue *usererr.Error
			if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.As(err, &ue) || ue.Hint == "" {
				t.Errorf("error = %v, want a user error with a hint saying %q", err, tt.err)
			}
		})
	}
}

func TestGatherNamesWhatIsMissing(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	_, err := Gather("dnsimple", nil, none)
	if err == nil || !strings.Contains(err.Error(), "DNS provider dnsimple needs DNSIMPLE_API_ACCESS_TOKEN") {
		t.Errorf("error = %v", err)
	}
	_, err = Gather("rfc2136", nil, none)
	if err == nil || !strings.Contains(err.Error(), "RFC2136_SERVER (or dns.settings.server), RFC2136_KEY_NAME (or dns.settings.key_name), RFC2136_KEY") {
		t.Errorf("error = %v", err)
	}
	if _, err := Gather("route53", nil, none); err != nil {
		t.Errorf("route53 without variables (the SDK's own chain): %v", err)
	}
}

func TestCheckSettings(t *testing.T) {
	tests := map[string]struct {
		provider string
		settings map[string]string
		want     string // "" for valid
	}{
		"valid":              {"rfc2136", map[string]string{"server": "ns1.example.com:53", "key_name": "k"}, ""},
		"unknown provider":   {"bind", nil, `unknown DNS provider "bind": hoist knows cloudflare, dnsimple, rfc2136, route53`},
		"unknown setting":    {"dnsimple", map[string]string{"token": "x"}, `dnsimple has no setting "token"`},
		"credential in yml":  {"cloudflare", map[string]string{"api_token": "x"}, "api_token is a credential: keep it out of hoist.yml, in the environment as CLOUDFLARE_API_TOKEN or in `hoist secrets set HOIST_DNS_CLOUDFLARE_API_TOKEN`"},
		"secret key in yml":  {"rfc2136", map[string]string{"key": "x"}, "`hoist secrets set HOIST_DNS_RFC2136_KEY`"},
		"wrong type":         {"route53", map[string]string{"max_retries": "many"}, `AWS_MAX_RETRIES: "many" is not a whole number`},
		"valid route53 wait": {"route53", map[string]string{"route53_max_wait": "2m", "region": "us-east-1"}, ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			err := CheckSettings(tt.provider, tt.settings)
			if tt.want == "" {
				if err != nil {
					t.Errorf("error = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestVariables(t *testing.T) {
	got := Variables("route53")
	for _, want := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION"} {
		if !strings.Contains(strings.Join(got, " "), want) {
			t.Errorf("route53 variables %v lack %s", got, want)
		}
	}
}
