package jobmanager

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/config"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/topics"
)

// Fast failover from NATS system events. A crashed process's TCP
// connection closes at once and the server publishes
// $SYS.ACCOUNT.<account>.DISCONNECT naming the connection. Where the
// deployment grants the job manager system-account access
// (DROVER_NATS_SYSTEM_USER/PASSWORD or _CREDS), the leader fails a
// job-master node's masters over on the event instead of after the master
// timeout, and the other replicas take the lease over on the leader's own
// event instead of after the lease TTL. Heartbeat and lease timeouts still
// cover hangs and partitions, which close no connection.
//
// A connection's name is the client's claim. An event counts only if the
// server-side identity is the expected one and the connection (server and
// client id) is the very one the process announced: a node in its
// presence, the leader in its lease.

// openSystem connects to the system account when configured and follows
// disconnect events; the returned function stops. Without access, or if it
// fails, failover stays on the timeouts alone.
func (s *Service) openSystem(ctx context.Context) func() {
	if !s.cfg.HasSystemAccess() {
		return func() {}
	}
	sys, err := s.cfg.ConnectSystem(config.ConnName(s.cfg.Prefix, "jobmanager-sys", s.id), s.log)
	if err != nil {
		s.log.Warn("no system-account connection; failover on timeouts only", zap.Error(err))
		return func() {}
	}
	s.sys = sys
	s.sysAccount, s.identity = s.whoAmI(ctx)
	if s.cfg.JobMasterIdentities == "" {
		s.log.Warn("system-account access but no DROVER_JOBMASTER_IDENTITIES: job-master disconnect events are ignored, master failover on heartbeat timeouts only")
	}
	sub, err := sys.Subscribe("$SYS.ACCOUNT."+s.sysAccount+".DISCONNECT", s.onDisconnect)
	if err != nil {
		s.log.Warn("subscribe to disconnect events", zap.Error(err))
		sys.Close()
		return func() {}
	}
	s.log.Info("following NATS disconnect events for fast failover", zap.String("account", s.sysAccount),
		zap.Bool("identity_known", s.identity != ""))
	return func() { _ = sub.Unsubscribe(); sys.Close() }
}

// whoAmI asks the server which account and user the service's own
// connection is ($SYS.REQ.USER.INFO, answered for any user): the account
// whose events to follow ("*" if it cannot tell) and the identity this
// replica announces in its lease ("" if it cannot tell, which turns the
// fast lease take-over off).
func (s *Service) whoAmI(ctx context.Context) (account, user string) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	msg, err := s.deps.NC.RequestWithContext(ctx, "$SYS.REQ.USER.INFO", nil)
	if err != nil {
		return "*", ""
	}
	var rep struct {
		Data struct {
			Account string `json:"account"`
			User    string `json:"user"`
		} `json:"data"`
	}
	if json.Unmarshal(msg.Data, &rep) != nil || rep.Data.Account == "" {
		return "*", ""
	}
	return rep.Data.Account, rep.Data.User
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
// called (the leader's term). It does nothing without a system-account
// connection.
func (s *Service) followDisconnects(gone func(node, reason string)) func() {
	if s.sys == nil || s.cfg.JobMasterIdentities == "" {
		return func() {}
	}
	s.nodeGone.Store(&gone)
	return func() { s.nodeGone.Store(nil) }
}

// onDisconnect routes a disconnect event of this deployment: a job-master
// node's to the leader, the leading job manager's to the election.
func (s *Service) onDisconnect(msg *nats.Msg) {
	var ev disconnectEvent
	if json.Unmarshal(msg.Data, &ev) != nil {
		return
	}
	prefix, kind, node, ok := config.ParseConnName(ev.Client.Name)
	if !ok || prefix != s.cfg.Prefix {
		return
	}
	switch kind {
	case api.NodeJobMaster:
		if gone := s.nodeGone.Load(); gone != nil {
			s.onNodeDisconnect(ev, node, *gone)
		}
	case string(topics.RoleJobManager):
		if node != s.id {
			go s.onLeaderDisconnect(ev, node)
		}
	}
}

func (s *Service) onNodeDisconnect(ev disconnectEvent, node string, gone func(node, reason string)) {
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
		n, err := s.presence.GetNode(ctx, api.NodeJobMaster, node)
		if err != nil || n.ConnID != ev.Client.ID || n.Server != ev.Server.Name {
			s.log.Warn("ignored a disconnect event: not the node's announced connection",
				zap.String("node", node), zap.Uint64("conn_id", ev.Client.ID), zap.String("server", ev.Server.Name), zap.Error(err))
			return
		}
		gone(node, ev.Reason)
	}()
}

// onLeaderDisconnect hands the lease to this replica's campaign at once
// when the event is the leader's own connection closing: the holder, the
// identity and the connection its lease announces. The take-over is a CAS
// on the lease revision read here, so a leader that renewed meanwhile (it
// reconnected) keeps its lease; and a leader only acts while its lease
// names the connection it is on (mayLead), so the old one has stopped.
func (s *Service) onLeaderDisconnect(ev disconnectEvent, node string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	l, rev, err := s.election.Leader(ctx)
	if err != nil || l.Holder != node {
		return // not the leader's (a standby's, or the lease moved on)
	}
	if l.Identity == "" || (ev.Client.User != l.Identity && ev.Client.NameTag != l.Identity) ||
		l.ConnID != ev.Client.ID || l.Server != ev.Server.Name {
		s.log.Warn("ignored a disconnect event naming the leader: not the connection its lease announces",
			zap.String("node", node), zap.String("user", ev.Client.User),
			zap.Uint64("conn_id", ev.Client.ID), zap.String("server", ev.Server.Name))
		return
	}
	s.log.Info("the leader's connection closed; taking the lease over", zap.String("leader", node),
		zap.Uint64("lease_rev", rev), zap.String("reason", ev.Reason))
	s.election.Lapsed(rev)
}
