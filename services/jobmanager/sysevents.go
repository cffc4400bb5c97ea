package jobmanager

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/config"
	"github.com/drover-run/drover/pkg/api"
)

// Fast failover from NATS system events. A crashed job-master node's TCP
// connection closes at once and the server publishes
// $SYS.ACCOUNT.<account>.DISCONNECT naming the connection; where the
// deployment grants the job manager system-account access
// (DROVER_NATS_SYSTEM_USER/PASSWORD or _CREDS), the leader fails that
// node's masters over on the event instead of after the master timeout.
// Heartbeat timeouts still cover hangs and partitions, which close no
// connection.

// openSystem connects to the system account when configured; the returned
// function closes it. Without access, or if it fails, failover stays on
// heartbeat timeouts alone.
func (s *Service) openSystem(ctx context.Context) func() {
	if !s.cfg.HasSystemAccess() {
		return func() {}
	}
	if s.cfg.JobMasterIdentities == "" {
		s.log.Warn("system-account access but no DROVER_JOBMASTER_IDENTITIES: disconnect events are ignored, failover on heartbeat timeouts only")
		return func() {}
	}
	sys, err := s.cfg.ConnectSystem(config.ConnName(s.cfg.Prefix, "jobmanager-sys", s.id), s.log)
	if err != nil {
		s.log.Warn("no system-account connection; failover on heartbeat timeouts only", zap.Error(err))
		return func() {}
	}
	s.sys = sys
	s.sysAccount = s.account(ctx)
	s.log.Info("following NATS disconnect events for fast failover", zap.String("account", s.sysAccount))
	return sys.Close
}

// account asks the server which account the service's own connection is
// in ($SYS.REQ.USER.INFO, answered for any user); "*" if it cannot tell.
func (s *Service) account(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	msg, err := s.deps.NC.RequestWithContext(ctx, "$SYS.REQ.USER.INFO", nil)
	if err != nil {
		return "*"
	}
	var rep struct {
		Data struct {
			Account string `json:"account"`
		} `json:"data"`
	}
	if json.Unmarshal(msg.Data, &rep) != nil || rep.Data.Account == "" {
		return "*"
	}
	return rep.Data.Account
}

// disconnectEvent is the part of the server's client_disconnect advisory
// the leader reads.
type disconnectEvent struct {
	Client struct {
		Account string `json:"acc"`
		Name    string `json:"name"`
		ID      uint64 `json:"id"`
		// The authenticated identity: user name or nkey (user), JWT
		// user's name (name_tag). Only these are proof.
		User    string `json:"user"`
		NameTag string `json:"name_tag"`
	} `json:"client"`
	// Server is the server the connection was on; with Client.ID it
	// names the connection.
	Server struct {
		Name string `json:"name"`
	} `json:"server"`
	Reason string `json:"reason"`
}

// followDisconnects calls gone with the id of every job-master node of
// this deployment whose connection closes, until the returned function is
// called. It does nothing without a system-account connection.
func (s *Service) followDisconnects(gone func(node, reason string)) func() {
	if s.sys == nil {
		return func() {}
	}
	sub, err := s.sys.Subscribe("$SYS.ACCOUNT."+s.sysAccount+".DISCONNECT", func(msg *nats.Msg) {
		var ev disconnectEvent
		if json.Unmarshal(msg.Data, &ev) != nil {
			return
		}
		prefix, kind, node, ok := config.ParseConnName(ev.Client.Name)
		if !ok || prefix != s.cfg.Prefix || kind != api.NodeJobMaster {
			return
		}
		// The name is the client's claim; the identity is the server's.
		if !s.cfg.JobMasterIdentity(ev.Client.User, ev.Client.NameTag) {
			s.log.Warn("ignored a disconnect event naming a job-master node: not a job-master identity",
				zap.String("node", node), zap.String("user", ev.Client.User))
			return
		}
		// Every job-master node shares the identity: the connection must
		// also be the one the node announced in its presence.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := s.store.GetNode(ctx, api.NodeJobMaster, node)
			if err != nil || n.ConnID != ev.Client.ID || n.Server != ev.Server.Name {
				s.log.Warn("ignored a disconnect event: not the node's announced connection",
					zap.String("node", node), zap.Uint64("conn_id", ev.Client.ID), zap.String("server", ev.Server.Name), zap.Error(err))
				return
			}
			gone(node, ev.Reason)
		}()
	})
	if err != nil {
		s.log.Warn("subscribe to disconnect events", zap.Error(err))
		return func() {}
	}
	return func() { _ = sub.Unsubscribe() }
}
