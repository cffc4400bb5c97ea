package framework

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/topics"
)

// JobType describes one job type: how to validate its config, build its
// master, and build each of its worker types.
type JobType struct {
	Name string
	// Validate checks a submitted config; nil accepts anything. Its error
	// reaches the submitter as invalid_argument.
	Validate  func(config json.RawMessage) error
	NewMaster func(h MasterHandle) (JobMaster, error)
	// Workers maps a worker type name to its constructor.
	Workers map[string]func(h WorkerHandle) (Worker, error)
	// EndedRoutes, if set, serves the job's HTTP routes (as registered in
	// OnOpenAPIInitialized) once the job has ended and no master runs: the
	// job manager calls it with the final job record, whose detail is all
	// it can answer from. Without it, such requests get failed_precondition.
	EndedRoutes func(job api.Job, r Router)
}

// Registry holds the job types a binary knows.
type Registry struct {
	mu    sync.RWMutex
	types map[string]JobType
	// workers maps worker type → constructor across all job types.
	workers map[string]func(h WorkerHandle) (Worker, error)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{types: map[string]JobType{}, workers: map[string]func(WorkerHandle) (Worker, error){}}
}

// Register adds a job type; names must be valid IDs and unique.
func (r *Registry) Register(t JobType) error {
	if err := topics.ValidateID("job type", t.Name); err != nil {
		return err
	}
	if t.NewMaster == nil {
		return fmt.Errorf("framework: job type %s has no master", t.Name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.types[t.Name]; ok {
		return fmt.Errorf("framework: job type %s registered twice", t.Name)
	}
	for name := range t.Workers {
		if err := topics.ValidateID("worker type", name); err != nil {
			return err
		}
		if _, ok := r.workers[name]; ok {
			return fmt.Errorf("framework: worker type %s registered twice", name)
		}
	}
	r.types[t.Name] = t
	for name, f := range t.Workers {
		r.workers[name] = f
	}
	return nil
}

// MustRegister is Register for built-in types.
func (r *Registry) MustRegister(t JobType) {
	if err := r.Register(t); err != nil {
		panic(err)
	}
}

// Type returns a job type by name.
func (r *Registry) Type(name string) (JobType, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t, ok := r.types[name]
	return t, ok
}

// WorkerFactory returns the constructor of a worker type.
func (r *Registry) WorkerFactory(name string) (func(WorkerHandle) (Worker, error), bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	f, ok := r.workers[name]
	return f, ok
}

// Names returns the job type names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.types))
	for n := range r.types {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// WorkerTypes returns the worker type names, sorted.
func (r *Registry) WorkerTypes() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.workers))
	for n := range r.workers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
