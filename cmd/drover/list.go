package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/client"
)

func listCommand() *command {
	return &command{
		name:    "list",
		summary: "List jobs in the order they last changed, one page at a time (--all follows every page).",
		setup: func(fs *flag.FlagSet) runner {
			var req api.ListRequest
			var state string
			var all bool
			fs.StringVar(&state, "state", "", "only jobs in this `state` (created, pending, running, canceling, finished, failed, canceled)")
			fs.StringVar(&req.Type, "type", "", "only jobs of this `type`")
			fs.IntVar(&req.Limit, "limit", 0, "at most `N` jobs per page (0: the server's default)")
			fs.StringVar(&req.After, "after", "", "start at this `cursor` (the previous page's next)")
			fs.BoolVar(&req.Detail, "detail", false, "include each job's detail (left out by default)")
			fs.BoolVar(&all, "all", false, "follow the pagination cursor through every page")
			return func(ctx context.Context, c *cli, args []string) error {
				if err := requireArgs(args, 0, 0, ""); err != nil {
					return err
				}
				req.State = api.State(state)
				if state != "" && !req.State.Valid() {
					return usagef("--state %q is not a job state", state)
				}
				if req.Limit < 0 {
					return usagef("--limit must not be negative")
				}
				return c.withClient(func(cl *client.Client) error {
					jobs, next, err := c.list(ctx, cl, req, all)
					if err != nil {
						return err
					}
					if c.g.json {
						return printJSON(c.stdout, jobPage{Jobs: nonNil(jobs), Next: next})
					}
					if err := printJobs(c.stdout, jobs, time.Now()); err != nil {
						return err
					}
					if next != "" {
						fmt.Fprintf(c.stderr, "more: drover list --after %s (or --all)\n", next)
					}
					return nil
				})
			}
		},
	}
}

// list fetches one page, or every page when all is set.
func (c *cli) list(ctx context.Context, cl *client.Client, req api.ListRequest, all bool) ([]api.Job, string, error) {
	var out []api.Job
	for {
		rctx, cancel := c.reqCtx(ctx)
		jobs, next, err := cl.List(rctx, req)
		cancel()
		if err != nil {
			return nil, "", err
		}
		out = append(out, jobs...)
		if !all || next == "" {
			return out, next, nil
		}
		if next == req.After {
			return nil, "", fmt.Errorf("list: the server returned the same cursor %q twice", next)
		}
		req.After = next
	}
}

// jobPage is list's JSON output: the API's reply shape, but with "jobs"
// always present (an empty list is [], not absent), as scripts iterate it.
type jobPage struct {
	Jobs []api.Job `json:"jobs"`
	Next string    `json:"next,omitempty"`
}

func nonNil(jobs []api.Job) []api.Job {
	if jobs == nil {
		return []api.Job{}
	}
	return jobs
}
