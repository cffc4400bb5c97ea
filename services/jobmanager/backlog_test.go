package jobmanager_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/pkg/api"
)

// TestBacklogWaitsForCapacityAndRuns submits jobs while no job-master node
// runs: each goes pending and waits, out of the leader's tick, for its
// retry. Once nodes come, every one of them is assigned and finishes,
// including one canceled while it waited.
func TestBacklogWaitsForCapacityAndRuns(t *testing.T) {
	sys := startSystem(t, 0, 0)
	ctx := context.Background()
	const n = 40
	for i := range n {
		if _, err := sys.Client.Submit(ctx, api.Spec{ID: fmt.Sprintf("b%d", i), Type: "counter",
			Config: json.RawMessage(`{"workers":1,"target":2,"interval_ms":1}`)}); err != nil {
			t.Fatal(err)
		}
	}
	natstest.Eventually(t, 10*time.Second, "every job pending", func() bool {
		jobs, _, err := sys.Client.List(ctx, api.ListRequest{State: api.StatePending, Limit: 1000})
		return err == nil && len(jobs) == n
	})
	// Several retries come and go with nowhere to run.
	time.Sleep(600 * time.Millisecond)
	if j, err := sys.Client.Cancel(ctx, "b0"); err != nil || j.State != api.StateCanceled {
		t.Fatalf("cancel a waiting job: %+v %v", j, err)
	}
	sys.AddJobMaster("late-master")
	sys.AddWorker("late-worker")
	sys.WaitReady(1, 1)
	for i := 1; i < n; i++ {
		j, err := sys.WaitJob(fmt.Sprintf("b%d", i), 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var d struct{ Total int }
		if j.State != api.StateFinished || json.Unmarshal(j.Detail, &d) != nil || d.Total != 2 {
			t.Fatalf("job %s: state %s, detail %s", j.ID, j.State, j.Detail)
		}
	}
	if j, _ := sys.Client.Get(ctx, "b0"); j == nil || j.State != api.StateCanceled {
		t.Fatalf("the canceled job ran: %+v", j)
	}
}
