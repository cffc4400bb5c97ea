package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
)

// kvOpsMaster runs compare-and-put, a batch and a prefix read through the
// SDK and exits failed with the first thing that was not as documented.
type kvOpsMaster struct{ framework.BaseJobMaster }

func (m *kvOpsMaster) Init(ctx context.Context) error {
	if err := m.check(ctx); err != nil {
		m.H.Exit(framework.ExitFailed, framework.Permanent(err), nil)
		return nil
	}
	m.H.Exit(framework.ExitFinished, nil, nil)
	return nil
}

func (m *kvOpsMaster) check(ctx context.Context) error {
	kv := m.H.KV()
	rev, err := kv.CompareAndPut(ctx, "lock", []byte("mine"), 0)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if _, err := kv.CompareAndPut(ctx, "lock", []byte("theirs"), 0); !errors.Is(err, framework.ErrRevisionMismatch) {
		return fmt.Errorf("second create: %v, want ErrRevisionMismatch", err)
	}
	if _, err := kv.CompareAndPut(ctx, "lock", []byte("mine again"), rev); err != nil {
		return fmt.Errorf("update at its revision: %w", err)
	}
	if _, err := kv.Batch(ctx, []framework.KVOp{
		{Key: "out.a", Value: []byte("1")}, {Key: "out.b", Value: []byte("2")}, {Key: "lock", Delete: true},
	}); err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	es, err := kv.GetPrefix(ctx, "out.")
	if err != nil || len(es) != 2 || es[0].Key != "out.a" || string(es[1].Value) != "2" {
		return fmt.Errorf("prefix read: %+v %v", es, err)
	}
	if _, _, err := kv.Get(ctx, "lock"); !errors.Is(err, framework.ErrNotFound) {
		return fmt.Errorf("deleted by the batch: %v", err)
	}
	return nil
}

// TestKVCompareAndPutBatchAndPrefixThroughTheSDK: the SDK's KV carries
// the compare-and-put, batch and prefix read, with framework sentinels.
func TestKVCompareAndPutBatchAndPrefixThroughTheSDK(t *testing.T) {
	reg := framework.NewRegistry()
	reg.MustRegister(framework.JobType{Name: "kvops", NewMaster: func(h framework.MasterHandle) (framework.JobMaster, error) {
		return &kvOpsMaster{BaseJobMaster: framework.BaseJobMaster{H: h}}, nil
	}})
	sys := testsys.Start(t, reg)
	sys.AddJobManager("jm")
	sys.AddJobMaster("m1")
	sys.WaitReady(1, 0)
	if _, err := sys.Client.Submit(context.Background(), api.Spec{ID: "kvops1", Type: "kvops"}); err != nil {
		t.Fatal(err)
	}
	j, err := sys.WaitJob("kvops1", 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != api.StateFinished {
		t.Errorf("job %s: %v", j.State, j.Error)
	}
}
