package deploy

import (
	"sync"

	"github.com/hoistdev/hoist/internal/config"
	"github.com/hoistdev/hoist/internal/fleet"
	"github.com/hoistdev/hoist/internal/hostclient"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/secrets"
	"github.com/hoistdev/hoist/internal/transport"
)

// App is a loaded hoist.yml and what the operations that act on its
// hosts need. The CLI builds it from its flags, the environment and the
// credentials it was given; the operations take it as it is.
type App struct {
	Config *config.Config
	// File is hoist.yml as it was named, for errors at one of its lines.
	File string
	// Repo is the directory of hoist.yml: the app's repository.
	Repo  string
	Hosts []string
	Dial  fleet.DialFunc
	// LogMu keeps the hosts' lines (and questions about host keys)
	// apart.
	LogMu *sync.Mutex
	// Actor is who runs hoist, for the hosts' audit trail.
	Actor *hostproto.Actor
	// FirstHost is the first of the config's (or provisioned) hosts,
	// whatever --host says: an accessory's host by default.
	FirstHost string
	// Adopt takes hosts set up for no destination into the config's
	// destination (setup --adopt).
	Adopt bool
	// Home is where hoist keeps its own files on this machine: the
	// state of what hoist provision made.
	Home string
	// Secrets are the app's secrets (read only when an operation needs
	// one).
	Secrets secrets.Store
}

// Client returns the host client for conn.
func (a *App) Client(conn transport.Conn) *hostclient.Client {
	return &hostclient.Client{Conn: conn, App: a.Config.App, Destination: a.Config.Destination, Actor: a.Actor, Adopt: a.Adopt}
}
