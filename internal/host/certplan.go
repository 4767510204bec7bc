package host

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"

	"github.com/hoistdev/hoist/internal/atomicfile"
	"github.com/hoistdev/hoist/internal/certs"
	"github.com/hoistdev/hoist/internal/hostproto"
)

// writeCertPlan keeps the app's certificate plan in dir for the proxy:
// 0600, owned by the proxy's user and written atomically, since the
// plan of the host that obtains the certificates holds the DNS
// provider's credentials. A spec without a plan leaves it as it is; a
// plan without names removes it.
func writeCertPlan(dir string, s *hostproto.Spec) error {
	if s.Certs == nil {
		return nil
	}
	path := certs.PlanPath(dir, s.App)
	if len(s.Certs.Names) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove certificate plan: %w", err)
		}
		return nil
	}
	p := *s.Certs
	p.App = s.App
	if err := p.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("certificate plan: %w", err)
	}
	uid, gid := proxyOwner()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("certificate plan: %w", err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return fmt.Errorf("certificate plan: %w", err)
	}
	return atomicfile.WriteOwned(path, b, 0o600, uid, gid)
}

// proxyOwner is the uid and gid of ProxyUser, or -1 (the writer's, root
// on a host) when there is none.
func proxyOwner() (int, int) {
	u, err := user.Lookup(ProxyUser)
	if err != nil {
		return -1, -1
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid
}
