package jobmanager

import (
	"context"
	"fmt"
	"testing"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"
	"github.com/drover-run/drover/pkg/topics"
)

// growingJobs rewrites each job, with a longer record, the first time a
// scan shows it: every job changes while the page is being read, as jobs
// just submitted do when the leader assigns their masters.
type growingJobs struct {
	kvstate.Jobs
	t     *testing.T
	grown map[string]bool
}

func (g *growingJobs) ScanJobs(ctx context.Context, after uint64, max int, fn func(*api.Job, uint64) bool) (uint64, bool, error) {
	return g.Jobs.ScanJobs(ctx, after, max, func(j *api.Job, seq uint64) bool {
		if !g.grown[j.ID] {
			g.grown[j.ID] = true
			if _, _, err := g.UpdateJob(ctx, j.ID, func(j *api.Job) error {
				j.State, j.Node, j.Epoch = api.StateRunning, "a-job-master-node", 1
				return nil
			}); err != nil {
				g.t.Fatal(err)
			}
		}
		return fn(j, seq)
	})
}

// TestListShowsJobsThatChangeWhileItReads: jobs whose records grow while a
// page is read are each listed once, with their newer record, on one page
// (the console's jobs page once showed 3 of 5 jobs and "next page" because
// the leader assigned masters meanwhile); only a change past the reply's
// budget starts the next page.
func TestListShowsJobsThatChangeWhileItReads(t *testing.T) {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	ctx := context.Background()
	st, err := kvstate.Open(ctx, js, topics.MustNew("t"), kvstate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := st.CreateJob(ctx, &api.Job{ID: fmt.Sprintf("j%d", i), Type: "counter", State: api.StatePending}); err != nil {
			t.Fatal(err)
		}
	}
	s := &Service{jobs: &growingJobs{Jobs: st, t: t, grown: map[string]bool{}}}
	jobs, next, err := s.list(ctx, []byte(`{}`), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if next != "" || len(jobs) != 5 {
		t.Fatalf("one page of 5 jobs expected, got %d jobs, next %q", len(jobs), next)
	}
	for i, j := range jobs {
		if j.ID != fmt.Sprintf("j%d", i) || j.State != api.StateRunning {
			t.Errorf("row %d: %s %s, want j%d running (its newer record)", i, j.ID, j.State, i)
		}
	}

	// A budget that holds the first records but not their growth: the page
	// ends where a grown record would not fit, and next resumes the scan.
	for i := range 5 {
		id := fmt.Sprintf("k%d", i)
		if _, err := st.CreateJob(ctx, &api.Job{ID: id, Type: "counter", State: api.StatePending}); err != nil {
			t.Fatal(err)
		}
	}
	g := &growingJobs{Jobs: st, t: t, grown: map[string]bool{}}
	s.jobs = g
	jobs, next, err = s.list(ctx, []byte(`{"type":"counter"}`), 400)
	if err != nil {
		t.Fatal(err)
	}
	if next == "" || len(jobs) == 0 {
		t.Fatalf("a 400-byte budget: %d jobs, next %q; want a cut page", len(jobs), next)
	}
}
