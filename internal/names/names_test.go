package names

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestNoAppTakesHoistsOwnNames checks the reservation without the
// inversion Reserved is made by: every substring of every name of
// hoist's own that CheckApp lets through as an app name is tried as
// one, and none of the names it would get is hoist's.
func TestNoAppTakesHoistsOwnNames(t *testing.T) {
	tried := 0
	for kind, owns := range Own {
		for _, own := range owns {
			for i := range own {
				for j := i + 1; j <= len(own); j++ {
					app := own[i:j]
					if CheckApp(app) != "" {
						continue
					}
					tried++
					for _, other := range otherParts(own) {
						if slices.Contains(Names(app, other)[kind], own) {
							t.Errorf("app %q, with %q, gets hoist's own %s %s", app, other, kind, own)
							break
						}
					}
				}
			}
		}
	}
	if tried == 0 {
		t.Fatal("no app name tried")
	}
}

// otherParts are the release ids and accessory names that could make
// one of an app's names into own: every substring of it.
func otherParts(own string) []string {
	var out []string
	for i := range own {
		for j := i + 1; j <= len(own); j++ {
			out = append(out, own[i:j])
		}
	}
	return out
}

func TestReserved(t *testing.T) {
	if got, want := Reserved(), []string{"proxy"}; !slices.Equal(got, want) {
		t.Errorf("Reserved() = %q, want %q", got, want)
	}
	why := CheckApp("proxy")
	for _, want := range []string{"reserved", "user hoist-proxy", "unit hoist-proxy.service", "entry of /var/lib/hoist proxy"} {
		if !strings.Contains(why, want) {
			t.Errorf("CheckApp(proxy) = %q, want it to name %q", why, want)
		}
	}
	for _, ok := range []string{"web", "proxy-2", "my-proxy", "hoist", "host", "a"} {
		if why := CheckApp(ok); why != "" {
			t.Errorf("CheckApp(%q) = %q, want none", ok, why)
		}
	}
	for _, bad := range []string{"", "Web", "a.b", "a-", "1a", "a_b", "a@b", strings.Repeat("a", 33), "host.json"} {
		if CheckApp(bad) == "" {
			t.Errorf("CheckApp(%q) let it through", bad)
		}
	}
}

// A new name of hoist's own is reserved as soon as it is listed.
func TestAnOwnNameAddedIsReserved(t *testing.T) {
	defer func(o map[Kind][]string) { Own = o; reserved = reserve() }(Own)
	Own = map[Kind][]string{Unit: {"hoist-certs.timer", "hoist-relay.service"}, BaseEntry: {"bin"}}
	reserved = reserve()
	if got, want := Reserved(), []string{"bin", "relay"}; !slices.Equal(got, want) {
		t.Errorf("Reserved() = %q, want %q", got, want)
	}
}

// TestAppsKeepApart: two apps, or an app and another's accessory,
// never get the same name. The names are made of the parts that could
// meet: letters, dashes, "backup".
func TestAppsKeepApart(t *testing.T) {
	var apps []string
	for _, a := range []string{"a", "b", "ab", "a-b", "b-backup", "a-b-backup", "backup", "proxy2", "a-proxy"} {
		if CheckApp(a) == "" {
			apps = append(apps, a)
		}
	}
	owner := map[string]string{}
	for _, app := range apps {
		for _, other := range apps { // accessory names are app names' kind
			for kind, ns := range Names(app, other) {
				for _, n := range ns {
					key := string(kind) + " " + n
					who := fmt.Sprintf("app %s (accessory %s)", app, other)
					if prev, ok := owner[key]; ok && !strings.HasPrefix(prev, "app "+app+" ") {
						t.Errorf("%s %s is both %s's and %s's", kind, n, prev, who)
					}
					owner[key] = who
				}
			}
		}
	}
}
