package kvstate_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/pkg/kvstate"
	"github.com/drover-run/drover/pkg/topics"
)

// putWorkers writes n online worker records w00000… of job as its master.
func putWorkers(tb testing.TB, st *kvstate.Store, job string, n int) *kvstate.Fence {
	tb.Helper()
	ctx := context.Background()
	_, f, err := st.AdvanceEpoch(ctx, job, func(*kvstate.MasterRecord) {})
	if err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		rec := &kvstate.WorkerRecord{ID: fmt.Sprintf("w%05d", i), Job: job, State: kvstate.WorkerOnline, Status: []byte(`{"done":1,"total":2}`)}
		if _, err := st.PutWorkerAsMaster(ctx, f, rec); err != nil {
			tb.Fatal(err)
		}
	}
	return f
}

// TestPageWorkersReadsInIDOrder: ids come sorted from the subject index,
// other jobs' workers apart; a page starts past after, reads at most max,
// skips a deleted worker, and says where the next starts.
func TestPageWorkersReadsInIDOrder(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	f := putWorkers(t, st, "j", 12)
	putWorkers(t, st, "j2", 3)
	if err := st.DeleteWorkerAsMaster(ctx, f, "j", "w00004"); err != nil {
		t.Fatal(err)
	}
	ids, err := st.WorkerIDs(ctx, "j")
	if err != nil || len(ids) != 11 || !slices.IsSorted(ids) || slices.Contains(ids, "w00004") {
		t.Fatalf("ids %v %v", ids, err)
	}
	var got []string
	collect := func(e kvstate.WorkerEntry) bool { got = append(got, e.Record.ID); return true }
	last, end, err := st.PageWorkers(ctx, "j", ids, "w00001", 4, collect)
	if err != nil || end || last != "w00006" || !slices.Equal(got, []string{"w00002", "w00003", "w00005", "w00006"}) {
		t.Fatalf("page after w00001: %v, last %q, end %v, %v", got, last, end, err)
	}
	got = nil
	stopAt := func(e kvstate.WorkerEntry) bool {
		if e.Record.ID == "w00009" {
			return false
		}
		got = append(got, e.Record.ID)
		return true
	}
	last, end, err = st.PageWorkers(ctx, "j", ids, last, 100, stopAt)
	if err != nil || end || last != "w00008" || len(got) != 2 {
		t.Fatalf("page stopped before w00009: %v, last %q, end %v, %v", got, last, end, err)
	}
	got = nil
	last, end, err = st.PageWorkers(ctx, "j", ids, last, 100, collect)
	if err != nil || !end || last != "w00011" || len(got) != 3 {
		t.Fatalf("last page: %v, last %q, end %v, %v", got, last, end, err)
	}
	// A worker deleted after its id was listed is skipped, not an error.
	if err := st.DeleteWorkerAsMaster(ctx, f, "j", "w00010"); err != nil {
		t.Fatal(err)
	}
	got = nil
	if _, end, err = st.PageWorkers(ctx, "j", ids, "w00009", 100, collect); err != nil || !end || !slices.Equal(got, []string{"w00011"}) {
		t.Fatalf("page over a deleted worker: %v, end %v, %v", got, end, err)
	}
	if _, err := st.WorkerIDs(ctx, "bad id"); err == nil {
		t.Fatal("WorkerIDs accepted a bad job id")
	}
}

// BenchmarkWorkerPages compares, for a job of 10,000 workers, listing
// its ids, reading a page of 100, and reading every record.
func BenchmarkWorkerPages(b *testing.B) {
	st := open(b)
	ctx := context.Background()
	putWorkers(b, st, "big", 10000)
	ids, err := st.WorkerIDs(ctx, "big")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("ids", func(b *testing.B) {
		for b.Loop() {
			if _, err := st.WorkerIDs(ctx, "big"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("page100", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := st.PageWorkers(ctx, "big", ids, "w05000", 100, func(kvstate.WorkerEntry) bool { return true }); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("all", func(b *testing.B) {
		for b.Loop() {
			if _, err := st.ListWorkers(ctx, "big"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestListWorkersInOneBatchOrThroughAConsumer: a job's records come back
// whole, with their revisions, without deleted workers or another job's
// (one id a prefix of the other), in one batched read on a single server
// (no consumer created), and through a consumer when the job has more
// workers than one batch answers.
func TestListWorkersInOneBatchOrThroughAConsumer(t *testing.T) {
	srv := natstest.RunServer(t)
	nc, js := natstest.Connect(t, srv)
	ctx := context.Background()
	st, err := kvstate.Open(ctx, js, topics.MustNew("t"), kvstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	creates := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe("$JS.API.CONSUMER.CREATE.>", creates)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	consumers := func() int {
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			select {
			case <-creates:
				n++
			default:
				return n
			}
		}
	}

	f := putWorkers(t, st, "j", 6)
	putWorkers(t, st, "jj", 2)
	if err := st.DeleteWorkerAsMaster(ctx, f, "j", "w00002"); err != nil {
		t.Fatal(err)
	}
	consumers()
	ws, err := st.ListWorkers(ctx, "j")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, w := range ws {
		ids = append(ids, w.Record.ID)
		_, rev, err := st.GetWorker(ctx, "j", w.Record.ID)
		if err != nil || rev != w.Revision || w.Record.State != kvstate.WorkerOnline {
			t.Errorf("%s: revision %d state %s, the record's %d (%v)", w.Record.ID, w.Revision, w.Record.State, rev, err)
		}
	}
	if strings.Join(ids, ",") != "w00000,w00001,w00003,w00004,w00005" {
		t.Fatalf("job j lists %v", ids)
	}
	if n := consumers(); n != 0 {
		t.Errorf("listing 5 workers created %d consumers, want a batched read", n)
	}
	if ws, err := st.ListWorkers(ctx, "none"); err != nil || len(ws) != 0 {
		t.Fatalf("a job without workers: %v %v", ws, err)
	}

	// Concurrent listings share one reply subscription of the connection:
	// each gets its own job's records, and none leaves a subscription.
	subs := nc.NumSubscriptions()
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			job, want := "j", 5
			if i%2 == 1 {
				job, want = "jj", 2
			}
			ws, err := st.ListWorkers(ctx, job)
			if err != nil || len(ws) != want {
				t.Errorf("listing %s concurrently: %d records (%v), want %d", job, len(ws), err, want)
			}
		}()
	}
	wg.Wait()
	if n := nc.NumSubscriptions() - subs; n > 0 {
		t.Errorf("40 listings left %d more subscriptions on the connection", n)
	}

	// Exactly one batch (1,024 subjects) still answers in one read.
	putWorkers(t, st, "full", 1024)
	consumers()
	if ws, err := st.ListWorkers(ctx, "full"); err != nil || len(ws) != 1024 {
		t.Fatalf("1,024 workers: %d listed (%v)", len(ws), err)
	}
	if n := consumers(); n != 0 {
		t.Errorf("listing 1,024 workers created %d consumers, want one batch", n)
	}

	// More than one batch (1,024 subjects) answers: read through a consumer.
	putWorkers(t, st, "big", 1100)
	consumers()
	ws, err = st.ListWorkers(ctx, "big")
	if err != nil || len(ws) != 1100 {
		t.Fatalf("1,100 workers: %d listed (%v)", len(ws), err)
	}
	if n := consumers(); n == 0 {
		t.Error("1,100 workers listed without the consumer fallback")
	}
}
