package transport

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/kevinburke/ssh_config"
)

// loadSSHConfig reads the user's ssh_config, or returns nil when there is
// none or it cannot be parsed (ssh itself would complain; hoist goes on
// with its own settings).
func loadSSHConfig(o Options) *ssh_config.Config {
	p := o.SSHConfigFile
	if p == "none" {
		return nil
	}
	if p == "" {
		p = filepath.Join(o.home(), ".ssh", "config")
	}
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	cfg, err := ssh_config.Decode(f)
	if err != nil {
		return nil
	}
	return cfg
}

func configGet(cfg *ssh_config.Config, alias, key string) string {
	if cfg == nil {
		return ""
	}
	v, err := cfg.Get(alias, key)
	if err != nil {
		return ""
	}
	return v
}

func configGetAll(cfg *ssh_config.Config, alias, key string) []string {
	if cfg == nil {
		return nil
	}
	v, err := cfg.GetAll(alias, key)
	if err != nil {
		return nil
	}
	return v
}

// jumpChain returns alias's ProxyJump hops, in order.
func jumpChain(cfg *ssh_config.Config, alias string) []string {
	j := configGet(cfg, alias, "ProxyJump")
	if j == "" || strings.EqualFold(j, "none") {
		return nil
	}
	var hops []string
	for _, h := range strings.Split(j, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hops = append(hops, h)
		}
	}
	return hops
}

// HostName is the host an ssh_config alias stands for (its HostName,
// %h expanded), or alias itself.
func HostName(alias string, o Options) string {
	h := configGet(loadSSHConfig(o), alias, "HostName")
	if h == "" {
		return alias
	}
	return strings.ReplaceAll(h, "%h", alias)
}
