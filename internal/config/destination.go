package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"

	"github.com/hoistdev/hoist/internal/usererr"
)

// A destination is one deployment of the app (staging, production):
// hoist.yml holds what they share and hoist.DEST.yml, beside it, what is
// its own — hosts, proxy names, accessories, infra. Its mappings are laid
// over hoist.yml's key by key; any other value, a list included, replaces
// hoist.yml's.

// DestinationFile is the file of destination dest beside base (hoist.yml).
func DestinationFile(base, dest string) string {
	ext := filepath.Ext(base)
	return strings.TrimSuffix(base, ext) + "." + dest + ext
}

// ValidDestination reports whether name can name a destination: as
// infra.env, lowercase letters, digits and dashes, at most 16.
func ValidDestination(name string) bool { return envNamePattern.MatchString(name) }

// Destinations lists the destinations that have a file beside base.
func Destinations(base string) []string {
	ext := filepath.Ext(base)
	stem := strings.TrimSuffix(filepath.Base(base), ext)
	paths, _ := filepath.Glob(filepath.Join(filepath.Dir(base), stem+".*"+ext))
	var out []string
	for _, p := range paths {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), stem+"."), ext)
		if ValidDestination(name) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// LoadDestination reads the config file at file and, when dest is set,
// lays the destination's file over it.
func LoadDestination(file, dest string) (*Config, error) {
	if dest == "" {
		return Load(file)
	}
	if !ValidDestination(dest) {
		return nil, usererr.New("%q is not a destination name: lowercase letters, digits and dashes, starting with a letter, at most 16", dest)
	}
	data, err := readConfig(file)
	if err != nil {
		return nil, err
	}
	ofile := DestinationFile(file, dest)
	odata, err := os.ReadFile(ofile)
	if errors.Is(err, os.ErrNotExist) {
		hint := "write " + filepath.Base(ofile) + " beside " + filepath.Base(file) + " with what differs for " + dest + " (hosts, proxy, accessories)"
		if have := Destinations(file); len(have) > 0 {
			hint = "the destinations here are " + strings.Join(have, ", ") + "; or " + hint
		}
		return nil, usererr.New("there is no destination %s: %s does not exist", dest, ofile).WithHint("%s", hint)
	}
	if err != nil {
		return nil, usererr.Wrap(err, "cannot read config")
	}
	return ParseDestination(file, data, ofile, odata, dest)
}

// ParseDestination decodes base and overlay, lays overlay over base and
// validates the result as destination dest. Each file is decoded
// strictly on its own first, so that an unknown key or a wrong type is
// named in its own file; a value the validation refuses is named where
// it was written, in the overlay if it is there.
func ParseDestination(name string, data []byte, oname string, odata []byte, dest string) (*Config, error) {
	for _, f := range []struct {
		name string
		data []byte
	}{{name, data}, {oname, odata}} {
		var probe Config
		if err := decodeStrict(f.name, f.data, &probe); err != nil && !(f.name == oname && isEmpty(err)) {
			return nil, err
		}
	}
	var base, over map[string]any
	if err := yaml.Unmarshal(data, &base); err != nil {
		return nil, wrapUser(yamlError(name, err))
	}
	if err := yaml.Unmarshal(odata, &over); err != nil {
		return nil, wrapUser(yamlError(oname, err))
	}
	merged := mergeMaps(base, over)
	// Provisioned hosts of a destination are its own: tagged with its name.
	if infra, ok := merged["infra"].(map[string]any); ok {
		if _, set := infra["env"]; !set {
			infra["env"] = dest
		}
	}
	b, err := yaml.Marshal(merged)
	if err != nil {
		return nil, fmt.Errorf("merge %s over %s: %w", oname, name, err)
	}
	var c Config
	if err := decodeStrict(name, b, &c); err != nil {
		return nil, err
	}
	c.Destination = dest
	err = zeroGiven(b, &c)
	c.Defaults()
	if err == nil {
		err = c.validate()
	}
	if err != nil {
		var fe *fieldError
		if !errors.As(err, &fe) {
			return nil, err
		}
		if hasPath(odata, fe.path) {
			return nil, wrapUser(positioned(oname, odata, fe))
		}
		return nil, wrapUser(positioned(name, data, fe))
	}
	return &c, nil
}

// isEmpty reports whether err is decodeStrict's empty-file error: an
// empty destination file changes nothing, which is allowed.
func isEmpty(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Msg == emptyFile
}

// mergeMaps lays over onto base: mappings merge key by key, anything
// else in over replaces what base has.
func mergeMaps(base, over map[string]any) map[string]any {
	if base == nil {
		base = map[string]any{}
	}
	for k, ov := range over {
		bm, bok := asMap(base[k])
		om, ook := asMap(ov)
		if bok && ook {
			base[k] = mergeMaps(bm, om)
			continue
		}
		base[k] = ov
	}
	return base
}

func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[fmt.Sprint(k)] = v
		}
		return out, true
	}
	return nil, false
}

// hasPath reports whether the YAML in data has a node at path.
func hasPath(data []byte, path string) bool {
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return false
	}
	yp, err := yaml.PathString(path)
	if err != nil {
		return false
	}
	node, err := yp.FilterFile(file)
	return err == nil && node != nil
}
