package jobmanager

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/drover-run/drover/pkg/kvstate"
)

// elect campaigns for the leader lease and leads while holding it.
func (s *Service) elect(ctx context.Context) {
	poll := min(s.cfg.LeaseTTL/5, 500*time.Millisecond)
	for {
		term, err := s.election.Campaign(ctx, s.announce)
		if err == nil {
			s.lead(ctx, term)
			continue
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("lease acquisition failed", zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(poll):
		}
	}
}

// announce is the lease record this replica writes: its id and the NATS
// connection it holds the lease from.
func (s *Service) announce() kvstate.Lease {
	l := kvstate.Lease{Holder: s.id, Identity: s.identity, Server: s.deps.NC.ConnectedServerName()}
	l.ConnID, _ = s.deps.NC.GetClientID()
	return l
}

// mayLead reports whether this replica's lease is certainly still valid. A
// leader checks it before every decision, so one that was frozen or cut
// off past its lease does not act on a stale view when it comes back.
//
// Where another replica may take the lease over on this one's disconnect
// event (an identity is announced), it also requires the connection the
// lease names to be the one it is on: after a reconnect it waits for its
// next renewal, which records the new connection, or fails if the lease
// was taken meanwhile.
func (s *Service) mayLead() bool {
	t := s.term.Load()
	if t == nil || !t.Held() {
		return false
	}
	l := t.Lease()
	if l.Identity == "" {
		return true
	}
	cid, err := s.deps.NC.GetClientID()
	return err == nil && s.deps.NC.IsConnected() && cid == l.ConnID && s.deps.NC.ConnectedServerName() == l.Server
}

// lead runs the scheduler for one term.
func (s *Service) lead(ctx context.Context, term *kvstate.Term) {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.term.Store(term)
	defer s.term.Store(nil)
	s.leading.Store(true)
	s.metrics.leaderChanges.Inc()
	s.metrics.leader.Set(1)
	s.log.Info("leading", zap.Uint64("lease_rev", term.Token()), zap.String("won", term.How()))
	defer func() {
		s.leading.Store(false)
		s.metrics.leader.Set(0)
		// Only the leader counts jobs by state; a former leader's counts
		// would go stale, so it stops exporting them.
		s.metrics.jobs.Reset()
	}()

	done := make(chan struct{})
	go func() {
		defer close(done)
		newLeader(s).run(lctx)
	}()
	select {
	case <-ctx.Done():
	case <-term.Done():
	}
	cancel()
	<-done
	if ctx.Err() == nil {
		s.log.Warn("lease lost")
		return
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
	err := term.Resign(rctx)
	rcancel()
	if err != nil && !errors.Is(err, kvstate.ErrNotLeader) {
		s.log.Warn("lease release failed", zap.Error(err))
	}
	s.log.Info("leadership released")
}
