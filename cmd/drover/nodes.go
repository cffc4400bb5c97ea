package main

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/client"
)

func nodesCommand() *command {
	return &command{
		name:    "nodes",
		summary: "List every live job-master and worker node: kind, labels, capacity, load, age.",
		setup: func(fs *flag.FlagSet) runner {
			var kind string
			fs.StringVar(&kind, "kind", "", "only nodes of this `kind` (jobmaster or worker)")
			return func(ctx context.Context, c *cli, args []string) error {
				if err := requireArgs(args, 0, 0, ""); err != nil {
					return err
				}
				if kind != "" && kind != api.NodeJobMaster && kind != api.NodeWorker {
					return usagef("--kind must be %s or %s", api.NodeJobMaster, api.NodeWorker)
				}
				return c.withClient(func(cl *client.Client) error {
					rctx, cancel := c.reqCtx(ctx)
					defer cancel()
					nodes, err := cl.Nodes(rctx)
					if err != nil {
						return err
					}
					nodes = filterNodes(nodes, kind)
					if c.g.json {
						return printJSON(c.stdout, struct {
							Nodes []api.Node `json:"nodes"`
						}{nodes})
					}
					return printNodes(c, nodes, time.Now())
				})
			}
		},
	}
}

// filterNodes keeps nodes of kind ("" for all), sorted by kind then id.
func filterNodes(nodes []api.Node, kind string) []api.Node {
	out := []api.Node{}
	for _, n := range nodes {
		if kind == "" || n.Kind == kind {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func printNodes(c *cli, nodes []api.Node, now time.Time) error {
	tw := newTable(c.stdout)
	fmt.Fprintln(tw, "KIND\tID\tLABELS\tCAPACITY\tLOAD\tTYPES\tHTTP\tAGE")
	for _, n := range nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n",
			n.Kind, n.ID, labels(n.Labels), n.Capacity, n.Load,
			dash(strings.Join(n.Types, ",")), dash(n.HTTPAddr), age(n.StartedAt, now))
	}
	return tw.Flush()
}
