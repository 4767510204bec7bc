// Command hoist takes a server application from a git commit to
// production on plain Linux hosts running systemd.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/hoistdev/hoist/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.ExitCode(err))
}
