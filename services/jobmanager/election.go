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
		sent := time.Now()
		rev, err := s.store.AcquireLease(ctx, s.id)
		wait := poll
		switch {
		case err == nil:
			s.lead(ctx, rev, sent)
		case errors.Is(err, kvstate.ErrExists):
			// Act the moment the holder's lease lapses (a crashed or cut-off
			// leader's), not up to a poll later: take a lapsed lease over
			// by CAS on its revision, which fails if the holder renewed.
			at, lrev, ok, err := s.store.LeaseExpiry(ctx, s.cfg.LeaseTTL)
			if err != nil || !ok {
				break
			}
			if time.Now().After(at) {
				sent = time.Now()
				if nrev, err := s.store.RenewLease(ctx, s.id, lrev); err == nil {
					s.log.Info("took over a lapsed lease", zap.Time("lapsed_at", at))
					s.lead(ctx, nrev, sent)
					break
				}
			}
			wait = min(max(time.Until(at)+5*time.Millisecond, 5*time.Millisecond), poll)
		case ctx.Err() == nil:
			s.log.Warn("lease acquisition failed", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// leaseMargin is how long before its lease may lapse a leader stops acting.
func (s *Service) leaseMargin() time.Duration { return s.cfg.LeaseTTL / 10 }

// holdLease records that the lease, written by a request sent at sent, is
// ours until at least sent + TTL: nobody else can acquire it before.
func (s *Service) holdLease(sent time.Time) {
	s.leaseUntil.Store(sent.Add(s.cfg.LeaseTTL - s.leaseMargin()).UnixNano())
}

// mayLead reports whether this replica's lease is certainly still valid. A
// leader checks it before every decision, so one that was frozen or cut
// off past its lease does not act on a stale view when it comes back.
func (s *Service) mayLead() bool { return time.Now().UnixNano() < s.leaseUntil.Load() }

// lead runs the scheduler while the lease is renewed.
func (s *Service) lead(ctx context.Context, rev uint64, sent time.Time) {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.holdLease(sent)
	defer s.leaseUntil.Store(0)
	s.leading.Store(true)
	s.metrics.leaderChanges.Inc()
	s.metrics.leader.Set(1)
	s.log.Info("leading", zap.Uint64("lease_rev", rev))
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
	renew := time.NewTicker(s.cfg.LeaseTTL / 3)
	defer renew.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-ctx.Done():
			cancel()
			<-done
			rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = s.store.ReleaseLease(rctx, rev)
			rcancel()
			s.log.Info("leadership released")
			return
		case <-renew.C:
			sent := time.Now()
			nrev, err := s.store.RenewLease(ctx, s.id, rev)
			switch {
			case err == nil:
				rev, lastOK = nrev, time.Now()
				s.holdLease(sent)
				continue
			case errors.Is(err, kvstate.ErrNotLeader):
				s.log.Warn("lease lost")
			case time.Since(lastOK) < s.cfg.LeaseTTL-s.cfg.LeaseTTL/3:
				s.log.Warn("lease renewal failed, retrying", zap.Error(err))
				continue
			default:
				s.log.Warn("lease renewal failed too long, stepping down", zap.Error(err))
			}
			cancel()
			<-done
			return
		}
	}
}
