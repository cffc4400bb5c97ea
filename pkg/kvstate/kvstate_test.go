package kvstate_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"
	"github.com/drover-run/drover/pkg/topics"
)

// nats.go's async-publish status goroutine can block for good on a status
// channel its own cleanup set to nil when the connection closes as it
// starts; it belongs to the library, not to this package.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"))
}

func open(t testing.TB) *kvstate.Store {
	t.Helper()
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	st, err := kvstate.Open(context.Background(), js, topics.MustNew("t"), kvstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Opening again is idempotent.
	if _, err := kvstate.Open(context.Background(), js, topics.MustNew("t"), kvstate.Options{}); err != nil {
		t.Fatalf("second open: %v", err)
	}
	return st
}

func TestJobCreateIsAtomic(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	job := &api.Job{ID: "j1", Type: "counter", State: api.StateCreated}
	if _, err := st.CreateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateJob(ctx, job); !errors.Is(err, kvstate.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	got, _, err := st.UpdateJob(ctx, "j1", func(j *api.Job) error { j.State = api.StateRunning; return nil })
	if err != nil || got.State != api.StateRunning {
		t.Fatalf("update: %v %v", got, err)
	}
	if _, _, err := st.GetJob(ctx, "nope"); !errors.Is(err, kvstate.ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
	var jobs []api.Job
	_, end, err := st.ScanJobs(ctx, 0, 10, func(j *api.Job, _ uint64) bool { jobs = append(jobs, *j); return true })
	if err != nil || !end || len(jobs) != 1 || jobs[0].State != api.StateRunning {
		t.Fatalf("scan: %v %v %v", jobs, end, err)
	}
}

// TestScanJobsPages: a scan reads at most max records from its cursor, in
// last-write order, skips deleted records, stops where fn refuses, and a
// record rewritten during paging moves to the end instead of being lost.
func TestScanJobsPages(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	for i := range 5 {
		if _, err := st.CreateJob(ctx, &api.Job{ID: fmt.Sprintf("j%d", i), Type: "t", State: api.StateCreated}); err != nil {
			t.Fatal(err)
		}
	}
	page := func(after uint64, max int, stopAt string) ([]string, uint64, bool) {
		t.Helper()
		var ids []string
		last, end, err := st.ScanJobs(ctx, after, max, func(j *api.Job, _ uint64) bool {
			if j.ID == stopAt {
				return false
			}
			ids = append(ids, j.ID)
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		return ids, last, end
	}
	ids, last, end := page(0, 2, "")
	if fmt.Sprint(ids) != "[j0 j1]" || end {
		t.Fatalf("first page %v end=%v", ids, end)
	}
	// j0 (seen) and j3 (not yet seen) change: j3 moves behind the cursor's
	// end, still ahead; j0 shows again at the end.
	for _, id := range []string{"j0", "j3"} {
		if _, _, err := st.UpdateJob(ctx, id, func(j *api.Job) error { j.State = api.StatePending; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.DeleteJob(ctx, "j2"); err != nil {
		t.Fatal(err)
	}
	ids, stop, _ := page(last, 10, "j3")
	if fmt.Sprint(ids) != "[j4 j0]" {
		t.Fatalf("page up to j3: %v", ids)
	}
	ids, last, end = page(stop, 10, "")
	if fmt.Sprint(ids) != "[j3]" || !end {
		t.Fatalf("last page %v end=%v", ids, end)
	}
	if ids, _, end := page(last, 10, ""); len(ids) != 0 || !end {
		t.Fatalf("past the end: %v %v", ids, end)
	}
}

func TestEpochFencesMasterAndBusinessWrites(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	m1, f1, err := st.AdvanceEpoch(ctx, "j1", func(m *kvstate.MasterRecord) { m.Node = "a"; m.State = kvstate.MasterAssigned })
	if err != nil || m1.Epoch != 1 {
		t.Fatalf("first epoch: %v %v", m1, err)
	}
	b1 := st.Business("j1", f1, nil)
	if _, err := b1.Put(ctx, "k", []byte("1")); err != nil {
		t.Fatalf("fenced put by current master: %v", err)
	}
	m1.State = kvstate.MasterRunning
	if err := st.PutMaster(ctx, f1, m1); err != nil {
		t.Fatalf("own record update: %v", err)
	}
	if _, err := b1.Put(ctx, "k", []byte("2")); err != nil {
		t.Fatalf("put after own update: %v", err)
	}

	// The leader moves the master: epoch 2.
	m2, f2, err := st.AdvanceEpoch(ctx, "j1", func(m *kvstate.MasterRecord) { m.Node = "b" })
	if err != nil || m2.Epoch != 2 || !m2.Initialized == m1.Initialized && m2.Node != "b" {
		t.Fatalf("second epoch: %v %v", m2, err)
	}
	var staleCalls int
	b1 = st.Business("j1", f1, func(error) { staleCalls++ })
	if _, err := b1.Put(ctx, "k", []byte("zombie")); !errors.Is(err, kvstate.ErrStaleEpoch) {
		t.Fatalf("zombie business put: %v, want ErrStaleEpoch", err)
	}
	if err := b1.Delete(ctx, "k"); !errors.Is(err, kvstate.ErrStaleEpoch) {
		t.Fatalf("zombie delete: %v", err)
	}
	if staleCalls != 2 {
		t.Fatalf("onStale called %d times, want 2", staleCalls)
	}
	if err := st.PutMaster(ctx, f1, m1); !errors.Is(err, kvstate.ErrStaleEpoch) {
		t.Fatalf("zombie master record write: %v", err)
	}
	if _, err := st.PutWorkerAsMaster(ctx, f1, &kvstate.WorkerRecord{Job: "j1", ID: "w1", Epoch: 1}); !errors.Is(err, kvstate.ErrStaleEpoch) {
		t.Fatalf("zombie worker create: %v", err)
	}
	v, _, err := st.Business("j1", f2, nil).Get(ctx, "k")
	if err != nil || string(v) != "2" {
		t.Fatalf("value after zombie writes = %q, %v; want 2", v, err)
	}
}

func TestWorkerFence(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	_, mf, err := st.AdvanceEpoch(ctx, "j1", func(*kvstate.MasterRecord) {})
	if err != nil {
		t.Fatal(err)
	}
	rec := &kvstate.WorkerRecord{Job: "j1", ID: "w1", Epoch: 1, State: kvstate.WorkerCreated}
	rev, err := st.PutWorkerAsMaster(ctx, mf, rec)
	if err != nil {
		t.Fatal(err)
	}
	wf := st.WorkerFence("j1", "w1", rev)
	wb := st.Business("j1", wf, nil)
	if _, err := wb.Put(ctx, "count.w1", []byte("1")); err != nil {
		t.Fatalf("worker put: %v", err)
	}
	rec.State = kvstate.WorkerOnline
	if err := st.PutWorkerAsWorker(ctx, wf, rec); err != nil {
		t.Fatalf("worker status: %v", err)
	}
	if _, err := wb.Put(ctx, "count.w1", []byte("2")); err != nil {
		t.Fatalf("worker put after status: %v", err)
	}
	// The master re-creates w1 with epoch 2: incarnation 1 is fenced.
	rec2 := &kvstate.WorkerRecord{Job: "j1", ID: "w1", Epoch: 2, State: kvstate.WorkerCreated}
	if _, err := st.PutWorkerAsMaster(ctx, mf, rec2); err != nil {
		t.Fatal(err)
	}
	if _, err := wb.Put(ctx, "count.w1", []byte("3")); !errors.Is(err, kvstate.ErrStaleEpoch) {
		t.Fatalf("stale worker put: %v", err)
	}
	if err := st.PutWorkerAsWorker(ctx, wf, rec); !errors.Is(err, kvstate.ErrStaleEpoch) {
		t.Fatalf("stale worker status: %v", err)
	}
	ws, err := st.ListWorkers(ctx, "j1")
	if err != nil || len(ws) != 1 || ws[0].Record.Epoch != 2 {
		t.Fatalf("list workers: %+v %v", ws, err)
	}
	keys, err := wb.Keys(ctx, "count.")
	if err != nil || len(keys) != 1 || keys[0] != "count.w1" {
		t.Fatalf("keys: %v %v", keys, err)
	}
}

func TestBusinessKeysAreIsolatedAndValidated(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	_, fa, _ := st.AdvanceEpoch(ctx, "a", func(*kvstate.MasterRecord) {})
	_, fb, _ := st.AdvanceEpoch(ctx, "b", func(*kvstate.MasterRecord) {})
	ba, bb := st.Business("a", fa, nil), st.Business("b", fb, nil)
	if _, err := ba.Put(ctx, "x", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := bb.Get(ctx, "x"); !errors.Is(err, kvstate.ErrNotFound) {
		t.Fatalf("job b sees job a's key: %v", err)
	}
	for _, bad := range []string{"", "*", ">", "a..b", "a b", "../x"} {
		if _, err := ba.Put(ctx, bad, nil); !errors.Is(err, kvstate.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", bad, err)
		}
	}
}

// TestCreateJobRefusesTooLargeRecords: the bound is on the stored
// encoding, and characters json.Marshal would escape do not count sixfold.
func TestCreateJobRefusesTooLargeRecords(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	cfg := func(c string, n int) json.RawMessage {
		return json.RawMessage(`{"p":"` + strings.Repeat(c, n) + `"}`)
	}
	if _, err := st.CreateJob(ctx, &api.Job{ID: "big", Type: "t", Config: cfg("a", kvstate.MaxJobRecordBytes)}); !errors.Is(err, kvstate.ErrTooLarge) {
		t.Fatalf("record over the bound: %v, want ErrTooLarge", err)
	}
	if _, err := st.CreateJob(ctx, &api.Job{ID: "lt", Type: "t", Config: cfg("<", kvstate.MaxJobRecordBytes/2)}); err != nil {
		t.Fatalf("'<' counted more than once: %v", err)
	}
}
