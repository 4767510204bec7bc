package accessory

import (
	"context"
	"fmt"
	"io"

	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/services"
	"github.com/hoistdev/hoist/internal/systemd"
)

// engine is one accessory's instance of its service, on this host.
type engine interface {
	// unit is the distribution's unit instance that runs it.
	unit() string
	// create makes the instance and its empty data when it has none; it
	// never touches data already there.
	create(ctx context.Context, log io.Writer) error
	// configure writes the instance's settings and reports whether they
	// changed.
	configure(password string) (bool, error)
	// hardening is what hoist's drop-in adds to the distribution's unit.
	hardening() hardening
	// ready waits until the service accepts connections.
	ready(ctx context.Context) error
	// provision makes what the app needs in the running service.
	provision(ctx context.Context, password string) error
	// url is how the app reaches it, password included.
	url(password string) string
	version() string
	dataDir() string
}

// service is what hoist knows of one kind of accessory.
type service struct {
	// beforeInstall runs before its package is installed, afterInstall
	// after hoist installed it (not when it was there already).
	beforeInstall func() error
	afterInstall  func(ctx context.Context) error
	engine        func(s *hostproto.AccessorySpec) (engine, error)
	// owns reports whether unit is the one that runs accessory s, before
	// its package is even installed.
	owns func(s *hostproto.AccessorySpec, unit string) bool
	// dump is the format of its backups, for a service hoist backs up
	// (services' Backup), whose engine is then a backuper (backuper.go).
	dump *dumpFormat
}

var serviceOf = map[string]*service{
	services.PostgreSQL: {beforeInstall: postgresBeforeInstall, engine: newPostgres, owns: postgresOwns, dump: &pgDump},
	services.Redis:      {afterInstall: disableDefault(redisFlavor), engine: newRedis(redisFlavor), owns: redisFlavor.owns},
	services.Valkey:     {afterInstall: disableDefault(valkeyFlavor), engine: newRedis(valkeyFlavor), owns: valkeyFlavor.owns},
}

// disableDefault stops the instance the distribution's package starts
// on install: it would hold the default port, and holds no data of
// anyone's, since hoist installed the package just now.
func disableDefault(f flavor) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if _, err := systemd.Systemctl(ctx, "disable", "--now", f.defaultUnit); err != nil {
			return fmt.Errorf("stop the package's own %s: %w", f.defaultUnit, err)
		}
		return nil
	}
}
