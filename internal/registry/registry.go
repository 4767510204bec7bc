// Package registry is the named set that hoist's pluggable parts (the
// builders, the providers) register themselves in, so that each kind
// keeps one list instead of switches in several packages.
package registry

import (
	"fmt"
	"sort"
	"sync"
)

// Of holds the registrations of one kind, by name.
type Of[T any] struct {
	// Kind names what is registered, for the panic of a name taken twice.
	Kind string
	mu   sync.Mutex
	m    map[string]T
}

// Add registers v as name. It panics when the name is taken: two
// registrations of one name are a programming error.
func (r *Of[T]) Add(name string, v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]T{}
	}
	if _, ok := r.m[name]; ok {
		panic(fmt.Sprintf("%s %q registered twice", r.Kind, name))
	}
	r.m[name] = v
}

// Lookup returns what is registered as name.
func (r *Of[T]) Lookup(name string) (T, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.m[name]
	return v, ok
}

// Names are the registered names, sorted.
func (r *Of[T]) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.m))
	for n := range r.m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
