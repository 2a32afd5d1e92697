package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/mtrelay/mtrelay/session"
)

// migrateMain runs `mtrelay migrate --database-url URL`: it installs or upgrades
// schema mtrelay (see session.Migrate). The URL needs a role that may create schemas
// and roles; MTRELAY_DATABASE_URL is used when the flag is absent.
func migrateMain(args []string, getenv func(string) string, stderr io.Writer) int {
	fs := flag.NewFlagSet("mtrelay migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("database-url", "", "PostgreSQL URL of a role that may create schemas and roles (env "+envName("database-url")+")")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if *url == "" {
		*url = getenv(envName("database-url"))
	}
	if *url == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: mtrelay migrate --database-url postgres://USER:PASSWORD@HOST:PORT/DB")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	applied, err := session.Migrate(ctx, *url)
	if err != nil {
		fmt.Fprintf(stderr, "mtrelay migrate: %v\n", err)
		return 1
	}
	if len(applied) == 0 {
		fmt.Fprintln(stderr, "mtrelay migrate: schema mtrelay is up to date")
	} else {
		fmt.Fprintf(stderr, "mtrelay migrate: applied versions %v\n", applied)
	}
	return 0
}
