package certs

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/hoistdev/hoist/internal/hostproto"
)

// PlanPath is the file of app's plan in dir.
func PlanPath(dir, app string) string { return filepath.Join(dir, app+".json") }

// plans are the plans of every app, by name.
type plans struct {
	byApp  map[string]*hostproto.CertPlan
	byName map[string]planned
}

// planned is one name's plan, with its app's.
type planned struct {
	hostproto.CertPlanName
	plan *hostproto.CertPlan
}

// loadPlans reads every plan in dir; a name two apps plan is the first
// app's (by name).
func loadPlans(dir string) (plans, error) {
	ps := plans{byApp: map[string]*hostproto.CertPlan{}, byName: map[string]planned{}}
	if dir == "" {
		return ps, nil
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return ps, err
	}
	sort.Strings(files)
	var errs []error
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var p hostproto.CertPlan
		if err := json.Unmarshal(b, &p); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
			continue
		}
		if err := p.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
			continue
		}
		ps.byApp[p.App] = &p
		for _, n := range p.Names {
			if _, taken := ps.byName[n.Name]; !taken {
				ps.byName[n.Name] = planned{CertPlanName: n, plan: &p}
			}
		}
	}
	return ps, errors.Join(errs...)
}
