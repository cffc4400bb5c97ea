package runtime_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
	"github.com/drover-run/drover/pkg/topics"
)

// avoidMaster places one worker at a time and records where each went.
type avoidMaster struct {
	framework.BaseJobMaster
	mu      *sync.Mutex
	places  *[]string // "node:ok" or "node:failed"
	waiting bool
}

func (m *avoidMaster) TickInterval() time.Duration { return 20 * time.Millisecond }

func (m *avoidMaster) Tick(ctx context.Context) error {
	m.mu.Lock()
	n := len(*m.places)
	m.mu.Unlock()
	if m.waiting || n >= 40 {
		return nil
	}
	m.waiting = true
	_, err := m.H.CreateWorker(ctx, "avoid-worker", nil)
	return err
}

func (m *avoidMaster) OnWorkerDispatched(w framework.WorkerInfo, err error) error {
	m.waiting = false
	outcome := "ok"
	if err != nil {
		outcome = "failed"
	}
	m.mu.Lock()
	*m.places = append(*m.places, w.Node+":"+outcome)
	m.mu.Unlock()
	return nil
}

// TestPlacerAvoidsANodeThatFailedADispatch: a node whose presence makes
// it the placer's first choice but which does not answer create requests
// (a "ghost") fails one dispatch; the next placement goes to the live
// node. Without the runtime
// telling its placer (Avoid), every retry went to the ghost again.
func TestPlacerAvoidsANodeThatFailedADispatch(t *testing.T) {
	var mu sync.Mutex
	var places []string
	reg := framework.NewRegistry()
	reg.MustRegister(framework.JobType{
		Name: "avoid",
		NewMaster: func(h framework.MasterHandle) (framework.JobMaster, error) {
			return &avoidMaster{BaseJobMaster: framework.BaseJobMaster{H: h}, mu: &mu, places: &places}, nil
		},
		Workers: map[string]func(framework.WorkerHandle) (framework.Worker, error){
			"avoid-worker": func(h framework.WorkerHandle) (framework.Worker, error) {
				return &framework.BaseWorker{H: h}, nil
			},
		},
	})
	sys := startSmall(t, reg)
	st := openStore(t, sys)

	// The ghost's capacity makes it the least loaded node however many
	// placements it is counted; its presence is kept fresh meanwhile.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ghost := func() error {
		return st.PutNode(ctx, &api.Node{ID: "ghost", Kind: topics.KindWorker, Capacity: 1 << 30,
			Types: []string{"avoid-worker"}, StartedAt: time.Now()})
	}
	if err := ghost(); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
				_ = ghost()
			}
		}
	}()
	natstest.Eventually(t, 10*time.Second, "the ghost node listed", func() bool {
		nodes, err := sys.Client.Nodes(ctx)
		for _, n := range nodes {
			if err == nil && n.ID == "ghost" {
				return true
			}
		}
		return false
	})
	if _, err := sys.Client.Submit(ctx, api.Spec{ID: "avoid1", Type: "avoid"}); err != nil {
		t.Fatal(err)
	}
	// The job's placer learns of the ghost by its own watch: wait for the
	// first failure there, and the placement after it (the next tick's,
	// well within placement.AvoidAfterFailure).
	var next string
	natstest.Eventually(t, 20*time.Second, "a placement after a failed dispatch to the ghost", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i, p := range places {
			if p == "ghost:failed" && i+1 < len(places) {
				next = places[i+1]
				return true
			}
		}
		return false
	})
	if next != "w1:ok" {
		t.Errorf("the placement after the ghost failed went to %s, want w1:ok", next)
	}
}
