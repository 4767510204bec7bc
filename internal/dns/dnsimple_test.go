package dns

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hoistdev/hoist/internal/usererr"
)

// fakeDNSimple is DNSimple's API for one account and zone, as its
// documentation describes it: pages of at most per_page records, exact
// name and type filters, name_like matching part of a name.
type fakeDNSimple struct {
	mu    sync.Mutex
	recs  map[int64]map[string]any
	next  int64
	token string
}

func (f *fakeDNSimple) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(map[string]string{"message": "Authentication failed"})
		return
	}
	const base = "/v2/1010/zones/example.com/records"
	switch {
	case r.URL.Path == "/v2/whoami":
		json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"account": map[string]any{"id": 1010}}})
	case r.URL.Path == base && r.Method == http.MethodGet:
		q := r.URL.Query()
		var sel []map[string]any
		ids := make([]int64, 0, len(f.recs))
		for id := range f.recs {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		for _, id := range ids {
			rec := f.recs[id]
			if (q.Has("name") && rec["name"] != q.Get("name")) || (q.Has("type") && rec["type"] != q.Get("type")) ||
				(q.Has("name_like") && !strings.Contains(rec["name"].(string), q.Get("name_like"))) {
				continue
			}
			sel = append(sel, rec)
		}
		per, _ := strconv.Atoi(q.Get("per_page"))
		if per == 0 {
			per = 30
		}
		page, _ := strconv.Atoi(q.Get("page"))
		page = max(page, 1)
		pages := max(1, (len(sel)+per-1)/per)
		from, to := min((page-1)*per, len(sel)), min(page*per, len(sel))
		json.NewEncoder(w).Encode(map[string]any{"data": sel[from:to], "pagination": map[string]int{"current_page": page, "per_page": per, "total_pages": pages, "total_entries": len(sel)}})
	case r.URL.Path == base && r.Method == http.MethodPost:
		var rec map[string]any
		json.NewDecoder(r.Body).Decode(&rec)
		f.next++
		rec["id"] = f.next
		f.recs[f.next] = rec
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"data": rec})
	case strings.HasPrefix(r.URL.Path, base+"/") && r.Method == http.MethodDelete:
		id, _ := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, base+"/"), 10, 64)
		delete(f.recs, id)
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeDNSimple) add(name, typ, content string) {
	f.next++
	f.recs[f.next] = map[string]any{"id": f.next, "name": name, "type": typ, "content": content, "ttl": 3600}
}

func (f *fakeDNSimple) lines() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return recordLines(f.recs)
}

// TestDNSimple keeps records through DNSimple's API in a zone of more
// than one page, next to records whose names contain the app's: they
// stay untouched while hoist's follow an address change and go.
func TestDNSimple(t *testing.T) {
	f := &fakeDNSimple{recs: map[int64]map[string]any{}, token: "good"}
	for i := range 40 {
		f.add(fmt.Sprintf("host%02d", i), "A", "192.0.2.1")
	}
	f.add("www2", "A", "192.0.2.2")
	f.add("", "MX", "mail.example.com")
	srv := httptest.NewServer(f)
	defer srv.Close()
	before := f.lines()

	p, err := New("dnsimple", Credentials{"api_access_token": "good", "api_url": srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	z := &Zone{Provider: "dnsimple", Name: "example.com", Owner: "shop", API: p}
	run := func(names []string, tg Targets) {
		t.Helper()
		want, _ := Desired(names, tg)
		converge(t, z, want)
	}
	run([]string{"www.example.com", "example.com"}, addrs("10.0.0.1", "10.0.0.2"))
	run([]string{"www.example.com", "example.com"}, addrs("10.0.0.3", "10.0.0.2"))
	want := append([]string{" A 10.0.0.2", " A 10.0.0.3", "_hoist TXT " + ours, "_hoist.www TXT " + ours, "www A 10.0.0.2", "www A 10.0.0.3"}, before...)
	sort.Strings(want)
	if diff := cmp.Diff(want, f.lines()); diff != "" {
		t.Errorf("zone (-want +got):\n%s", diff)
	}
	run(nil, Targets{})
	if diff := cmp.Diff(before, f.lines()); diff != "" {
		t.Errorf("zone after destroy (-want +got):\n%s", diff)
	}

	bad, _ := New("dnsimple", Credentials{"api_access_token": "wrong", "api_url": srv.URL})
	z.API = bad
	_, err = z.Plan(context.Background(), Want{}, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "dnsimple (zone example.com): read zone: whoami: ") ||
		!strings.Contains(usererr.HintOf(err), "check DNSIMPLE_API_ACCESS_TOKEN") {
		t.Errorf("a refused token: %v (hint %q)", err, usererr.HintOf(err))
	}
}
