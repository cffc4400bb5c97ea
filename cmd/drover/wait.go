package main

import (
	"context"
	"flag"
	"time"

	"github.com/drover-run/drover/pkg/client"
)

func waitCommand() *command {
	return waitingCommand("wait",
		"Block until the jobs end, showing state and progress; exit 0 if all finished, 3 otherwise.", false)
}

func watchCommand() *command {
	return waitingCommand("watch",
		"Follow jobs: a progress bar per job, their events so far and then as they happen, then the results.", true)
}

// waitingCommand builds wait and watch, which differ only in whether the
// jobs' events are shown.
func waitingCommand(name, summary string, events bool) *command {
	return &command{
		name:    name,
		args:    "ID...",
		summary: summary,
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
					return c.waitJobs(ctx, cl, args, waitOptions{within: within, events: events})
				})
			}
		},
	}
}
