package e2e

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/drover-run/drover/pkg/api"
)

var chaosLong = flag.Bool("chaos.long", false, "run the long form of the chaos test (also DROVER_CHAOS_LONG=1)")

// TestChaos runs 2 job managers, 2 job-master nodes and 3 worker nodes as
// real processes, submits counter jobs while it kill -9s, SIGTERMs and
// SIGSTOPs (then SIGCONTs) random processes, restarting the killed ones so
// capacity remains. Every job must end terminal, every finished job with
// its exact total, and the accepted KV writes must show no worker or
// master with two live incarnations making progress at once.
//
// The short form (50 jobs, 25 s of chaos) runs in make test; the long one
// (200 jobs, 2 min) with -chaos.long or DROVER_CHAOS_LONG=1.
// DROVER_CHAOS_SEED=<n> replays a run's choices.
func TestChaos(t *testing.T) {
	jobs, chaosFor := 50, 25*time.Second
	if *chaosLong || os.Getenv("DROVER_CHAOS_LONG") == "1" {
		jobs, chaosFor = 200, 2*time.Minute
	}
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("DROVER_CHAOS_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("chaos seed %d (DROVER_CHAOS_SEED=%d replays the choices)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))

	c := NewCluster(t, Options{})
	w := c.StartWitness()
	ch := &chaos{c: c, t: t, slots: map[string]*slot{}}
	for _, s := range []struct {
		role string
		kind Kind
		id   string
	}{
		{"manager", JobManager, "mgr-1"}, {"manager", JobManager, "mgr-2"},
		{"master", JobMaster, "jm-1"}, {"master", JobMaster, "jm-2"},
		{"worker", Worker, "wk-1"}, {"worker", Worker, "wk-2"}, {"worker", Worker, "wk-3"},
	} {
		ch.slots[s.id] = &slot{role: s.role, p: c.Start(s.kind, s.id)}
		ch.order = append(ch.order, s.id)
	}
	c.WaitNodes(api.NodeJobMaster, "jm-1", "jm-2")
	c.WaitNodes(api.NodeWorker, "wk-1", "wk-2", "wk-3")

	type spec struct{ workers, target int }
	specs := map[string]spec{}
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		every := chaosFor * 9 / 10 / time.Duration(jobs)
		for i := range jobs {
			id := fmt.Sprintf("chaos%03d", i)
			// 1–3 s of counting each, so most jobs see a disruption.
			sp := spec{workers: 1 + rng.IntN(3), target: 40 + rng.IntN(80)}
			cfg := fmt.Sprintf(`{"workers":%d,"target":%d,"interval_ms":25}`, sp.workers, sp.target)
			if _, err := c.TrySubmit(api.Spec{ID: id, Type: "counter", Config: json.RawMessage(cfg)}); err != nil {
				t.Errorf("submit %s: %v", id, err)
				continue
			}
			ch.mu.Lock()
			specs[id] = sp
			ch.mu.Unlock()
			time.Sleep(time.Until(start.Add(time.Duration(i+1) * every)))
		}
	}()
	for time.Since(start) < chaosFor {
		ch.disrupt(rng)
		time.Sleep(time.Duration(400+rng.IntN(1000)) * time.Millisecond)
	}
	wg.Wait()
	ch.wg.Wait()
	t.Logf("chaos over after %s: %d disruptions (%v)", time.Since(start), ch.count, ch.kinds)

	finished, failed := 0, 0
	for id, sp := range specs {
		j := c.WaitTerminal(id, 90*time.Second)
		switch j.State {
		case api.StateFinished:
			finished++
			if err := CounterExact(j, sp.workers, sp.target); err != nil {
				t.Error(err)
			}
		default:
			failed++
			t.Logf("job %s ended %s: %v", id, j.State, j.Error)
		}
	}
	recovered, resumed, fenced := 0, 0, 0
	for _, p := range c.Procs() {
		recovered += p.CountLogs("master recovering")
		resumed += p.CountLogs("counter resumes from checkpoint")
		fenced += FencedStops(p)
	}
	t.Logf("%d jobs: %d finished exact, %d not finished; %d masters recovered, %d workers resumed from a checkpoint, %d incarnations fenced; %d accepted state writes seen",
		len(specs), finished, failed, recovered, resumed, fenced, len(w.Entries()))
	checkWitness(t, w)
}

type slot struct {
	role      string
	p         *Proc
	disrupted bool
}

type chaos struct {
	c     *Cluster
	t     *testing.T
	mu    sync.Mutex
	slots map[string]*slot
	order []string
	wg    sync.WaitGroup
	count int
	kinds map[string]int
}

// disrupt picks a process whose role has no other process disrupted (so a
// job manager, a job-master node and two worker nodes stay up) and kills,
// terminates or freezes it for a while.
func (ch *chaos) disrupt(rng *rand.Rand) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	busy := map[string]bool{}
	for _, s := range ch.slots {
		if s.disrupted {
			busy[s.role] = true
		}
	}
	var free []string
	for _, id := range ch.order {
		if s := ch.slots[id]; !s.disrupted && !busy[s.role] {
			free = append(free, id)
		}
	}
	if len(free) == 0 {
		return
	}
	id := free[rng.IntN(len(free))]
	s := ch.slots[id]
	s.disrupted = true
	action := []string{"kill", "term", "stop"}[rng.IntN(3)]
	// Down for a moment, or past every timeout.
	down := time.Duration(200+rng.IntN(5800)) * time.Millisecond
	if ch.kinds == nil {
		ch.kinds = map[string]int{}
	}
	ch.count++
	ch.kinds[action]++
	p := s.p
	ch.t.Logf("%6.1fs %s %s for %s", time.Since(ch.c.started()).Seconds(), action, p.Name, down)
	ch.wg.Add(1)
	go func() {
		defer ch.wg.Done()
		np := p
		switch action {
		case "kill":
			p.Kill()
			time.Sleep(down)
			np = p.Restart()
		case "term":
			if code := p.Term(20 * time.Second); code != 0 {
				ch.t.Errorf("%s exited %d after SIGTERM", p.Name, code)
			}
			time.Sleep(down)
			np = p.Restart()
		case "stop":
			p.Stop()
			time.Sleep(down)
			p.Cont()
		}
		ch.mu.Lock()
		s.p, s.disrupted = np, false
		ch.mu.Unlock()
	}()
}
