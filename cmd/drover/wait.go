package main

import (
	"context"
	"flag"
	"time"

	"github.com/drover-run/drover/pkg/client"
)

func waitCommand() *command {
	return &command{
		name:    "wait",
		args:    "ID...",
		summary: "Block until the jobs end, showing state and progress; exit 0 if all finished, 3 otherwise.",
		setup: func(fs *flag.FlagSet) runner {
			var within time.Duration
			fs.DurationVar(&within, "wait-timeout", 0, "give up after this long (0: never)")
			return func(ctx context.Context, c *cli, args []string) error {
				if err := requireArgs(args, 1, -1, "job ID"); err != nil {
					return err
				}
				if within < 0 {
					return usagef("--wait-timeout must not be negative")
				}
				return c.withClient(func(cl *client.Client) error {
					return c.waitJobs(ctx, cl, args, waitOptions{within: within})
				})
			}
		},
	}
}

func watchCommand() *command {
	return &command{
		name:    "watch",
		args:    "ID...",
		summary: "Follow jobs live: a progress bar per job and their events as they arrive, then the results.",
		setup: func(fs *flag.FlagSet) runner {
			var within time.Duration
			fs.DurationVar(&within, "wait-timeout", 0, "give up after this long (0: never)")
			return func(ctx context.Context, c *cli, args []string) error {
				if err := requireArgs(args, 1, -1, "job ID"); err != nil {
					return err
				}
				if within < 0 {
					return usagef("--wait-timeout must not be negative")
				}
				return c.withClient(func(cl *client.Client) error {
					return c.waitJobs(ctx, cl, args, waitOptions{within: within, events: true})
				})
			}
		},
	}
}
