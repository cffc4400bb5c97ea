package runtime_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
)

// selMaster places workers with inherited, own, no and invalid selectors
// and records where each went.
type selMaster struct {
	framework.BaseJobMaster
	mu     *sync.Mutex
	nodes  map[string]string
	badErr *error
}

func (m *selMaster) Init(ctx context.Context) error {
	for id, opts := range map[string][]framework.CreateOption{
		"inherits": nil,
		"own":      {framework.WithSelectors(map[string]string{"zone": "a"})},
		"any":      {framework.WithSelectors(map[string]string{"zone": "!exists", "disk": "notin(hdd)"})},
	} {
		if _, err := m.H.CreateWorker(ctx, "sel-worker", nil, append(opts, framework.WithWorkerID(id))...); err != nil {
			return err
		}
	}
	_, err := m.H.CreateWorker(ctx, "sel-worker", nil, framework.WithWorkerID("bad"),
		framework.WithSelectors(map[string]string{"zone": "in(a,)"}))
	m.mu.Lock()
	*m.badErr = err
	m.mu.Unlock()
	return nil
}

func (m *selMaster) OnWorkerDispatched(w framework.WorkerInfo, err error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.nodes[w.ID] = "failed: " + err.Error()
	} else {
		m.nodes[w.ID] = w.Node
	}
	return nil
}

// TestWorkerSelectorsInheritAndMatchSetForms: a worker created without
// selectors inherits the job's (here in(b,c)); its own selectors replace
// them; set forms (!exists, notin) match; an invalid form fails
// CreateWorker with invalid_argument, as it fails a submission.
func TestWorkerSelectorsInheritAndMatchSetForms(t *testing.T) {
	var mu sync.Mutex
	nodes := map[string]string{}
	var badErr error
	reg := framework.NewRegistry()
	reg.MustRegister(framework.JobType{
		Name: "sel",
		NewMaster: func(h framework.MasterHandle) (framework.JobMaster, error) {
			return &selMaster{BaseJobMaster: framework.BaseJobMaster{H: h}, mu: &mu, nodes: nodes, badErr: &badErr}, nil
		},
		Workers: map[string]func(framework.WorkerHandle) (framework.Worker, error){
			"sel-worker": func(h framework.WorkerHandle) (framework.Worker, error) { return &framework.BaseWorker{H: h}, nil },
		},
	})
	sys := testsys.Start(t, reg)
	sys.Labels = map[string]string{"m1": "zone=b", "wa": "zone=a,disk=ssd", "wc": "zone=c", "wn": "disk=ssd"}
	sys.AddJobManager("jm")
	sys.AddJobMaster("m1")
	for _, w := range []string{"wa", "wc", "wn"} {
		sys.AddWorker(w)
	}
	sys.WaitReady(1, 3)
	ctx := context.Background()
	_, err := sys.Client.Submit(ctx, api.Spec{ID: "bad-sel", Type: "sel", Selectors: map[string]string{"zone": "notin()"}})
	if api.ErrorCode(err) != api.CodeInvalidArgument {
		t.Fatalf("submit with an invalid selector: %v, want invalid_argument", err)
	}
	if _, err := sys.Client.Submit(ctx, api.Spec{ID: "sel1", Type: "sel", Selectors: map[string]string{"zone": "in(b,c)"}}); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 20*time.Second, "three workers placed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(nodes) == 3
	})
	mu.Lock()
	defer mu.Unlock()
	for id, want := range map[string]string{"inherits": "wc", "own": "wa", "any": "wn"} {
		if nodes[id] != want {
			t.Errorf("worker %s placed on %q, want %s", id, nodes[id], want)
		}
	}
	if api.ErrorCode(badErr) != api.CodeInvalidArgument {
		t.Errorf("CreateWorker with an invalid selector: %v, want invalid_argument", badErr)
	}
}

// ownSelMaster creates one worker with selectors of its own (zone=b) and
// records where each master incarnation saw it placed.
type ownSelMaster struct {
	framework.BaseJobMaster
	mu    *sync.Mutex
	nodes map[string]string
}

func (m *ownSelMaster) Init(ctx context.Context) error {
	_, err := m.H.CreateWorker(ctx, "sel-worker", nil, framework.WithWorkerID("own"),
		framework.WithSelectors(map[string]string{"zone": "b"}))
	return err
}

func (m *ownSelMaster) OnWorkerDispatched(w framework.WorkerInfo, err error) error {
	if err == nil {
		m.mu.Lock()
		m.nodes[w.ID] = w.Node
		m.mu.Unlock()
	}
	return nil
}

// TestRecoveredWaitingWorkerKeepsItsSelectors: a worker that waits for a
// node matching its own selectors is recovered, still waiting, by the
// next master, which places it by those selectors, not the job's (none:
// any node), when a matching node comes.
func TestRecoveredWaitingWorkerKeepsItsSelectors(t *testing.T) {
	var mu sync.Mutex
	nodes := map[string]string{}
	reg := framework.NewRegistry()
	reg.MustRegister(framework.JobType{
		Name: "ownsel",
		NewMaster: func(h framework.MasterHandle) (framework.JobMaster, error) {
			return &ownSelMaster{BaseJobMaster: framework.BaseJobMaster{H: h}, mu: &mu, nodes: nodes}, nil
		},
		Workers: map[string]func(framework.WorkerHandle) (framework.Worker, error){
			"sel-worker": func(h framework.WorkerHandle) (framework.Worker, error) { return &framework.BaseWorker{H: h}, nil },
		},
	})
	sys := testsys.Start(t, reg)
	sys.Labels = map[string]string{"wa": "zone=a", "wb": "zone=b"}
	sys.AddJobManager("jm")
	sys.AddJobMaster("m1")
	sys.AddWorker("wa")
	sys.WaitReady(1, 1)
	ctx := context.Background()
	if _, err := sys.Client.Submit(ctx, api.Spec{ID: "ownsel1", Type: "ownsel"}); err != nil {
		t.Fatal(err)
	}
	waiting := func() bool {
		ws, err := sys.Client.Workers(ctx, "ownsel1")
		return err == nil && len(ws) == 1 && ws[0].State == "waiting"
	}
	natstest.Eventually(t, 10*time.Second, "the worker waiting for a zone=b node", waiting)

	// The next master recovers it, still waiting: wa (zone=a) must not get it.
	sys.AddJobMaster("m2")
	sys.WaitReady(2, 1)
	sys.Crash("m1")
	natstest.Eventually(t, 20*time.Second, "the job running on m2", func() bool {
		j, err := sys.Client.Get(ctx, "ownsel1")
		return err == nil && j.Node == "m2" && j.State == api.StateRunning
	})
	time.Sleep(3 * sys.Timing.Heartbeat) // several placement attempts of the new master
	if !waiting() {
		mu.Lock()
		t.Fatalf("recovered worker no longer waiting (placed on %q): its own selectors were lost", nodes["own"])
	}
	sys.AddWorker("wb")
	natstest.Eventually(t, 20*time.Second, "the worker placed on wb", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return nodes["own"] == "wb"
	})
}
