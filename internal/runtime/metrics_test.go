package runtime_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
)

// meteredMaster counts its ticks in a metric of its own.
type meteredMaster struct {
	framework.BaseJobMaster
	ticks prometheus.Counter
}

func (m *meteredMaster) Tick(context.Context) error {
	m.ticks.Inc()
	return nil
}

func meteredRegistry(t *testing.T) *framework.Registry {
	reg := framework.NewRegistry()
	reg.MustRegister(framework.JobType{
		Name: "metered",
		NewMaster: func(h framework.MasterHandle) (framework.JobMaster, error) {
			ticks := prometheus.NewCounter(prometheus.CounterOpts{Name: "metered_ticks_total", Help: "Ticks of a metered master."})
			if err := h.Metrics().Register(ticks); err != nil {
				t.Errorf("register a job metric: %v", err)
				return nil, framework.Permanent(err)
			}
			return &meteredMaster{BaseJobMaster: framework.BaseJobMaster{H: h}, ticks: ticks}, nil
		},
	})
	return reg
}

// series returns the label sets of name's series in reg.
func series(t *testing.T, reg prometheus.Gatherer, name string) []map[string]string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			out = append(out, labels)
		}
	}
	return out
}

// TestJobMetricsCarryJobLabelsAndLeaveWithTheJob checks the promise of
// MasterHandle.Metrics: what a job registers is exposed by its node with
// job and job_type labels, two jobs of one type do not collide, the
// exposition stays valid, and a job's series go when its master ends.
func TestJobMetricsCarryJobLabelsAndLeaveWithTheJob(t *testing.T) {
	sys := testsys.Start(t, meteredRegistry(t))
	sys.AddJobManager("jm")
	node := sys.AddJobMaster("m1")
	sys.WaitReady(1, 0)
	ctx := context.Background()
	for _, id := range []string{"met1", "met2"} {
		if _, err := sys.Client.Submit(ctx, api.Spec{ID: id, Type: "metered"}); err != nil {
			t.Fatal(err)
		}
	}
	natstest.Eventually(t, 10*time.Second, "both jobs' series", func() bool {
		return len(series(t, node.Registry, "metered_ticks_total")) == 2
	})
	seen := map[string]bool{}
	for _, l := range series(t, node.Registry, "metered_ticks_total") {
		if l["job_type"] != "metered" || len(l) != 2 {
			t.Errorf("series labels %v, want job and job_type=metered only", l)
		}
		seen[l["job"]] = true
	}
	if !seen["met1"] || !seen["met2"] {
		t.Errorf("series for jobs %v, want met1 and met2", seen)
	}
	if problems, err := testutil.GatherAndLint(node.Registry); err != nil || len(problems) > 0 {
		t.Errorf("lint with job metrics: %v %v", problems, err)
	}

	if _, err := sys.Client.Cancel(ctx, "met1"); err != nil {
		t.Fatal(err)
	}
	if j, err := sys.WaitJob("met1", 10*time.Second); err != nil || j.State != api.StateCanceled {
		t.Fatalf("cancel: %+v %v", j, err)
	}
	natstest.Eventually(t, 5*time.Second, "the canceled job's series gone", func() bool {
		s := series(t, node.Registry, "metered_ticks_total")
		return len(s) == 1 && s[0]["job"] == "met2"
	})
}

// meteredWorker counts its ticks in a metric of its own.
type meteredWorker struct {
	framework.BaseWorker
	ticks prometheus.Counter
}

func (w *meteredWorker) Tick(context.Context) error {
	w.ticks.Inc()
	return nil
}

type workerMeteredMaster struct{ framework.BaseJobMaster }

func (m *workerMeteredMaster) Init(ctx context.Context) error {
	for _, id := range []string{"a", "b"} {
		if _, err := m.H.CreateWorker(ctx, "metered-worker", nil, framework.WithWorkerID(id)); err != nil {
			return err
		}
	}
	return nil
}

// TestWorkerMetricsCarryJobAndWorkerLabels checks WorkerHandle.Metrics:
// each worker's series is exposed by its node with job and worker labels,
// and leaves with the worker.
func TestWorkerMetricsCarryJobAndWorkerLabels(t *testing.T) {
	reg := framework.NewRegistry()
	reg.MustRegister(framework.JobType{
		Name: "wmetered",
		NewMaster: func(h framework.MasterHandle) (framework.JobMaster, error) {
			return &workerMeteredMaster{framework.BaseJobMaster{H: h}}, nil
		},
		Workers: map[string]func(framework.WorkerHandle) (framework.Worker, error){
			"metered-worker": func(h framework.WorkerHandle) (framework.Worker, error) {
				ticks := prometheus.NewCounter(prometheus.CounterOpts{Name: "metered_worker_ticks_total", Help: "Ticks of a metered worker."})
				if err := h.Metrics().Register(ticks); err != nil {
					return nil, framework.Permanent(err)
				}
				return &meteredWorker{BaseWorker: framework.BaseWorker{H: h}, ticks: ticks}, nil
			},
		},
	})
	sys := testsys.Start(t, reg)
	sys.AddJobManager("jm")
	sys.AddJobMaster("m1")
	node := sys.AddWorker("w1")
	sys.WaitReady(1, 1)
	ctx := context.Background()
	if _, err := sys.Client.Submit(ctx, api.Spec{ID: "wmet", Type: "wmetered"}); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 10*time.Second, "both workers' series", func() bool {
		return len(series(t, node.Registry, "metered_worker_ticks_total")) == 2
	})
	seen := map[string]bool{}
	for _, l := range series(t, node.Registry, "metered_worker_ticks_total") {
		if l["job"] != "wmet" || len(l) != 2 {
			t.Errorf("series labels %v, want job=wmet and worker only", l)
		}
		seen[l["worker"]] = true
	}
	if !seen["a"] || !seen["b"] {
		t.Errorf("series for workers %v, want a and b", seen)
	}
	if _, err := sys.Client.Cancel(ctx, "wmet"); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 10*time.Second, "the workers' series gone with them", func() bool {
		return len(series(t, node.Registry, "metered_worker_ticks_total")) == 0
	})
}
