package kvstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The job-manager leadership is one key of the leader bucket, whose entries
// expire LeaseTTL after their last write. A replica wins it by creating the
// key, keeps it by rewriting it with CAS every TTL/3, and gives it up by
// deleting it with CAS. Every write is conditioned on the revision its
// writer last saw, so the revision is the fencing token: once another
// replica has taken the lease, each write of the former holder (a renewal,
// a resignation) is refused by the server.

const leaseKey = "leader"

// How a term was won (Term.How).
const (
	WonFree         = "free"         // nobody held the lease
	WonLapsed       = "lapsed"       // the holder stopped renewing for a TTL
	WonDisconnected = "disconnected" // the holder's connection closed (Election.Lapsed)
)

// Lease is the leadership as recorded in KV. Besides the holder it names
// the holder's NATS connection, so that the other replicas can tell the
// server's report of that very connection closing (which proves the holder
// gone) from a client that merely borrows the holder's name.
type Lease struct {
	Holder   string    `json:"holder"`
	Acquired time.Time `json:"acquired"`
	// Identity is the holder's authenticated NATS identity (user name,
	// nkey or JWT user key) as the server reported it; Server and ConnID
	// name its connection. Empty when the holder could not tell.
	Identity string `json:"identity,omitempty"`
	Server   string `json:"server,omitempty"`
	ConnID   uint64 `json:"conn_id,omitempty"`
}

// Election campaigns for the leadership of one deployment. One replica
// keeps one Election.
type Election struct {
	s   *Store
	ttl time.Duration
	// lapsed carries the revision of a lease whose holder is known to be
	// gone: a campaign under way takes it over at once.
	lapsed chan uint64
}

// Election returns the deployment's election; its lease lasts
// Options.LeaseTTL after each renewal.
func (s *Store) Election() *Election {
	return &Election{s: s, ttl: s.leaseTTL, lapsed: make(chan uint64, 1)}
}

// TTL returns how long a lease outlives its last renewal.
func (e *Election) TTL() time.Duration { return e.ttl }

// Leader returns the current lease and its revision; ErrNotFound when
// nobody holds it.
func (e *Election) Leader(ctx context.Context) (Lease, uint64, error) {
	l, rev, _, err := e.leader(ctx)
	return l, rev, err
}

// leader also returns when the lease lapses unless renewed: the server
// time of its last write plus the TTL. The bucket's own expiry runs on a
// coarse timer; a campaign acts at that moment instead.
func (e *Election) leader(ctx context.Context) (_ Lease, rev uint64, lapse time.Time, err error) {
	defer e.s.observe("get_lease", time.Now(), &err)
	en, err := e.s.get(ctx, e.s.leader, leaseKey)
	if err != nil {
		return Lease{}, 0, time.Time{}, err
	}
	l, err := decode[Lease](en)
	return l, en.Revision(), en.Created().Add(e.ttl), err
}

// Lapsed tells a campaign under way (or the next one) that the lease at
// rev is dead: its holder's connection closed. The campaign takes it over
// at once by CAS on rev, which fails if the holder renewed meanwhile, so a
// wrong or late report costs nothing.
func (e *Election) Lapsed(rev uint64) {
	select {
	case <-e.lapsed:
	default:
	}
	select {
	case e.lapsed <- rev:
	default:
	}
}

// Campaign blocks until this replica holds the lease, then returns its
// term, which renews the lease until ctx ends, the term is resigned, or
// the lease is lost. announce builds the lease record for each write, so
// a renewal records the holder's current connection. Campaign returns
// ctx's error when ctx ends first, and any store failure other than the
// lease being held by someone else.
func (e *Election) Campaign(ctx context.Context, announce func() Lease) (*Term, error) {
	poll := min(e.ttl/5, 500*time.Millisecond)
	for {
		sent, l := time.Now(), announce()
		rev, err := e.write(ctx, l, 0)
		if err == nil {
			return e.newTerm(ctx, rev, sent, WonFree, l, announce), nil
		}
		if !errors.Is(err, ErrExists) {
			return nil, err
		}
		wait := poll
		if _, lrev, lapse, err := e.leader(ctx); err == nil {
			if time.Now().After(lapse) {
				if t, ok := e.seize(ctx, lrev, WonLapsed, announce); ok {
					return t, nil
				}
			}
			wait = min(max(time.Until(lapse)+5*time.Millisecond, 5*time.Millisecond), poll)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		case rev := <-e.lapsed:
			if t, ok := e.seize(ctx, rev, WonDisconnected, announce); ok {
				return t, nil
			}
		}
	}
}

// seize takes the lease held at rev over, by CAS on rev.
func (e *Election) seize(ctx context.Context, rev uint64, how string, announce func() Lease) (*Term, bool) {
	sent, l := time.Now(), announce()
	nrev, err := e.write(ctx, l, rev)
	if err != nil {
		return nil, false
	}
	return e.newTerm(ctx, nrev, sent, how, l, announce), true
}

// write creates the lease (rev 0: ErrExists if held) or rewrites the one
// at rev (ErrNotLeader if it moved on or is gone).
func (e *Election) write(ctx context.Context, l Lease, rev uint64) (_ uint64, err error) {
	op := "renew_lease"
	if rev == 0 {
		op = "acquire_lease"
	}
	defer e.s.observe(op, time.Now(), &err)
	ctx, cancel := withDefault(ctx)
	defer cancel()
	l.Acquired = time.Now().UTC()
	b, _ := json.Marshal(l)
	nrev, err := retryBusy(ctx, func() (uint64, error) {
		if rev == 0 {
			return e.s.leader.Create(ctx, leaseKey, b)
		}
		return e.s.leader.Update(ctx, leaseKey, b, rev)
	})
	switch {
	case err == nil:
		return nrev, nil
	case rev == 0 && isWrongLastSeq(err):
		return 0, ErrExists
	case isWrongLastSeq(err) || errors.Is(err, jetstream.ErrKeyNotFound):
		return 0, fmt.Errorf("%w: lease moved past %d", ErrNotLeader, rev)
	}
	return 0, fmt.Errorf("kvstate: write lease: %w", err)
}

// Term is one won campaign: the lease held from Token on, renewed in the
// background, like etcd's concurrency session.
type Term struct {
	e     *Election
	token uint64
	how   string
	// rev is the revision of the lease's last write: the next write is a
	// CAS on it. mu orders renewals and the resignation.
	mu  sync.Mutex
	rev uint64
	// until (Unix ns) is when the lease may lapse, less a margin: the
	// time the last successful write was sent plus the TTL. Nobody else
	// can take the lease before (but see Election.Lapsed).
	until atomic.Int64
	lease atomic.Pointer[Lease]
	done  chan struct{}
	end   sync.Once
	stop  context.CancelFunc
	// stopped is closed when the renewals have stopped.
	stopped chan struct{}
}

// newTerm starts the term won at rev by writing l, sent at sent.
func (e *Election) newTerm(ctx context.Context, rev uint64, sent time.Time, how string, l Lease, announce func() Lease) *Term {
	t := &Term{e: e, token: rev, rev: rev, how: how, done: make(chan struct{}), stopped: make(chan struct{})}
	t.lease.Store(&l)
	t.hold(sent)
	ctx, t.stop = context.WithCancel(ctx)
	go t.keepAlive(ctx, announce)
	return t
}

// Token is the revision at which the term was won; a later term has a
// higher one.
func (t *Term) Token() uint64 { return t.token }

// How says how the term was won: WonFree, WonLapsed or WonDisconnected.
func (t *Term) How() string { return t.how }

// Lease returns the lease record as last written.
func (t *Term) Lease() Lease { return *t.lease.Load() }

// Done is closed when the term ends: lost to another replica, not renewed
// for too long, resigned, or its context ended.
func (t *Term) Done() <-chan struct{} { return t.done }

// Held reports whether the lease is certainly still this term's: not
// ended and its last renewal recent enough that it cannot have lapsed.
// A leader checks it before every decision, so one that was frozen past
// its lease does not act on a stale view when it resumes.
func (t *Term) Held() bool {
	select {
	case <-t.done:
		return false
	default:
	}
	return time.Now().UnixNano() < t.until.Load()
}

func (t *Term) hold(sent time.Time) {
	t.until.Store(sent.Add(t.e.ttl - t.e.ttl/10).UnixNano())
}

func (t *Term) finish() {
	t.end.Do(func() {
		t.until.Store(0)
		close(t.done)
	})
}

// keepAlive renews the lease every TTL/3 until the term ends. A refused
// renewal ends it at once; failures end it once the lease may have lapsed.
func (t *Term) keepAlive(ctx context.Context, announce func() Lease) {
	defer close(t.stopped)
	defer t.finish()
	tick := time.NewTicker(t.e.ttl / 3)
	defer tick.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.done:
			return
		case <-tick.C:
		}
		sent := time.Now()
		l := announce()
		// A renewal under way is not cut short by the term ending: the
		// server may apply it anyway, and Resign needs its revision.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.e.ttl)
		t.mu.Lock()
		rev, err := t.e.write(wctx, l, t.rev)
		cancel()
		if err == nil {
			t.rev = rev
			t.lease.Store(&l)
			t.hold(sent)
			lastOK = time.Now()
		}
		t.mu.Unlock()
		if err != nil && (errors.Is(err, ErrNotLeader) || time.Since(lastOK) >= t.e.ttl-t.e.ttl/3) {
			return
		}
	}
}

// Resign ends the term and deletes the lease, by CAS on its revision, so
// another replica takes over at once. The deletion is refused if the lease
// already moved on (ErrNotLeader): a former holder never removes its
// successor's lease.
func (t *Term) Resign(ctx context.Context) (err error) {
	t.finish()
	<-t.stopped
	t.stop()
	defer t.e.s.observe("release_lease", time.Now(), &err)
	ctx, cancel := withDefault(ctx)
	defer cancel()
	t.mu.Lock()
	defer t.mu.Unlock()
	err = t.e.s.leader.Delete(ctx, leaseKey, jetstream.LastRevision(t.rev))
	if isWrongLastSeq(err) {
		return fmt.Errorf("%w: lease moved past %d", ErrNotLeader, t.rev)
	}
	return err
}
