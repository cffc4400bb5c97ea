package jobmanager_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/services/jobmaster"
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

// TestWaitingJobsTakeFreedCapacity fills a job-master node of capacity 2
// with jobs: the others wait, and are placed as the running ones end and
// the node's reports show its slots free. A job whose
// selectors no node matches waits in a class of its own and holds none of
// them back; it runs once a node it matches comes.
func TestWaitingJobsTakeFreedCapacity(t *testing.T) {
	sys := startSystem(t, 0, 0)
	ctx := context.Background()
	sys.AddJobMasterWith("small-master", func(c *jobmaster.Config) { c.Capacity = 2 })
	sys.AddWorker("w1")
	sys.WaitReady(1, 1)
	spec := func(id string, sel map[string]string) api.Spec {
		return api.Spec{ID: id, Type: "counter", Selectors: sel,
			Config: json.RawMessage(`{"workers":1,"target":20,"interval_ms":10}`)}
	}
	if _, err := sys.Client.Submit(ctx, spec("elsewhere", map[string]string{"zone": "b"})); err != nil {
		t.Fatal(err)
	}
	const n = 8
	for i := range n {
		if _, err := sys.Client.Submit(ctx, spec(fmt.Sprintf("f%d", i), nil)); err != nil {
			t.Fatal(err)
		}
	}
	natstest.Eventually(t, 10*time.Second, "jobs waiting for the node's two slots", func() bool {
		jobs, _, err := sys.Client.List(ctx, api.ListRequest{State: api.StatePending, Limit: 100})
		return err == nil && len(jobs) >= n-2
	})
	for i := range n {
		j, err := sys.WaitJob(fmt.Sprintf("f%d", i), 60*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if j.State != api.StateFinished {
			t.Fatalf("job %s ended %s: %v", j.ID, j.State, j.Error)
		}
	}
	if j, err := sys.Client.Get(ctx, "elsewhere"); err != nil || j.State != api.StatePending {
		t.Fatalf("the job no node matches: %+v %v", j, err)
	}
	sys.Labels = map[string]string{"zone-b-master": "zone=b", "zone-b-worker": "zone=b"}
	sys.AddJobMaster("zone-b-master")
	sys.AddWorker("zone-b-worker")
	if j, err := sys.WaitJob("elsewhere", 60*time.Second); err != nil || j.State != api.StateFinished {
		t.Fatalf("the job once a node matches: %+v %v", j, err)
	}
}
