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
		summary: "List a job's workers: node, epoch, state, progress.",
		setup: func(fs *flag.FlagSet) runner {
			return func(ctx context.Context, c *cli, args []string) error {
				if err := requireArgs(args, 1, 1, "job ID"); err != nil {
					return err
				}
				return c.withClient(func(cl *client.Client) error {
					rctx, cancel := c.reqCtx(ctx)
					defer cancel()
					ws, err := cl.Workers(rctx, args[0])
					if err != nil {
						return err
					}
					sortWorkers(ws)
					if c.g.json {
						if ws == nil {
							ws = []api.Worker{}
						}
						return printJSON(c.stdout, struct {
							Workers  []api.Worker `json:"workers"`
							Progress progress     `json:"progress"`
						}{ws, aggregate(ws)})
					}
					return printWorkers(c, ws, time.Now())
				})
			}
		},
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
