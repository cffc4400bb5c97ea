package kvstate_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/drover-run/drover/pkg/kvstate"
)

func TestCompareAndPutChecksRevisionAndFence(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	_, f1, err := st.AdvanceEpoch(ctx, "j1", func(*kvstate.MasterRecord) {})
	if err != nil {
		t.Fatal(err)
	}
	b := st.Business("j1", f1, nil)
	r1, err := b.CompareAndPut(ctx, "k", []byte("a"), 0)
	if err != nil {
		t.Fatalf("create with rev 0: %v", err)
	}
	if _, err := b.CompareAndPut(ctx, "k", []byte("b"), 0); !errors.Is(err, kvstate.ErrRevisionMismatch) {
		t.Fatalf("create of an existing key: %v, want ErrRevisionMismatch", err)
	}
	r2, err := b.CompareAndPut(ctx, "k", []byte("b"), r1)
	if err != nil {
		t.Fatalf("put at the current revision: %v", err)
	}
	if v, rev, err := b.Get(ctx, "k"); err != nil || string(v) != "b" || rev != r2 {
		t.Fatalf("after CAS: %q %d %v, want b at %d", v, rev, err, r2)
	}
	if _, err := b.CompareAndPut(ctx, "k", []byte("c"), r1); !errors.Is(err, kvstate.ErrRevisionMismatch) {
		t.Fatalf("put at an old revision: %v, want ErrRevisionMismatch", err)
	}
	// A deleted key has no value: rev 0 creates it again.
	if err := b.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CompareAndPut(ctx, "k", []byte("d"), 0); err != nil {
		t.Fatalf("create of a deleted key: %v", err)
	}

	// A newer epoch fences the old writer's CAS, though the revision matches.
	stale := 0
	old := st.Business("j1", f1, func(error) { stale++ })
	_, rev, err := old.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.AdvanceEpoch(ctx, "j1", func(*kvstate.MasterRecord) {}); err != nil {
		t.Fatal(err)
	}
	if _, err := old.CompareAndPut(ctx, "k", []byte("zombie"), rev); !errors.Is(err, kvstate.ErrStaleEpoch) || stale != 1 {
		t.Fatalf("stale CAS: %v (stale calls %d), want ErrStaleEpoch once", err, stale)
	}
	if v, _, _ := old.Get(ctx, "k"); string(v) != "d" {
		t.Fatalf("value after refused writes: %q, want d", v)
	}
}

func TestBatchIsAtomicAndFenced(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	_, f1, err := st.AdvanceEpoch(ctx, "j1", func(*kvstate.MasterRecord) {})
	if err != nil {
		t.Fatal(err)
	}
	b := st.Business("j1", f1, nil)
	if _, err := b.Put(ctx, "old.x", []byte("1")); err != nil {
		t.Fatal(err)
	}
	var ops []kvstate.BusinessOp
	for i := range 5 {
		ops = append(ops, kvstate.BusinessOp{Key: fmt.Sprintf("part.%d", i), Value: []byte{byte('a' + i)}})
	}
	ops = append(ops, kvstate.BusinessOp{Key: "old.x", Delete: true})
	if _, err := b.Batch(ctx, ops); err != nil {
		t.Fatalf("batch: %v", err)
	}
	parts, err := b.GetPrefix(ctx, "part.")
	if err != nil || len(parts) != 5 {
		t.Fatalf("prefix read after batch: %v %v", parts, err)
	}
	for i, e := range parts {
		if e.Key != fmt.Sprintf("part.%d", i) || string(e.Value) != string(rune('a'+i)) || e.Revision == 0 {
			t.Errorf("entry %d: %+v", i, e)
		}
	}
	if _, _, err := b.Get(ctx, "old.x"); !errors.Is(err, kvstate.ErrNotFound) {
		t.Fatalf("deleted in the batch: %v", err)
	}
	// A prefix that ends inside a token filters by string.
	if es, err := b.GetPrefix(ctx, "par"); err != nil || len(es) != 5 {
		t.Fatalf("GetPrefix(par): %d %v", len(es), err)
	}

	// A stale writer's batch lands nowhere.
	if _, _, err := st.AdvanceEpoch(ctx, "j1", func(*kvstate.MasterRecord) {}); err != nil {
		t.Fatal(err)
	}
	_, err = b.Batch(ctx, []kvstate.BusinessOp{{Key: "part.0", Value: []byte("zombie")}, {Key: "new", Value: []byte("zombie")}})
	if !errors.Is(err, kvstate.ErrStaleEpoch) {
		t.Fatalf("stale batch: %v, want ErrStaleEpoch", err)
	}
	if v, _, _ := b.Get(ctx, "part.0"); string(v) != "a" {
		t.Errorf("part.0 after a refused batch: %q", v)
	}
	if _, _, err := b.Get(ctx, "new"); !errors.Is(err, kvstate.ErrNotFound) {
		t.Errorf("a refused batch wrote a key: %v", err)
	}
	if _, err := b.Batch(ctx, nil); !errors.Is(err, kvstate.ErrInvalidKey) {
		t.Errorf("empty batch: %v", err)
	}
	if _, err := b.Batch(ctx, []kvstate.BusinessOp{{Key: "bad key"}}); !errors.Is(err, kvstate.ErrInvalidKey) {
		t.Errorf("bad key in a batch: %v", err)
	}
}

// TestDeleteWorkerLeavesNothingAndIsFenced: a removed worker record leaves
// no message in the state stream (its marker is purged), a record written
// again afterwards survives, and a stale master cannot remove one.
func TestDeleteWorkerLeavesNothingAndIsFenced(t *testing.T) {
	st := open(t)
	ctx := context.Background()
	_, f1, err := st.AdvanceEpoch(ctx, "j1", func(*kvstate.MasterRecord) {})
	if err != nil {
		t.Fatal(err)
	}
	rec := &kvstate.WorkerRecord{Job: "j1", ID: "w1", Epoch: 1, State: kvstate.WorkerFinished}
	if _, err := st.PutWorkerAsMaster(ctx, f1, rec); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteWorkerAsMaster(ctx, f1, "j1", "w1"); err != nil {
		t.Fatal(err)
	}
	js := st.JetStream()
	stream, err := js.Stream(ctx, "KV_"+st.Space().StateBucket())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.GetLastMsgForSubject(ctx, "$KV."+st.Space().StateBucket()+".w.j1.w1"); err == nil {
		t.Error("a message of the removed worker record is left in the stream")
	}
	rec.Epoch = 2
	if _, err := st.PutWorkerAsMaster(ctx, f1, rec); err != nil {
		t.Fatal(err)
	}
	if ws, err := st.ListWorkers(ctx, "j1"); err != nil || len(ws) != 1 || ws[0].Record.Epoch != 2 {
		t.Fatalf("workers after re-creation: %+v %v", ws, err)
	}
	if _, _, err := st.AdvanceEpoch(ctx, "j1", func(*kvstate.MasterRecord) {}); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteWorkerAsMaster(ctx, f1, "j1", "w1"); !errors.Is(err, kvstate.ErrStaleEpoch) {
		t.Fatalf("delete by a stale master: %v, want ErrStaleEpoch", err)
	}
	if ws, _ := st.ListWorkers(ctx, "j1"); len(ws) != 1 {
		t.Fatal("a stale master removed a worker record")
	}
}
