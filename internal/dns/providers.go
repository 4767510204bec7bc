package dns

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/libdns/cloudflare"
)

// providers is every DNS provider hoist can drive, by the name hoist.yml
// gives it. Adding a libdns provider is one line here: its Go type, the
// prefix of its environment variables, the fields hoist.yml may set
// (everything else is a credential), and the fields it cannot work
// without.
var providers = map[string]kind{
	"cloudflare": kindOf[cloudflare.Provider]("CLOUDFLARE", nil, []string{"api_token"}),
	"dnsimple":   kindOf[dnsimpleProvider]("DNSIMPLE", []string{"account_id", "api_url"}, []string{"api_access_token"}),
	"rfc2136":    kindOf[rfc2136Provider]("RFC2136", []string{"server", "key_name", "key_alg"}, []string{"server", "key_name", "key"}),
	"route53":    kindOf[route53Provider]("AWS", []string{"region", "hosted_zone_id", "max_retries", "route53_max_wait", "wait_for_route53_sync", "skip_route53_sync_on_delete"}, nil),
}

// kind is one provider of the table: how to make it and fill it.
type kind struct {
	typ      reflect.Type // the provider struct
	prefix   string       // of its environment variables: PREFIX_FIELD
	settings []string     // fields hoist.yml may set; the others are credentials
	required []string
}

func kindOf[T any](prefix string, settings, required []string) kind {
	return kind{typ: reflect.TypeFor[T](), prefix: prefix, settings: settings, required: required}
}

// Providers lists the provider names hoist knows, sorted.
func Providers() []string {
	names := make([]string, 0, len(providers))
	for n := range providers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// fields are a provider's fields that hoist can fill: exported, with a
// JSON name, of a kind that can be read from text.
// Those of an embedded struct count as the provider's own, so that hoist
// can wrap a provider to mend it (rfc2136.go).
func (k kind) fields() []field {
	if k.typ == nil {
		return nil // not a provider of the table
	}
	var out []field
	for _, f := range reflect.VisibleFields(k.typ) {
		tag := strings.Split(f.Tag.Get("json"), ",")[0]
		if !f.IsExported() || f.Anonymous || tag == "" || tag == "-" || !settable(f.Type) {
			continue
		}
		out = append(out, field{index: f.Index, key: tag, env: k.prefix + "_" + strings.ToUpper(tag), typ: f.Type})
	}
	return out
}

// field is one fillable field of a provider: its JSON name (the key in
// hoist.yml's dns.settings) and its environment variable.
type field struct {
	index []int
	key   string
	env   string
	typ   reflect.Type
}

func (k kind) field(key string) (field, bool) {
	for _, f := range k.fields() {
		if f.key == key {
			return f, true
		}
	}
	return field{}, false
}

func (k kind) isSetting(key string) bool { return slices.Contains(k.settings, key) }

var durationType = reflect.TypeFor[time.Duration]()

func settable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int64:
		return true
	}
	return false
}

// set parses text into the field of v (a pointer to the provider).
func (f field) set(v reflect.Value, text string) error {
	dst := v.Elem().FieldByIndex(f.index)
	switch {
	case f.typ == durationType:
		d, err := time.ParseDuration(text)
		if err != nil {
			return fmt.Errorf("%s: %q is not a duration like 1m", f.env, text)
		}
		dst.SetInt(int64(d))
	case f.typ.Kind() == reflect.String:
		dst.SetString(text)
	case f.typ.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return fmt.Errorf("%s: %q is not true or false", f.env, text)
		}
		dst.SetBool(b)
	default:
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %q is not a whole number", f.env, text)
		}
		dst.SetInt(n)
	}
	return nil
}

// CheckSettings checks the provider's name and the settings hoist.yml
// gives it: each must be a known field that is not a credential, since
// hoist.yml is committed. It is what config validation calls.
func CheckSettings(provider string, settings map[string]string) error {
	k, ok := providers[provider]
	if !ok {
		return fmt.Errorf("unknown DNS provider %q: hoist knows %s", provider, strings.Join(Providers(), ", "))
	}
	keys := make([]string, 0, len(settings))
	for key := range settings {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		f, ok := k.field(key)
		if !ok {
			return &SettingError{Key: key, Msg: fmt.Sprintf("%s has no setting %q; it has %s", provider, key, strings.Join(k.keys(), ", "))}
		}
		if !k.isSetting(key) {
			return &SettingError{Key: key, Msg: fmt.Sprintf("%s is a credential: keep it out of hoist.yml, in the environment as %s or in `hoist secrets set %s%s`", key, f.env, SecretPrefix, f.env)}
		}
		if err := f.set(reflect.New(k.typ), settings[key]); err != nil {
			return &SettingError{Key: key, Msg: err.Error()}
		}
	}
	return nil
}

// SettingError is a bad key in dns.settings.
type SettingError struct{ Key, Msg string }

func (e *SettingError) Error() string { return e.Msg }

func (k kind) keys() []string {
	var out []string
	for _, f := range k.fields() {
		out = append(out, f.key)
	}
	return out
}

// SecretPrefix starts the names of hoist secrets that hold DNS
// credentials (HOIST_DNS_RFC2136_KEY): hoist reads them, and keeps them
// out of the app's environment.
const SecretPrefix = "HOIST_DNS_"

// Credentials are a provider's values by field key, gathered from
// hoist.yml's settings, hoist secrets and the environment. They travel
// to the host whose proxy solves DNS-01 challenges.
type Credentials map[string]string

// Lookup finds a value by environment variable name (the environment
// first, then hoist secrets under SecretPrefix + name).
type Lookup func(name string) (string, bool)

// Gather collects the values of provider's fields: the environment or
// hoist secrets (by the field's variable, like DNSIMPLE_API_ACCESS_TOKEN,
// through lookup) win over hoist.yml's settings. A required field missing is an error
// that names its variable.
func Gather(provider string, settings map[string]string, lookup Lookup) (Credentials, error) {
	k, ok := providers[provider]
	if !ok {
		return nil, fmt.Errorf("unknown DNS provider %q", provider)
	}
	c := Credentials{}
	for _, f := range k.fields() {
		if v, ok := lookup(f.env); ok && v != "" {
			c[f.key] = v
		} else if v, ok := settings[f.key]; ok && k.isSetting(f.key) {
			c[f.key] = v
		}
	}
	e := &MissingError{Provider: provider}
	for _, key := range k.required {
		if c[key] == "" {
			e.Keys = append(e.Keys, key)
		}
	}
	if len(e.Keys) > 0 {
		return nil, e
	}
	return c, nil
}

// MissingError names the fields a provider lacks, by their keys.
type MissingError struct {
	Provider string
	Keys     []string
}

func (e *MissingError) Error() string {
	k := providers[e.Provider]
	var parts []string
	for _, key := range e.Keys {
		f, _ := k.field(key)
		if k.isSetting(key) {
			parts = append(parts, fmt.Sprintf("%s (or dns.settings.%s)", f.env, key))
		} else {
			parts = append(parts, f.env)
		}
	}
	return fmt.Sprintf("DNS provider %s needs %s", e.Provider, strings.Join(parts, ", "))
}

// Secret is the hoist secret that can hold a missing credential: the
// first that is not a setting, or else the first.
func (e *MissingError) Secret() string {
	k := providers[e.Provider]
	key := e.Keys[0]
	for _, x := range e.Keys {
		if !k.isSetting(x) {
			key = x
			break
		}
	}
	f, _ := k.field(key)
	return SecretPrefix + f.env
}

// Variables are the environment variables a provider reads.
func Variables(provider string) []string { return variables(provider, false) }

// credentialVars are the variables of a provider's credentials, for
// messages.
func credentialVars(provider string) []string { return variables(provider, true) }

func variables(provider string, credentialsOnly bool) []string {
	k := providers[provider]
	var out []string
	for _, f := range k.fields() {
		if !credentialsOnly || !k.isSetting(f.key) {
			out = append(out, f.env)
		}
	}
	return out
}

// New makes the provider from its credentials.
func New(provider string, c Credentials) (Provider, error) {
	k, ok := providers[provider]
	if !ok {
		return nil, fmt.Errorf("unknown DNS provider %q", provider)
	}
	v := reflect.New(k.typ)
	for _, f := range k.fields() {
		if text, ok := c[f.key]; ok {
			if err := f.set(v, text); err != nil {
				return nil, err
			}
		}
	}
	p, ok := v.Interface().(Provider)
	if !ok {
		return nil, fmt.Errorf("DNS provider %s cannot get, set and delete records", provider)
	}
	if c, ok := p.(checker); ok {
		if err := c.check(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// checker is a provider that can tell a malformed value here, before a
// server would refuse it in words that blame something else.
type checker interface{ check() error }
