// Command cockpit is the single binary of Cockpit: see "cockpit help".
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/cockpit-cs/cockpit/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
