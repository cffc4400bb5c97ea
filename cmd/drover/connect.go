package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/client"
	"github.com/drover-run/drover/pkg/topics"
)

// connect opens the NATS connection of the global flags and returns a client;
// close it with client.Conn().Close().
//
// Credentials other than --creds come from the same DROVER_NATS_* variables
// the services read (internal/config), so one environment serves both.
func (c *cli) connect() (*client.Client, error) {
	opts := []nats.Option{
		nats.Name("drover-cli"),
		nats.Timeout(c.g.timeout),
		// A CLI reconnects briefly (a NATS restart under `drover watch`),
		// but fails fast when nothing is there at all.
		nats.MaxReconnects(60),
		nats.ReconnectWait(500 * time.Millisecond),
	}
	opts = append(opts, c.natsAuth()...)
	nc, err := nats.Connect(c.g.natsURL, opts...)
	if err != nil {
		return nil, &api.Error{Code: api.CodeUnavailable, Message: fmt.Sprintf("connect to NATS at %s: %v", c.g.natsURL, err)}
	}
	return client.New(nc, topics.MustNew(c.g.prefix)), nil
}

func (c *cli) natsAuth() []nats.Option {
	var opts []nats.Option
	if c.g.creds != "" {
		opts = append(opts, nats.UserCredentials(c.g.creds))
	}
	if u := c.getenv("DROVER_NATS_USER"); u != "" {
		opts = append(opts, nats.UserInfo(u, c.getenv("DROVER_NATS_PASSWORD")))
	}
	if t := c.getenv("DROVER_NATS_TOKEN"); t != "" {
		opts = append(opts, nats.Token(t))
	}
	if f := c.getenv("DROVER_NATS_NKEY_SEED_FILE"); f != "" {
		if o, err := nats.NkeyOptionFromSeed(f); err == nil {
			opts = append(opts, o)
		}
	}
	if ca := c.getenv("DROVER_NATS_TLS_CA"); ca != "" {
		opts = append(opts, nats.RootCAs(ca))
	}
	if cert, key := c.getenv("DROVER_NATS_TLS_CERT"), c.getenv("DROVER_NATS_TLS_KEY"); cert != "" && key != "" {
		opts = append(opts, nats.ClientCert(cert, key))
	}
	return opts
}

// withClient connects, runs f and closes the connection.
func (c *cli) withClient(f func(cl *client.Client) error) error {
	cl, err := c.connect()
	if err != nil {
		return err
	}
	defer cl.Conn().Close()
	return f(cl)
}

// reqCtx bounds one API request by --timeout.
func (c *cli) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.g.timeout)
}
