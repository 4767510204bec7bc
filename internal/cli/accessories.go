package cli

import (
	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/usererr"
)

// accessory looks name up in hoist.yml.
func (a *app) accessory(name string) (string, error) {
	if _, ok := a.Config.Accessories[name]; ok {
		return a.AccessoryHost(name), nil
	}
	have := a.Config.AccessoryNames()
	if len(have) == 0 {
		return "", usererr.New("%s has no accessories", configName(a.Config)).WithHint("declare them under accessories: (docs/accessories.md)")
	}
	return "", usererr.New("%s has no accessory %s; it has %v", configName(a.Config), name, have)
}

func configName(cfg *config.Config) string { return deploy.ConfigName(cfg) }
