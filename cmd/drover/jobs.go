package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/client"
)

func getCommand() *command {
	return &command{
		name:    "get",
		args:    "ID",
		summary: "Show one job: state, epoch, node, restarts, error and detail.",
		setup: func(fs *flag.FlagSet) runner {
			return func(ctx context.Context, c *cli, args []string) error {
				if err := requireArgs(args, 1, 1, "job ID"); err != nil {
					return err
				}
				return c.oneJob(ctx, func(ctx context.Context, cl *client.Client) (*api.Job, error) {
					return cl.Get(ctx, args[0])
				}, false)
			}
		},
	}
}

func cancelCommand() *command {
	return &command{
		name:    "cancel",
		args:    "ID",
		summary: "Cancel a job; prints it, canceling or already terminal.",
		setup: func(fs *flag.FlagSet) runner {
			return func(ctx context.Context, c *cli, args []string) error {
				if err := requireArgs(args, 1, 1, "job ID"); err != nil {
					return err
				}
				return c.oneJob(ctx, func(ctx context.Context, cl *client.Client) (*api.Job, error) {
					return cl.Cancel(ctx, args[0])
				}, true)
			}
		},
	}
}

func deleteCommand() *command {
	return &command{
		name:    "delete",
		args:    "ID",
		summary: "Delete an ended job with its records, events and scratch objects (administrators); prints \"ID deleted\".",
		setup: func(fs *flag.FlagSet) runner {
			return func(ctx context.Context, c *cli, args []string) error {
				if err := requireArgs(args, 1, 1, "job ID"); err != nil {
					return err
				}
				return c.withClient(func(cl *client.Client) error {
					rctx, cancel := c.reqCtx(ctx)
					defer cancel()
					job, err := cl.Delete(rctx, args[0])
					if err != nil {
						return err
					}
					if c.g.json {
						return printJSON(c.stdout, job)
					}
					_, err = fmt.Fprintf(c.stdout, "%s deleted\n", job.ID)
					return err
				})
			}
		},
	}
}

// oneJob makes one request returning a job and prints it: in full, or as a
// single "id state" line when short.
func (c *cli) oneJob(ctx context.Context, call func(context.Context, *client.Client) (*api.Job, error), short bool) error {
	return c.withClient(func(cl *client.Client) error {
		rctx, cancel := c.reqCtx(ctx)
		defer cancel()
		job, err := call(rctx, cl)
		if err != nil {
			return err
		}
		switch {
		case c.g.json:
			return printJSON(c.stdout, job)
		case short:
			_, err := fmt.Fprintf(c.stdout, "%s %s\n", job.ID, job.State)
			return err
		}
		return printJob(c.stdout, job, time.Now())
	})
}
