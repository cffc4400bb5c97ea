package kvstate_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/pkg/kvstate"
	"github.com/drover-run/drover/pkg/topics"
)

const testTTL = 600 * time.Millisecond

func openTTL(t *testing.T) *kvstate.Store {
	t.Helper()
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	st, err := kvstate.Open(context.Background(), js, topics.MustNew("t"), kvstate.Options{LeaseTTL: testTTL})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func as(holder string) func() kvstate.Lease {
	return func() kvstate.Lease { return kvstate.Lease{Holder: holder} }
}

// campaign runs a campaign in the background; the term arrives on the channel.
func campaign(ctx context.Context, e *kvstate.Election, holder string) <-chan *kvstate.Term {
	out := make(chan *kvstate.Term, 1)
	go func() {
		t, err := e.Campaign(ctx, as(holder))
		if err == nil {
			out <- t
		}
		close(out)
	}()
	return out
}

func resign(t *testing.T, term *kvstate.Term) {
	t.Helper()
	if err := term.Resign(context.Background()); err != nil && !errors.Is(err, kvstate.ErrNotLeader) {
		t.Error(err)
	}
}

// Two candidates: one wins, the other waits while the winner renews past
// several TTLs, and takes over once the winner resigns.
func TestElectionTwoCandidates(t *testing.T) {
	st := openTTL(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b := st.Election(), st.Election()
	ta, err := a.Campaign(ctx, as("a"))
	if err != nil {
		t.Fatal(err)
	}
	defer resign(t, ta)
	if ta.How() != kvstate.WonFree {
		t.Errorf("won %s, want %s", ta.How(), kvstate.WonFree)
	}
	cb := campaign(ctx, b, "b")
	select {
	case <-cb:
		t.Fatal("b won while a renewed its lease")
	case <-time.After(3 * testTTL):
	}
	if !ta.Held() {
		t.Fatal("a does not hold its renewed lease")
	}
	if l, _, err := b.Leader(ctx); err != nil || l.Holder != "a" {
		t.Fatalf("leader = %+v, %v", l, err)
	}
	if err := ta.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ta.Done():
	default:
		t.Fatal("resigned term not done")
	}
	if ta.Held() {
		t.Fatal("resigned term still held")
	}
	// b polls at TTL/5 at most.
	var tb *kvstate.Term
	select {
	case tb = <-cb:
	case <-time.After(testTTL):
		t.Fatal("b did not take the resigned lease within a TTL")
	}
	defer resign(t, tb)
	if tb.Token() <= ta.Token() {
		t.Errorf("b's token %d not above a's %d", tb.Token(), ta.Token())
	}
}

// A holder that stops renewing (a crash) loses the lease one TTL after
// its last write; the other candidate takes it over then, and the former
// holder's late renewal and resignation, carrying its old token, are
// refused without touching the new lease.
func TestElectionLapseAndFencing(t *testing.T) {
	st := openTTL(t)
	a, b := st.Election(), st.Election()
	actx, acancel := context.WithCancel(context.Background())
	ta, err := a.Campaign(actx, as("a"))
	if err != nil {
		t.Fatal(err)
	}
	_, arev, err := a.Leader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The renewals stop as if a froze: its context ends, the lease stays.
	acancel()
	<-ta.Done()
	stoppedAt := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tb, err := b.Campaign(ctx, as("b"))
	if err != nil {
		t.Fatal(err)
	}
	defer resign(t, tb)
	// At the lapse (at most a TTL after the last renewal) plus a poll,
	// with room for a loaded machine; the bucket's own expiry would be
	// later still.
	if took := time.Since(stoppedAt); took > 3*testTTL {
		t.Errorf("took over %s after the last renewal, TTL %s", took, testTTL)
	}
	if tb.How() != kvstate.WonLapsed {
		t.Errorf("won %s, want %s", tb.How(), kvstate.WonLapsed)
	}
	if tb.Token() <= arev {
		t.Fatalf("new token %d not above the stale %d", tb.Token(), arev)
	}
	// The stale holder's resignation (a delete at its old revision) is
	// refused and b still leads.
	if err := ta.Resign(context.Background()); !errors.Is(err, kvstate.ErrNotLeader) {
		t.Fatalf("stale resign: %v, want ErrNotLeader", err)
	}
	if l, _, err := b.Leader(ctx); err != nil || l.Holder != "b" {
		t.Fatalf("leader after stale resign = %+v, %v", l, err)
	}
	if !tb.Held() {
		t.Fatal("b lost its lease to a stale write")
	}
}

// Lapsed: a report that the holder is gone makes a waiting candidate take
// the lease at once, long before the TTL; a report naming an old revision
// (the holder renewed since) is refused by the revision and changes nothing.
func TestElectionLapsedTakesOverAtOnce(t *testing.T) {
	st := openTTL(t)
	a, b := st.Election(), st.Election()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ta, err := a.Campaign(ctx, as("a"))
	if err != nil {
		t.Fatal(err)
	}
	defer resign(t, ta)
	_, stale, err := b.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cb := campaign(ctx, b, "b")
	// Wait for a renewal, then report the old revision: refused.
	natstest.Eventually(t, 2*testTTL, "a renewal", func() bool {
		_, rev, err := b.Leader(ctx)
		return err == nil && rev > stale
	})
	b.Lapsed(stale)
	select {
	case <-cb:
		t.Fatal("b took the lease on a report of a revision a had renewed past")
	case <-time.After(testTTL / 3):
	}
	if !ta.Held() {
		t.Fatal("a lost its lease to a stale report")
	}
	// A report of a's current revision hands the lease over at once,
	// though a still renews (a renewal racing the report wins the CAS;
	// then the next report is of the newer revision).
	var tb *kvstate.Term
	reported := time.Now()
	for tb == nil {
		if time.Since(reported) > testTTL {
			t.Fatal("b did not take over on reports of the current revision")
		}
		_, cur, err := b.Leader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b.Lapsed(cur)
		select {
		case tb = <-cb:
		case <-time.After(testTTL / 10):
		}
	}
	defer resign(t, tb)
	// a still renews, so only a report can have done it.
	if tb.How() != kvstate.WonDisconnected {
		t.Fatalf("won %s, want %s", tb.How(), kvstate.WonDisconnected)
	}
	// a's next renewal is refused and its term ends.
	select {
	case <-ta.Done():
	case <-time.After(testTTL):
		t.Fatal("a's term did not end after the takeover")
	}
	if l, _, _ := a.Leader(ctx); l.Holder != "b" {
		t.Fatalf("leader = %q", l.Holder)
	}
}
