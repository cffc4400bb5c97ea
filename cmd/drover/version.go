package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/drover-run/drover/internal/buildinfo"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/client"
)

// serverVersion is one job manager replica as its micro PING describes it.
type serverVersion struct {
	Replica string `json:"replica"`
	Version string `json:"version"`
	ID      string `json:"id"`
}

func versionCommand() *command {
	return &command{
		name:    "version",
		summary: "Print the client's build and the servers' (each job manager replica's, from its micro PING).",
		setup: func(fs *flag.FlagSet) runner {
			var clientOnly bool
			fs.BoolVar(&clientOnly, "client", false, "print the client's version only (no connection)")
			return func(ctx context.Context, c *cli, args []string) error {
				if err := requireArgs(args, 0, 0, ""); err != nil {
					return err
				}
				bi := buildinfo.Get()
				var servers []serverVersion
				var serr error
				if !clientOnly {
					serr = c.withClient(func(cl *client.Client) error {
						var err error
						servers, err = c.pingServers(ctx, cl)
						return err
					})
				}
				if c.g.json {
					out := map[string]any{"client": bi}
					if !clientOnly {
						out["servers"] = append([]serverVersion{}, servers...)
					}
					_ = printJSON(c.stdout, out)
				} else {
					rev := ""
					if bi.Revision != "" {
						rev = ", revision " + bi.Revision
						if bi.Modified {
							rev += " (modified)"
						}
					}
					fmt.Fprintf(c.stdout, "client: %s (%s%s)\n", bi.Version, bi.GoVersion, rev)
					for _, s := range servers {
						fmt.Fprintf(c.stdout, "server: %s (job manager %s)\n", s.Version, s.Replica)
					}
				}
				return serr
			}
		},
	}
}

// pingServers asks every job manager replica of the deployment for its
// version: the first answer within --timeout, then whatever else arrives
// shortly after.
func (c *cli) pingServers(ctx context.Context, cl *client.Client) ([]serverVersion, error) {
	subj, err := micro.ControlSubject(micro.PingVerb, "drover", "")
	if err != nil {
		return nil, err
	}
	inbox := cl.Conn().NewRespInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := cl.Conn().ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := cl.Conn().PublishRequest(subj, inbox, nil); err != nil {
		return nil, err
	}
	var out []serverVersion
	wait := time.NewTimer(c.g.timeout)
	defer wait.Stop()
	for {
		select {
		case m := <-ch:
			var p micro.Ping
			if json.Unmarshal(m.Data, &p) == nil && p.Metadata["prefix"] == c.g.prefix {
				out = append(out, serverVersion{Replica: p.Metadata["replica"], Version: p.Version, ID: p.ID})
				if len(out) == 1 {
					wait.Reset(250 * time.Millisecond)
				}
			}
		case <-wait.C:
			sort.Slice(out, func(i, j int) bool { return out[i].Replica < out[j].Replica })
			if len(out) == 0 {
				return nil, &api.Error{Code: api.CodeUnavailable, Message: fmt.Sprintf(
					"no job manager of prefix %q answered $SRV.PING.drover within %s", c.g.prefix, c.g.timeout)}
			}
			return out, nil
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
}
