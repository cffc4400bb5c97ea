package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"go.uber.org/zap"

	"github.com/drover-run/drover/pkg/topics"
)

// Connect opens the NATS connection with the configured credentials and TLS,
// reconnecting forever: a process cut off from NATS keeps trying, and on
// return finds out from its fences whether it still may act.
//
// The connection is named ConnName(prefix, name, node id), name being the
// service kind, so a job manager with system-account access can tell
// which node a $SYS disconnect event is about.
func (c *Common) Connect(name string, log *zap.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(ConnName(c.Prefix, name, c.NodeIDOr(name))),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("nats disconnected", zap.Error(err))
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", zap.String("url", nc.ConnectedUrlRedacted()))
		}),
		// Asynchronous errors (a slow consumer, a permission refused) go to
		// the service's log, not to nats.go's default print on stderr.
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				log.Warn("nats error", zap.String("subject", sub.Subject), zap.Error(err))
				return
			}
			log.Warn("nats error", zap.Error(err))
		}),
	}
	// A service's replies come to an inbox of its own role, which clients
	// may not subscribe to (pkg/topics InboxPrefix).
	if r, err := topics.ParseRole(name); err == nil && r.Service() {
		if p, err := topics.New(c.Prefix); err == nil {
			opts = append(opts, nats.CustomInboxPrefix(p.InboxPrefix(r)))
		}
	}
	auth, err := c.NATSOptions()
	if err != nil {
		return nil, err
	}
	opts = append(opts, auth...)
	// A first attempt without retrying tells a server that is not up yet
	// (retry until it is) from one that refuses these settings: TLS or
	// credentials that do not match never heal, so the service stops with
	// the reason instead of retrying forever.
	nc, err := nats.Connect(c.NATSURL, opts[:len(opts):len(opts)]...)
	if err == nil {
		return nc, nil
	}
	if permanentConnectError(err) {
		return nil, fmt.Errorf("connect to NATS at %s (check DROVER_NATS_TLS_* and the credentials): %w", c.NATSURL, err)
	}
	log.Warn("nats not reachable yet, retrying", zap.String("url", c.NATSURL), zap.Error(err))
	nc, err = nats.Connect(c.NATSURL, append(opts, nats.RetryOnFailedConnect(true))...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", c.NATSURL, err)
	}
	return nc, nil
}

// permanentConnectError reports errors of the connection's settings, not of
// the server's availability: TLS refused either way, or credentials refused.
func permanentConnectError(err error) bool {
	var certErr *tls.CertificateVerificationError
	var alert tls.AlertError
	var header tls.RecordHeaderError
	switch {
	case errors.Is(err, nats.ErrSecureConnRequired), errors.Is(err, nats.ErrSecureConnWanted),
		errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired),
		errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrAccountAuthExpired):
		return true
	case errors.As(err, &certErr), errors.As(err, &alert), errors.As(err, &header):
		return true
	}
	// The server's own words for a TLS or authorization failure.
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "tls") || strings.Contains(msg, "x509") || strings.Contains(msg, "authorization violation")
}

// NATSOptions returns the credential and TLS options of the settings; the
// CLI uses them too, so one environment serves services and CLI alike.
func (c *Common) NATSOptions() ([]nats.Option, error) {
	var opts []nats.Option
	if c.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(c.NATSCreds))
	}
	if c.NATSUser != "" {
		opts = append(opts, nats.UserInfo(c.NATSUser, c.NATSPassword))
	}
	if c.NATSToken != "" {
		opts = append(opts, nats.Token(c.NATSToken))
	}
	o, err := nkeyOption("DROVER_NATS_NKEY_SEED", c.NATSNKeySeed, c.NATSNKey)
	if err != nil {
		return nil, err
	}
	if o != nil {
		opts = append(opts, o)
	}
	return append(opts, c.tlsOptions()...), nil
}

// tlsOptions: TLS is required as soon as a CA or a client certificate is
// configured, so a server without TLS is refused instead of used in clear.
func (c *Common) tlsOptions() []nats.Option {
	var opts []nats.Option
	if c.TLSCA != "" {
		opts = append(opts, nats.RootCAs(c.TLSCA))
	}
	if c.TLSCert != "" {
		opts = append(opts, nats.ClientCert(c.TLSCert, c.TLSKey))
	}
	if len(opts) > 0 {
		opts = append(opts, nats.Secure())
	}
	return opts
}

// nkeyOption authenticates with an nkey seed from a file or, failing
// that, from the value itself; nil when neither is set.
func nkeyOption(env, file, value string) (nats.Option, error) {
	if file != "" {
		o, err := nats.NkeyOptionFromSeed(file)
		if err != nil {
			return nil, fmt.Errorf("%s_FILE: %w", env, err)
		}
		return o, nil
	}
	if value == "" {
		return nil, nil
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(value)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", env, err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", env, err)
	}
	return nats.Nkey(pub, kp.Sign), nil
}
