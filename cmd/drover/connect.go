package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drover-run/drover/internal/config"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/client"
	"github.com/drover-run/drover/pkg/topics"
)

// connSettings are the NATS connection settings of one invocation.
type connSettings struct {
	url     string
	urlFrom string // where the URL came from, for error messages
	auth    config.Common
	inbox   string // the context's inbox prefix, if any
}

// connSettings resolves the connection settings as natscli does, each
// setting on its own, the first that is set winning:
//
//  1. the command line: -s/--server (or --nats-url), --creds, --user,
//     --password, --tlscert, --tlskey, --tlsca;
//  2. DROVER_NATS_* variables (the services' own);
//  3. natscli's variables: NATS_URL, NATS_CREDS, NATS_USER, NATS_PASSWORD,
//     NATS_CERT, NATS_KEY, NATS_CA;
//  4. the nats context: --context, else NATS_CONTEXT, else the one `nats
//     context select` chose;
//  5. nats://127.0.0.1:4222 without credentials.
func (c *cli) connSettings() (connSettings, error) {
	env := c.getenv
	if c.devOnly {
		env = func(k string) string {
			if strings.HasPrefix(k, "DROVER_") {
				return c.getenv(k)
			}
			return ""
		}
	}
	name := c.g.natsCtx
	if name == "" {
		name = env("NATS_CONTEXT")
	}
	if name == "" && !c.devOnly {
		name = selectedContext(env)
	}
	var nctx natsContext
	if name != "" {
		loaded, err := loadContext(env, name)
		if err != nil {
			return connSettings{}, err
		}
		nctx = *loaded
	}
	pick := func(flag, droverEnv, natsEnv, fromContext string) string {
		for _, v := range []string{flag, env(droverEnv), env(natsEnv), fromContext} {
			if v != "" {
				return v
			}
		}
		return ""
	}
	s := connSettings{inbox: nctx.InboxPrefix}
	switch {
	case c.g.natsURL != "":
		s.url, s.urlFrom = c.g.natsURL, "--server"
	case env("DROVER_NATS_URL") != "":
		s.url, s.urlFrom = env("DROVER_NATS_URL"), "DROVER_NATS_URL"
	case env("NATS_URL") != "":
		s.url, s.urlFrom = env("NATS_URL"), "NATS_URL"
	case nctx.URL != "":
		s.url, s.urlFrom = nctx.URL, "context "+name
	default:
		s.url, s.urlFrom = defaultNATSURL, "the default"
	}
	s.auth = config.Common{
		NATSCreds:    pick(c.g.creds, "DROVER_NATS_CREDS", "NATS_CREDS", nctx.Creds),
		NATSUser:     pick(c.g.user, "DROVER_NATS_USER", "NATS_USER", nctx.User),
		NATSPassword: pick(c.g.password, "DROVER_NATS_PASSWORD", "NATS_PASSWORD", nctx.Password),
		NATSToken:    pick("", "DROVER_NATS_TOKEN", "NATS_TOKEN", nctx.Token),
		NATSNKeySeed: pick("", "DROVER_NATS_NKEY_SEED_FILE", "NATS_NKEY", nctx.NKey),
		TLSCert:      pick(c.g.tlsCert, "DROVER_NATS_TLS_CERT", "NATS_CERT", nctx.Cert),
		TLSKey:       pick(c.g.tlsKey, "DROVER_NATS_TLS_KEY", "NATS_KEY", nctx.Key),
		TLSCA:        pick(c.g.tlsCA, "DROVER_NATS_TLS_CA", "NATS_CA", nctx.CA),
	}
	return s, nil
}

// connect opens the NATS connection of the global flags, environment and
// nats context, and returns a client; close it with client.Conn().Close().
func (c *cli) connect() (*client.Client, error) {
	s, err := c.connSettings()
	if err != nil {
		return nil, &api.Error{Code: api.CodeInvalidArgument, Message: err.Error()}
	}
	opts := []nats.Option{
		nats.Name("drover-cli"),
		nats.Timeout(c.g.timeout),
		// A CLI reconnects briefly (a NATS restart under `drover watch`),
		// but fails fast when nothing is there at all.
		nats.MaxReconnects(60),
		nats.ReconnectWait(500 * time.Millisecond),
		// The connection's asynchronous errors (a subscription refused, a
		// slow consumer) are warnings on the CLI's stderr, not nats.go's
		// own print.
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				fmt.Fprintf(c.stderr, "warning: %v (subject %s)\n", err, sub.Subject)
				return
			}
			fmt.Fprintf(c.stderr, "warning: %v\n", err)
		}),
	}
	if s.inbox != "" {
		opts = append(opts, nats.CustomInboxPrefix(s.inbox))
	}
	auth, err := s.auth.NATSOptions()
	if err != nil {
		return nil, &api.Error{Code: api.CodeInvalidArgument, Message: err.Error()}
	}
	nc, err := nats.Connect(s.url, append(opts, auth...)...)
	if err != nil {
		return nil, &api.Error{Code: api.CodeUnavailable, Message: fmt.Sprintf("connect to NATS at %s (from %s): %v", s.url, s.urlFrom, err)}
	}
	return client.New(nc, topics.MustNew(c.g.prefix)), nil
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
