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
func (c *Common) HasSystemAccess() bool {
	return c.SystemCreds != "" || c.SystemUser != "" || c.SystemNKey != "" || c.SystemNKeyV != ""
}

// JobMasterIdentity reports whether the identity of a $SYS event's client
// (its user, nkey or JWT name tag) is a job-master node's. The connection
// name is chosen by the client and proves nothing.
func (c *Common) JobMasterIdentity(ids ...string) bool {
	for _, want := range strings.Split(c.JobMasterIdentities, ",") {
		want = strings.TrimSpace(want)
		if want == "" {
			continue
		}
		for _, id := range ids {
			if id == want {
				return true
			}
		}
	}
	return false
}

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
	o, err := nkeyOption("DROVER_NATS_SYSTEM_NKEY_SEED", c.SystemNKey, c.SystemNKeyV)
	if err != nil {
		return nil, err
	}
	if o != nil {
		opts = append(opts, o)
	}
	opts = append(opts, c.tlsOptions()...)
	nc, err := nats.Connect(c.NATSURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS system account at %s: %w", c.NATSURL, err)
	}
	return nc, nil
}
