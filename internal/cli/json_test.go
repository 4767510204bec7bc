package cli

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hoistdev/hoist/internal/lab"
	"github.com/hoistdev/hoist/internal/release"
)

// TestJSONShapesDocumented keeps docs/json.md in step with what --json
// prints: every field of every shape is named there.
func TestJSONShapesDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/json.md")
	if err != nil {
		t.Fatal(err)
	}
	shapes := []any{deployResult{}, hostStatus{}, hostReleases{}, hostLock{}, hostProxy{}, accessoryStatus{},
		backupResult{}, hostBackups{}, restoreResult{}, verifyResult{}, auditLine{}, hostMaintenance{}, maintenanceResult{}, setupResult{}, pullResult{}, provisioned{}, lab.Host{}, release.Manifest{}, storeStatus{}}
	seen := map[reflect.Type]bool{}
	var walk func(where string, typ reflect.Type)
	walk = func(where string, typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ == reflect.TypeOf(time.Time{}) || seen[typ] {
			return
		}
		seen[typ] = true
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			key := strings.Split(f.Tag.Get("json"), ",")[0]
			if f.Anonymous && key == "" {
				walk(where, f.Type)
				continue
			}
			if key == "-" || !f.IsExported() {
				continue
			}
			if key == "" {
				key = f.Name
			}
			if !strings.Contains(string(doc), "`"+key+"`") {
				t.Errorf("docs/json.md does not name `%s` (%s.%s)", key, where, f.Name)
			}
			walk(where+"."+f.Name, f.Type)
		}
	}
	for _, s := range shapes {
		walk(reflect.TypeOf(s).Name(), reflect.TypeOf(s))
	}
}
