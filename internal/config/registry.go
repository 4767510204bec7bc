package config

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

// The providers of infra and the builders are checked by the packages
// that implement them (internal/provision, internal/build), which
// register each here with its own checks: config cannot import them,
// as they read config. A program that parses hoist.yml must link them
// (cmd/hoist does, through internal/cli; tests of other packages import
// them blank). A check returns FieldError for a field of
// hoist.yml, which Load positions at its line and column.
var registry struct {
	mu        sync.Mutex
	providers map[string]func(*Config) error
	builders  map[string]func(*Config) error
}

// RegisterProvider makes name a value of infra.provider; check validates
// what the provider asks of the infra section, after the checks every
// provider shares. It panics when name is registered twice.
func RegisterProvider(name string, check func(*Config) error) {
	register(&registry.providers, "provider", name, check)
}

// RegisterBuilder makes name a value of build.builder; check validates
// what the builder asks of the build section.
func RegisterBuilder(name string, check func(*Config) error) {
	register(&registry.builders, "builder", name, check)
}

func register(m *map[string]func(*Config) error, what, name string, check func(*Config) error) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if *m == nil {
		*m = map[string]func(*Config) error{}
	}
	if _, ok := (*m)[name]; ok {
		panic(fmt.Sprintf("config: %s %q registered twice", what, name))
	}
	if check == nil {
		check = func(*Config) error { return nil }
	}
	(*m)[name] = check
}

// ProviderNames are the registered values of infra.provider, sorted.
func ProviderNames() []string { return sortedNames(registry.providers) }

// BuilderNames are the registered values of build.builder, sorted.
func BuilderNames() []string { return sortedNames(registry.builders) }

func sortedNames(m map[string]func(*Config) error) []string {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func lookup(m map[string]func(*Config) error, name string) (func(*Config) error, bool) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	f, ok := m[name]
	return f, ok
}

// FieldError is an error about the field at path (like $.infra.region)
// for a registered check to return.
func FieldError(path, format string, args ...any) error { return errAt(path, format, args...) }

// andList writes names as "a, b and c".
func andList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// orList writes names as "a, b or c".
func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	n := slices.Clone(names)
	return strings.Join(n[:len(n)-1], ", ") + " or " + n[len(n)-1]
}
