package host

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/hoistdev/hoist/internal/atomicfile"
	"github.com/hoistdev/hoist/internal/usererr"
)

// A host serves an app for one destination (staging, production: hoist
// -d NAME), recorded by setup. Every request names its destination, and
// a host refuses one for another: a destination's secrets, releases and
// accessories never reach the hosts of another, even when a hosts list
// names the wrong host.

// recordedDestination is the destination setup recorded for the app,
// and whether it recorded one (hosts set up before destinations did not).
func recordedDestination(l Layout) (string, bool, error) {
	b, err := os.ReadFile(l.destinationFile())
	if errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read destination: %w", err)
	}
	return strings.TrimSpace(string(b)), true, nil
}

// checkDestination refuses a request for destination dest on a host
// set up for another. A host set up for no destination (hoist.yml
// alone) joins dest when the request adopts it (hoist -d DEST setup
// --adopt): its releases, secrets and accessories become dest's.
func checkDestination(l Layout, dest string, adopt bool) error {
	have, ok, err := recordedDestination(l)
	if err != nil || !ok || have == dest {
		return err
	}
	if have == "" && dest != "" {
		if adopt {
			return nil
		}
		return usererr.New("this host serves %s for %s, not for %s; nothing was changed", l.App, destinationName(have), destinationName(dest)).
			WithHint("to make it %s's (the app there, its secrets and accessories become %s's), run `hoist -d %s setup --adopt`; "+
				"or take it out of the hosts of %s", dest, dest, dest, destinationName(dest))
	}
	return fmt.Errorf("this host serves %s for %s, not for %s; nothing was changed: take it out of the hosts of %s, "+
		"or give the app another name there (app: in its file)", l.App, destinationName(have), destinationName(dest), destinationName(dest))
}

// recordDestination records the destination the app is set up for.
func recordDestination(l Layout, dest string) error {
	if have, ok, err := recordedDestination(l); err != nil || (ok && have == dest) {
		return err
	}
	if err := os.MkdirAll(l.Root, 0o755); err != nil {
		return fmt.Errorf("record destination: %w", err)
	}
	return atomicfile.Write(l.destinationFile(), []byte(dest+"\n"), 0o644)
}

// destinationName says which destination, for people.
func destinationName(dest string) string {
	if dest == "" {
		return "no destination (hoist.yml alone)"
	}
	return "destination " + dest
}
