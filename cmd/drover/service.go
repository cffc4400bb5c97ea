package main

import (
	"context"
	"flag"
	"strings"

	"github.com/drover-run/drover/internal/stock"
)

// serviceCommand runs one stock service in this process, configured by
// DROVER_* variables exactly as its own binary: `drover dev` re-executes
// drover with it, so one binary is all a local system needs.
func serviceCommand() *command {
	return &command{
		name:    "service",
		args:    strings.Join(stock.Names(), "|"),
		summary: "Run one service in the foreground, configured by DROVER_* variables (what drover dev starts).",
		hidden:  true,
		setup: func(fs *flag.FlagSet) runner {
			return func(ctx context.Context, c *cli, args []string) error {
				if err := requireArgs(args, 1, 1, "service name ("+strings.Join(stock.Names(), ", ")+")"); err != nil {
					return err
				}
				known := false
				for _, n := range stock.Names() {
					known = known || n == args[0]
				}
				if !known {
					return usagef("unknown service %q (want %s)", args[0], strings.Join(stock.Names(), ", "))
				}
				return stock.Serve(ctx, args[0])
			}
		},
	}
}
