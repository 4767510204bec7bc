package cli

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/hostproto"
)

// TestSetupResultOfOperation: `hoist setup --json` prints the
// operation's result as it printed the entries setup kept itself: ok
// from the error, the error's text, empty lists as [].
func TestSetupResultOfOperation(t *testing.T) {
	tests := map[string]struct {
		in   deploy.SetupResult
		want string
	}{
		"set up": {deploy.SetupResult{Host: "web1", Installed: true, App: true, Facts: &hostproto.HostFacts{OS: "linux", Arch: "amd64"},
			Schedule: []string{"digest"}, Accessories: []string{"db"}},
			`{"host":"web1","ok":true,"app":true,"installed":true,"facts":{"os":"linux","arch":"amd64"},"accessories":["db"],"schedule":["digest"]}`},
		"failed": {deploy.SetupResult{Host: "web2", Schedule: []string{}, Accessories: []string{}, Err: errors.New("no route to host")},
			`{"host":"web2","ok":false,"app":false,"installed":false,"accessories":[],"schedule":[],"error":"no route to host"}`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(setupResultOut(setupResultOf(tt.in)))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("got  %s\nwant %s", b, tt.want)
			}
		})
	}
}
