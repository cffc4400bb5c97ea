package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drover-run/drover/internal/config"
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
	auth, err := c.natsAuth()
	if err != nil {
		return nil, &api.Error{Code: api.CodeInvalidArgument, Message: err.Error()}
	}
	nc, err := nats.Connect(c.g.natsURL, append(opts, auth...)...)
	if err != nil {
		return nil, &api.Error{Code: api.CodeUnavailable, Message: fmt.Sprintf("connect to NATS at %s: %v", c.g.natsURL, err)}
	}
	return client.New(nc, topics.MustNew(c.g.prefix)), nil
}

func (c *cli) natsAuth() ([]nats.Option, error) {
	common := config.Common{
		NATSCreds: c.g.creds, NATSUser: c.getenv("DROVER_NATS_USER"), NATSPassword: c.getenv("DROVER_NATS_PASSWORD"),
		NATSToken: c.getenv("DROVER_NATS_TOKEN"), NATSNKeySeed: c.getenv("DROVER_NATS_NKEY_SEED_FILE"),
		TLSCA: c.getenv("DROVER_NATS_TLS_CA"), TLSCert: c.getenv("DROVER_NATS_TLS_CERT"), TLSKey: c.getenv("DROVER_NATS_TLS_KEY"),
	}
	return common.NATSOptions()
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
