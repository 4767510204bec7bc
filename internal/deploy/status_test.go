package deploy

import (
	"testing"

	"github.com/hoistdev/hoist/internal/config"
)

// Status returns each host's status in the hosts' order, and a host it
// cannot reach with its error.
func TestStatusPerHost(t *testing.T) {
	fl, hosts := newFakeFleet(t, 2)
	cfg, err := config.Parse("hoist.yml", []byte("version: 1\napp: demo\nbuild: {command: make, output: d}\nrun: {command: ./demo}\n"))
	if err != nil {
		t.Fatal(err)
	}
	hosts = append(hosts, "web99")
	got := Status(t.Context(), &App{Config: cfg, Hosts: hosts, Dial: fl.dial})
	if len(got) != 3 {
		t.Fatalf("%d results, want 3", len(got))
	}
	for i, h := range hosts[:2] {
		if got[i].Host != h || got[i].Err != nil || got[i].Status == nil || got[i].Status.State != "active" {
			t.Errorf("host %s: %+v", h, got[i])
		}
	}
	if got[2].Host != "web99" || got[2].Err == nil || got[2].Status != nil {
		t.Errorf("unreachable host: %+v", got[2])
	}
}
