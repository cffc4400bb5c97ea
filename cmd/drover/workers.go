package main

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"time"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/client"
)

func workersCommand() *command {
	return &command{
		name:    "workers",
		args:    "JOB",
		summary: "List a job's workers: node, epoch, state, progress (every page, in id order).",
		setup: func(fs *flag.FlagSet) runner {
			var state string
			var limit int
			fs.StringVar(&state, "state", "", "only workers in this `state` (created, online, waiting, finished, failed, canceled, lost)")
			fs.IntVar(&limit, "limit", 0, "show at most `N` workers (0: all of them)")
			return func(ctx context.Context, c *cli, args []string) error {
				if err := requireArgs(args, 1, 1, "job ID"); err != nil {
					return err
				}
				if limit < 0 {
					return usagef("--limit must not be negative")
				}
				return c.withClient(func(cl *client.Client) error {
					ws, total, err := c.workers(ctx, cl, api.WorkersRequest{ID: args[0], State: state}, limit)
					if err != nil {
						return err
					}
					if c.g.json {
						if ws == nil {
							ws = []api.Worker{}
						}
						return printJSON(c.stdout, struct {
							Workers  []api.Worker `json:"workers"`
							Total    int          `json:"total"`
							Progress progress     `json:"progress"`
						}{ws, total, aggregate(ws)})
					}
					if err := printWorkers(c, ws, time.Now()); err != nil {
						return err
					}
					if len(ws) < total {
						fmt.Fprintf(c.stderr, "%d of the job's %d workers shown\n", len(ws), total)
					}
					return nil
				})
			}
		},
	}
}

// workers reads a job's workers page by page (each request with its own
// timeout), at most limit of them if limit > 0, and returns them with the
// job's worker count. A read of more than one page reports its progress
// on stderr.
func (c *cli) workers(ctx context.Context, cl *client.Client, req api.WorkersRequest, limit int) ([]api.Worker, int, error) {
	var out []api.Worker
	total := 0
	for {
		req.Limit = client.MaxWorkersPage
		if limit > 0 {
			req.Limit = min(limit-len(out), client.MaxWorkersPage)
		}
		rctx, cancel := c.reqCtx(ctx)
		rep, err := cl.WorkersPage(rctx, req)
		cancel()
		if err != nil {
			return nil, 0, err
		}
		out, total = append(out, rep.Workers...), rep.Total
		if rep.Next == "" || (limit > 0 && len(out) >= limit) {
			return out, total, nil
		}
		if rep.Next <= req.After {
			return nil, 0, fmt.Errorf("workers: the server returned cursor %q after %q", rep.Next, req.After)
		}
		req.After = rep.Next
		fmt.Fprintf(c.stderr, "read %d of %d workers\n", len(out), total)
	}
}

func sortWorkers(ws []api.Worker) {
	sort.Slice(ws, func(i, j int) bool { return ws[i].ID < ws[j].ID })
}

func printWorkers(c *cli, ws []api.Worker, now time.Time) error {
	tw := newTable(c.stdout)
	fmt.Fprintln(tw, "ID\tTYPE\tNODE\tEPOCH\tSTATE\tPROGRESS\tREASON\tUPDATED")
	for _, w := range ws {
		reason := w.Reason
		if w.Error != nil {
			reason = errString(w.Error)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n",
			w.ID, dash(w.Type), dash(w.Node), w.Epoch, dash(w.State), workerRatio(w.Status), dash(reason), age(w.UpdatedAt, now))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if p := aggregate(ws); p.known() && len(ws) > 1 {
		fmt.Fprintf(c.stdout, "total: %s\n", p.ratio())
	}
	return nil
}
