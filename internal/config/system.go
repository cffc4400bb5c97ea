package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
)

// ConnName is the NATS connection name of a Drover process: namespace,
// kind and node id joined by ':' (none of them can contain one). The job
// manager maps a $SYS disconnect event back to the node by it.
func ConnName(prefix, kind, node string) string { return prefix + ":" + kind + ":" + node }

// ParseConnName splits a name made by ConnName.
func ParseConnName(name string) (prefix, kind, node string, ok bool) {
	parts := strings.Split(name, ":")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// HasSystemAccess reports whether system-account credentials are configured
// (DROVER_NATS_SYSTEM_CREDS or DROVER_NATS_SYSTEM_USER).
func (c *Common) HasSystemAccess() bool { return c.SystemCreds != "" || c.SystemUser != "" }

// ConnectSystem opens a connection in the NATS system account, with the
// same URL and TLS settings as Connect, so the job manager can follow
// $SYS.ACCOUNT.<account>.DISCONNECT events. It returns nil, nil when no
// system credentials are configured.
func (c *Common) ConnectSystem(name string, log *zap.Logger) (*nats.Conn, error) {
	if !c.HasSystemAccess() {
		return nil, nil
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("nats system connection lost", zap.Error(err))
		}),
	}
	if c.SystemCreds != "" {
		opts = append(opts, nats.UserCredentials(c.SystemCreds))
	}
	if c.SystemUser != "" {
		opts = append(opts, nats.UserInfo(c.SystemUser, c.SystemPass))
	}
	if c.TLSCA != "" {
		opts = append(opts, nats.RootCAs(c.TLSCA))
	}
	if c.TLSCert != "" {
		opts = append(opts, nats.ClientCert(c.TLSCert, c.TLSKey))
	}
	nc, err := nats.Connect(c.NATSURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS system account at %s: %w", c.NATSURL, err)
	}
	return nc, nil
}
