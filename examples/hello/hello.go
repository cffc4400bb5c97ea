// Package hello is the smallest useful custom job type, the one
// docs/writing-jobs.md starts from: its master starts N greeter workers,
// each greeter writes one greeting (a fenced business-KV write, and an
// object in the "hello" bucket when bucket storage is on) and exits, and
// the master finishes with every greeting in the job's detail.
//
// It is not a built-in type: cmd/hello-jobmaster and cmd/hello-worker are
// the job-master and worker binaries that know it, built from the SDK and
// the stock node services. The stock job manager needs no change: it
// accepts a type that a live job-master node serves.
package hello

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/drover-run/drover/pkg/framework"
)

// Name is the job type; Greeter its worker type.
const (
	Name    = "hello"
	Greeter = "hello-greeter"
)

// Config is the job's config: {"workers": 2, "greeting": "hello"}.
type Config struct {
	Workers  int    `json:"workers"`
	Greeting string `json:"greeting"`
}

func parse(raw json.RawMessage) (Config, error) {
	c := Config{Workers: 2, Greeting: "hello"}
	if err := framework.DecodeConfig(raw, &c); err != nil {
		return c, fmt.Errorf("hello config: %w", err)
	}
	if c.Workers < 1 || c.Workers > 100 {
		return c, errors.New("hello: workers must be 1..100")
	}
	return c, nil
}

// Type is the job type to register in a framework.Registry.
func Type() framework.JobType {
	return framework.JobType{
		Name:      Name,
		Validate:  func(raw json.RawMessage) error { _, err := parse(raw); return err },
		NewMaster: newMaster,
		Workers:   map[string]func(framework.WorkerHandle) (framework.Worker, error){Greeter: newGreeter},
	}
}

// Registry is the registry of the example's binaries: the built-in types
// could be added to it too (jobs/builtin.Registry()).
func Registry() *framework.Registry {
	r := framework.NewRegistry()
	r.MustRegister(Type())
	return r
}

type master struct {
	framework.BaseJobMaster
	cfg Config
}

func newMaster(h framework.MasterHandle) (framework.JobMaster, error) {
	cfg, err := parse(h.Config())
	if err != nil {
		return nil, framework.Permanent(err)
	}
	return &master{BaseJobMaster: framework.BaseJobMaster{H: h}, cfg: cfg}, nil
}

func (m *master) Init(ctx context.Context) error              { return m.reconcile(ctx) }
func (m *master) OnMasterRecovered(ctx context.Context) error { return m.reconcile(ctx) }
func (m *master) Tick(ctx context.Context) error              { return m.reconcile(ctx) }
func (m *master) OnWorkerOffline(framework.WorkerInfo, string) error {
	return m.reconcile(context.Background())
}

// reconcile looks at state, not events: every greeter is live or
// finished, and once all have finished the job is done.
func (m *master) reconcile(ctx context.Context) error {
	if !m.H.IsMasterReady() {
		return nil
	}
	var greetings []string
	for i := range m.cfg.Workers {
		id := "greeter-" + strconv.Itoa(i)
		w, ok := m.H.Worker(id)
		if ok && w.Live() {
			continue
		}
		if ok && w.State == "finished" {
			v, _, err := m.H.KV().Get(ctx, "greeting."+id)
			if err != nil {
				return err
			}
			greetings = append(greetings, string(v))
			continue
		}
		// Not started, lost or failed: (re)start it. Its id is stable, so a
		// new incarnation fences the old one.
		if _, err := m.H.CreateWorker(ctx, Greeter, m.cfg, framework.WithWorkerID(id)); err != nil &&
			!errors.Is(err, framework.ErrWorkerExists) {
			return err
		}
	}
	if len(greetings) == m.cfg.Workers {
		m.H.Exit(framework.ExitFinished, nil, map[string]any{"greetings": greetings})
	}
	return nil
}

type greeter struct {
	framework.BaseWorker
	cfg Config
}

func newGreeter(h framework.WorkerHandle) (framework.Worker, error) {
	var cfg Config
	if err := json.Unmarshal(h.Config(), &cfg); err != nil {
		return nil, err
	}
	return &greeter{BaseWorker: framework.BaseWorker{H: h}, cfg: cfg}, nil
}

// Tick does the work once: idempotent, so a re-created greeter may repeat it.
func (g *greeter) Tick(ctx context.Context) error {
	text := fmt.Sprintf("%s from %s", g.cfg.Greeting, g.H.WorkerID())
	if st, ok := g.H.Storage(); ok {
		b, err := st.CreateBucket(ctx, "hello")
		if err != nil {
			return err
		}
		if _, err := b.PutBytes(ctx, g.H.JobID()+"/"+g.H.WorkerID()+".txt", []byte(text+"\n")); err != nil {
			return err
		}
	}
	// The fenced write is the commit: a stale incarnation's is refused.
	if _, err := g.H.KV().Put(ctx, "greeting."+g.H.WorkerID(), []byte(text)); err != nil {
		return err
	}
	if err := g.H.UpdateStatus(ctx, map[string]int{"done": 1, "total": 1}); err != nil {
		return err
	}
	g.H.Exit(framework.ExitFinished, nil, nil)
	return nil
}
