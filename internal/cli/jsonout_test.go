package cli

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/dns"
	"github.com/hoistdev/hoist/internal/goldentest"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/lab"
	"github.com/hoistdev/hoist/internal/provision"
	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/store"
)

// jsonOutputs are the types the verbs' --json print, each the value of
// one verb's output or of an entry of its list, by golden file name.
// doc is the page of docs that describes it, when not docs/json.md.
var jsonOutputs = []struct {
	name string
	v    any
	doc  string
}{
	{"deploy", deployResultJSON{}, ""},
	{"rollback_restart", hostResult{}, ""},
	{"setup", setupResultJSON{}, ""},
	{"status", hostStatusJSON{}, ""},
	{"releases", hostReleasesJSON{}, ""},
	{"lock_status", hostLockJSON{}, ""},
	{"proxy_status", hostProxyJSON{}, ""},
	{"accessory_status", accessoryStatusJSON{}, ""},
	{"accessory_backup", backupResultJSON{}, ""},
	{"accessory_backups", hostBackupsJSON{}, ""},
	{"accessory_restore", restoreResult{}, ""},
	{"accessory_verify", verifyResultJSON{}, ""},
	{"accessory_pull", pullResult{}, ""},
	{"maintenance", maintenanceResult{}, ""},
	{"maintenance_status", hostMaintenanceJSON{}, ""},
	{"audit", auditLineJSON{}, ""},
	{"store_status", storeStatusJSON{}, ""},
	{"dns_plan_status", dnsPlanJSON{}, "dns.md"},
	{"dns_apply_destroy", dnsResultJSON{}, "dns.md"},
	{"plan", planJSON{}, "provision.md"},
	{"provision", provisionedJSON{}, ""},
	{"build", buildResultJSON{}, ""},
	{"lab_up", labHostJSON{}, ""},
	{"lab_status", labStatusJSON{}, ""},
}

// TestJSONOutputsOwnTypes guards the separation: an output type holds
// only builtins, the standard library's types and this package's own,
// so that no other package's change reaches what --json prints.
func TestJSONOutputsOwnTypes(t *testing.T) {
	cli := reflect.TypeOf(hostResult{}).PkgPath()
	seen := map[reflect.Type]bool{}
	var walk func(where string, typ reflect.Type)
	walk = func(where string, typ reflect.Type) {
		if seen[typ] {
			return
		}
		seen[typ] = true
		if p := typ.PkgPath(); p != "" && p != cli && !stdlib(p) {
			t.Errorf("%s is %s, of package %s: --json output types are this package's own", where, typ, p)
			return
		}
		switch typ.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array:
			walk(where, typ.Elem())
		case reflect.Map:
			walk(where+" (key)", typ.Key())
			walk(where, typ.Elem())
		case reflect.Struct:
			if typ.PkgPath() != cli {
				return // time.Time and the like
			}
			for i := 0; i < typ.NumField(); i++ {
				f := typ.Field(i)
				walk(where+"."+f.Name, f.Type)
			}
		case reflect.Interface:
			t.Errorf("%s is an interface: what it prints depends on what is put in it", where)
		}
	}
	for _, o := range jsonOutputs {
		walk(reflect.TypeOf(o.v).Name(), reflect.TypeOf(o.v))
	}
}

// stdlib says whether import path p is the standard library's: its
// first element has no dot.
func stdlib(p string) bool {
	first, _, _ := strings.Cut(p, "/")
	return !strings.Contains(first, ".")
}

// TestJSONGolden holds the bytes of each output, every field set, in
// testdata/json; -update rewrites them.
func TestJSONGolden(t *testing.T) {
	for _, o := range jsonOutputs {
		t.Run(o.name, func(t *testing.T) {
			v := reflect.New(reflect.TypeOf(o.v))
			fill(v.Elem(), nil)
			var out bytes.Buffer
			if err := writeJSON(&streams{out: &out}, v.Interface()); err != nil {
				t.Fatal(err)
			}
			goldentest.Check(t, filepath.Join("testdata", "json", o.name+".golden"), out.Bytes())
		})
	}
}

// TestJSONOutputsKeepBytes proves the output types print what the
// internal types they replaced printed: each internal value, every field
// set, marshals to the bytes its conversion does. Not set by fill:
// interface fields, of which there is one, deploy.HostReport.Err, which
// JSON leaves out (`json:"-"`) as it does provision.Resource.Mutable,
// which fill sets; the output types carry neither.
// When an internal type grows a field this fails on purpose: add it to
// the output type (and its docs), or, to keep it out, clear it in the
// internal value before the comparison and say why.
func TestJSONOutputsKeepBytes(t *testing.T) {
	same := func(t *testing.T, internal any, convert func(any) any) {
		t.Helper()
		v := reflect.New(reflect.TypeOf(internal))
		fill(v.Elem(), nil)
		want, err := json.Marshal(v.Elem().Interface())
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(convert(v.Elem().Interface()))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%T prints\n%s\nits output type\n%s", internal, want, got)
		}
	}
	cases := []struct {
		internal any
		convert  func(any) any
	}{
		{hostproto.Status{}, func(v any) any { return statusOut(v.(hostproto.Status)) }},
		{hostproto.Lock{}, func(v any) any { return lockOut(v.(hostproto.Lock)) }},
		{hostproto.HostFacts{}, func(v any) any { return hostFactsOut(v.(hostproto.HostFacts)) }},
		{hostproto.ReleaseInfo{}, func(v any) any { return releaseInfoOut(v.(hostproto.ReleaseInfo)) }},
		{hostproto.AuditEntry{}, func(v any) any { return auditEntryOut(v.(hostproto.AuditEntry)) }},
		{hostproto.RouteStatus{}, func(v any) any { return routeStatusOut(v.(hostproto.RouteStatus)) }},
		{hostproto.Maintenance{}, func(v any) any { return maintenanceOut(v.(hostproto.Maintenance)) }},
		{hostproto.CertStatus{}, func(v any) any { return certStatusOut(v.(hostproto.CertStatus)) }},
		{hostproto.AccessoryStatus{}, func(v any) any { return accessoryOut(v.(hostproto.AccessoryStatus)) }},
		{hostproto.BackupInfo{}, func(v any) any { return backupInfoOut(v.(hostproto.BackupInfo)) }},
		{hostproto.Verification{}, func(v any) any { return verificationOut(v.(hostproto.Verification)) }},
		{store.Record{}, func(v any) any { return storeRecordOut(v.(store.Record)) }},
		{deploy.Outcome{}, func(v any) any { return outcomeOut(v.(deploy.Outcome)) }},
		{dns.Plan{}, func(v any) any { return dnsPlanOut(v.(dns.Plan)) }},
		{dns.Step{}, func(v any) any { return dnsStepOut(v.(dns.Step)) }},
		{provision.Plan{}, func(v any) any { return planOut(v.(provision.Plan)) }},
		{provision.Balancer{}, func(v any) any { return balancerOut(v.(provision.Balancer)) }},
		{lab.Host{}, func(v any) any { return labHostOut(v.(lab.Host)) }},
		{release.Manifest{}, func(v any) any { return manifestOut(v.(release.Manifest)) }},
		// The verbs' rows, which were printed as they are before.
		{hostStatus{}, func(v any) any { return hostStatusOut(v.(hostStatus)) }},
		{hostReleases{}, func(v any) any { return hostReleasesOut(v.(hostReleases)) }},
		{hostProxy{}, func(v any) any { return hostProxyOut(v.(hostProxy)) }},
		{accessoryStatus{}, func(v any) any { return accessoryStatusOut(v.(accessoryStatus)) }},
		{backupResult{}, func(v any) any { return backupResultOut(v.(backupResult)) }},
		{hostBackups{}, func(v any) any { return hostBackupsOut(v.(hostBackups)) }},
		{verifyResult{}, func(v any) any { return verifyResultOut(v.(verifyResult)) }},
		{hostMaintenance{}, func(v any) any { return hostMaintenanceOut(v.(hostMaintenance)) }},
		{auditLine{}, func(v any) any { return auditLineOut(v.(auditLine)) }},
		{setupResult{}, func(v any) any { return setupResultOut(v.(setupResult)) }},
		{storeStatus{}, func(v any) any { return storeStatusOut(v.(storeStatus)) }},
	}
	for _, c := range cases {
		t.Run(reflect.TypeOf(c.internal).String(), func(t *testing.T) { same(t, c.internal, c.convert) })
	}
	// Nil stays null and empty stays [], as the verbs print them.
	for _, rs := range [][]hostproto.ReleaseInfo{nil, {}} {
		want, _ := json.Marshal(hostReleases{Releases: rs})
		got, _ := json.Marshal(hostReleasesOut(hostReleases{Releases: rs}))
		if !bytes.Equal(got, want) {
			t.Errorf("releases %#v print %s, want %s", rs, got, want)
		}
	}
}

// fill sets every exported field of v, through pointers, slices (one
// element) and maps (one entry), to a value that is not zero, so that
// omitempty fields appear; path names the field, and is what a string
// holds. Interfaces are left nil.
func fill(v reflect.Value, path []string) {
	name := strings.Join(path, ".")
	switch v.Kind() {
	case reflect.String:
		v.SetString(name + "-value")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.Type() == reflect.TypeOf(time.Duration(0)) {
			v.SetInt(int64(90 * time.Second))
			return
		}
		v.SetInt(int64(len(name)%97 + 1))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(len(name)%89 + 1))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(len(name)%83) + 0.5)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), path)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), path)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, append(path, "key"))
		fill(e, path)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 11, 25, 23, 5, 36, 0, time.UTC).Add(time.Duration(len(name)) * time.Minute)))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			// An embedded struct of this package's is unexported, and
			// its fields are printed as the outer one's.
			if f := v.Type().Field(i); f.IsExported() || f.Anonymous {
				fill(v.Field(i), append(path[:len(path):len(path)], f.Name))
			}
		}
	}
}
