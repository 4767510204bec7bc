package dns

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/libdns/cloudflare"

	"github.com/hoistdev/hoist/internal/usererr"
)

// fakeCloudflare is Cloudflare's DNS API for one zone, as its
// documentation describes it: records named in full, filters on type,
// name and content, pages.
type fakeCloudflare struct {
	mu    sync.Mutex
	recs  map[string]map[string]any
	next  int
	token string
}

func (f *fakeCloudflare) reply(w http.ResponseWriter, code int, result any, info map[string]int) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	body := map[string]any{"success": code < 400, "result": result, "errors": []any{}}
	if code >= 400 {
		body["errors"] = []map[string]any{{"code": 10000, "message": "Authentication error"}}
	}
	if info != nil {
		body["result_info"] = info
	}
	json.NewEncoder(w).Encode(body)
}

func (f *fakeCloudflare) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		f.reply(w, http.StatusForbidden, nil, nil)
		return
	}
	q := r.URL.Query()
	const base = "/client/v4/zones/z1/dns_records"
	switch {
	case r.URL.Path == "/client/v4/zones":
		var zones []any
		if strings.TrimSuffix(q.Get("name"), ".") == "example.com" {
			zones = append(zones, map[string]string{"id": "z1", "name": "example.com"})
		}
		f.reply(w, http.StatusOK, zones, nil)
	case r.URL.Path == base && r.Method == http.MethodGet:
		var sel []map[string]any
		for _, rec := range f.recs {
			if (q.Has("type") && rec["type"] != q.Get("type")) || (q.Has("name") && rec["name"] != q.Get("name")) ||
				(q.Has("content.exact") && rec["content"] != q.Get("content.exact")) ||
				(q.Has("content.contains") && !strings.Contains(rec["content"].(string), q.Get("content.contains"))) {
				continue
			}
			sel = append(sel, rec)
		}
		sort.Slice(sel, func(i, j int) bool { return sel[i]["id"].(string) < sel[j]["id"].(string) })
		per, _ := strconv.Atoi(q.Get("per_page"))
		if per == 0 {
			per = 100
		}
		page := max(1, atoi(q.Get("page")))
		from, to := min((page-1)*per, len(sel)), min(page*per, len(sel))
		f.reply(w, http.StatusOK, sel[from:to], map[string]int{"page": page, "per_page": per, "count": to - from, "total_count": len(sel)})
	case r.URL.Path == base && r.Method == http.MethodPost:
		var rec map[string]any
		json.NewDecoder(r.Body).Decode(&rec)
		// Cloudflare takes a name relative to the zone, or @, and keeps it
		// in full.
		switch name, _ := rec["name"].(string); {
		case name == "@":
			rec["name"] = "example.com"
		case name != "example.com" && !strings.HasSuffix(name, ".example.com"):
			rec["name"] = name + ".example.com"
		}
		f.next++
		rec["id"] = fmt.Sprintf("r%03d", f.next)
		f.recs[rec["id"].(string)] = rec
		f.reply(w, http.StatusOK, rec, nil)
	case strings.HasPrefix(r.URL.Path, base+"/") && r.Method == http.MethodDelete:
		id := strings.TrimPrefix(r.URL.Path, base+"/")
		rec := f.recs[id]
		delete(f.recs, id)
		f.reply(w, http.StatusOK, rec, nil)
	default:
		http.NotFound(w, r)
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func (f *fakeCloudflare) add(name, typ, content string) {
	f.next++
	id := fmt.Sprintf("r%03d", f.next)
	f.recs[id] = map[string]any{"id": id, "name": name, "type": typ, "content": content, "ttl": 300}
}

// recordLines lists a fake provider's records as "name type content",
// sorted.
func recordLines[K comparable](recs map[K]map[string]any) []string {
	var out []string
	for _, r := range recs {
		out = append(out, fmt.Sprintf("%s %s %s", r["name"], r["type"], r["content"]))
	}
	sort.Strings(out)
	return out
}

func (f *fakeCloudflare) lines() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return recordLines(f.recs)
}

// redirect sends the provider's requests to a test server.
type redirect struct{ to *url.URL }

func (r redirect) Do(req *http.Request) (*http.Response, error) {
	req.URL.Scheme, req.URL.Host = r.to.Scheme, r.to.Host
	return http.DefaultClient.Do(req)
}

// TestCloudflare keeps records through libdns/cloudflare against a fake
// of Cloudflare's API, in a zone of more than one page: hoist's records
// follow an address change and go; the others stay.
func TestCloudflare(t *testing.T) {
	f := &fakeCloudflare{recs: map[string]map[string]any{}, token: "good"}
	for i := range 120 {
		f.add(fmt.Sprintf("host%03d.example.com", i), "A", "192.0.2.1")
	}
	f.add("www2.example.com", "A", "192.0.2.2")
	srv := httptest.NewServer(f)
	defer srv.Close()
	to, _ := url.Parse(srv.URL)
	before := f.lines()

	p, err := New("cloudflare", Credentials{"api_token": "good"})
	if err != nil {
		t.Fatal(err)
	}
	p.(*cloudflare.Provider).HTTPClient = redirect{to}
	z := &Zone{Provider: "cloudflare", Name: "example.com", Owner: "shop", API: p}
	run := func(names []string, tg Targets) error {
		want, _ := Desired(names, tg)
		p, err := z.Plan(context.Background(), want, nil)
		if err != nil {
			return err
		}
		return z.Apply(context.Background(), p, nil)
	}
	if err := run([]string{"www.example.com"}, addrs("10.0.0.1", "10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"www.example.com"}, addrs("10.0.0.3", "10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	want := append([]string{"_hoist.www.example.com TXT \"" + ours + "\"", "www.example.com A 10.0.0.2", "www.example.com A 10.0.0.3"}, before...)
	sort.Strings(want)
	if diff := cmp.Diff(want, f.lines()); diff != "" {
		t.Errorf("zone (-want +got):\n%s", diff)
	}
	if err := run(nil, Targets{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, f.lines()); diff != "" {
		t.Errorf("zone after destroy (-want +got):\n%s", diff)
	}

	f.token = "rotated"
	err = run(nil, Targets{})
	if err == nil || !strings.HasPrefix(err.Error(), "cloudflare (zone example.com): read zone: ") ||
		!strings.Contains(usererr.HintOf(err), "check CLOUDFLARE_API_TOKEN") {
		t.Errorf("a refused token: %v (hint %q)", err, usererr.HintOf(err))
	}
}
