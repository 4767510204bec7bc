package cli

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestJSONShapesDocumented keeps the docs in step with what --json
// prints: every field of every output is named on its page
// (docs/json.md, unless jsonOutputs names another).
func TestJSONShapesDocumented(t *testing.T) {
	for _, o := range jsonOutputs {
		page := o.doc
		if page == "" {
			page = "json.md"
		}
		doc, err := os.ReadFile("../../docs/" + page)
		if err != nil {
			t.Fatal(err)
		}
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
				if !names(string(doc), key) {
					t.Errorf("docs/%s does not name `%s` (%s.%s)", page, key, where, f.Name)
				}
				walk(where+"."+f.Name, f.Type)
			}
		}
		walk(reflect.TypeOf(o.v).Name(), reflect.TypeOf(o.v))
	}
}

// names says whether doc names a field key: `key`, `key[]` (a list) or
// "key": in an example.
func names(doc, key string) bool {
	for _, n := range []string{"`" + key + "`", "`" + key + "[]`", `"` + key + `":`} {
		if strings.Contains(doc, n) {
			return true
		}
	}
	return false
}
