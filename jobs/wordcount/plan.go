package wordcount

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/drover-run/drover/pkg/framework"
)

// Input is one input object as planned: its version is pinned, so a task
// re-run reads the same bytes, and an input replaced mid-job fails the job
// instead of mixing two versions.
type Input struct {
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	Version string `json:"version"`
}

// Plan is the job's plan, stored under "plan" before any worker starts:
// every incarnation of the master and of the workers derives the same
// tasks from it.
type Plan struct {
	Bucket     string  `json:"bucket"`
	Inputs     []Input `json:"inputs"`
	SplitBytes int64   `json:"split_bytes"`
	Mappers    int     `json:"mappers"`
	Reducers   int     `json:"reducers"`
}

// Task is one map task: the bytes [Start, End) of an input.
type Task struct {
	ID    int
	Input int
	Start int64
	End   int64
}

// Tasks cuts every input into tasks of at most SplitBytes; an input no
// larger than that is one task, an empty one none.
func (p *Plan) Tasks() []Task {
	var out []Task
	for i, in := range p.Inputs {
		for s := int64(0); s < in.Size; s += p.SplitBytes {
			out = append(out, Task{ID: len(out), Input: i, Start: s, End: min(s+p.SplitBytes, in.Size)})
		}
	}
	return out
}

// MapperTasks returns the tasks of map worker k: those with ID mod Mappers == k.
func (p *Plan) MapperTasks(k int) []Task {
	var out []Task
	for _, t := range p.Tasks() {
		if t.ID%p.Mappers == k {
			out = append(out, t)
		}
	}
	return out
}

// InputBytes is the size of every input together.
func (p *Plan) InputBytes() int64 {
	var n int64
	for _, in := range p.Inputs {
		n += in.Size
	}
	return n
}

// reduceShare is reducer r's share of the input bytes, its progress total.
func (p *Plan) reduceShare(r int) int64 {
	b := p.InputBytes()
	s := b / int64(p.Reducers)
	if r == 0 {
		s += b % int64(p.Reducers)
	}
	return s
}

// maxPlanBytes keeps the plan within one KV value.
const maxPlanBytes = 512 << 10

// makePlan lists the inputs and pins their versions.
func makePlan(ctx context.Context, st framework.Storage, cfg Config) (*Plan, error) {
	b, err := st.Bucket(ctx, cfg.Bucket)
	if errors.Is(err, framework.ErrBucketNotFound) {
		return nil, framework.Permanent(fmt.Errorf("input bucket %q does not exist", cfg.Bucket))
	}
	if err != nil {
		return nil, err
	}
	p := &Plan{Bucket: cfg.Bucket, SplitBytes: cfg.SplitBytes, Reducers: cfg.Reducers}
	if len(cfg.Objects) > 0 {
		for _, name := range cfg.Objects {
			info, err := b.Info(ctx, name)
			if errors.Is(err, framework.ErrObjectNotFound) {
				return nil, framework.Permanent(fmt.Errorf("input %s/%s does not exist", cfg.Bucket, name))
			}
			if err != nil {
				return nil, err
			}
			p.Inputs = append(p.Inputs, Input{Name: info.Name, Size: info.Size, Version: info.Version})
		}
	} else {
		objs, err := b.List(ctx, cfg.Prefix)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			// A previous run's output in the same bucket is not an input,
			// nor, when the whole bucket is read, any wordcount output.
			if cfg.OutputBucket == cfg.Bucket && (o.Name == cfg.Output || o.Name == topName(cfg.Output)) {
				continue
			}
			if cfg.Prefix == "" && strings.HasPrefix(o.Name, OutputsPrefix) {
				continue
			}
			p.Inputs = append(p.Inputs, Input{Name: o.Name, Size: o.Size, Version: o.Version})
		}
		sort.Slice(p.Inputs, func(i, j int) bool { return p.Inputs[i].Name < p.Inputs[j].Name })
	}
	if len(p.Inputs) == 0 {
		return nil, framework.Permanent(fmt.Errorf("no input objects in bucket %q under prefix %q", cfg.Bucket, cfg.Prefix))
	}
	if len(p.Inputs) > MaxInputs {
		return nil, framework.Permanent(fmt.Errorf("%d input objects, at most %d", len(p.Inputs), MaxInputs))
	}
	tasks := len(p.Tasks())
	if tasks > MaxTasks {
		return nil, framework.Permanent(fmt.Errorf("%d map tasks, at most %d: raise split_bytes", tasks, MaxTasks))
	}
	p.Mappers = max(1, min(cfg.Mappers, tasks))
	if b, _ := json.Marshal(p); len(b) > maxPlanBytes {
		return nil, framework.Permanent(fmt.Errorf("plan of %d inputs is %d bytes, at most %d: use fewer, larger objects", len(p.Inputs), len(b), maxPlanBytes))
	}
	return p, nil
}

// loadPlan reads the stored plan; found is false if there is none yet.
func loadPlan(ctx context.Context, kv framework.KV) (*Plan, bool, error) {
	v, _, err := kv.Get(ctx, keyPlan)
	if isNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var p Plan
	if err := json.Unmarshal(v, &p); err != nil {
		return nil, false, framework.Permanent(fmt.Errorf("stored plan: %w", err))
	}
	return &p, true, nil
}

func topName(output string) string { return output + ".top.json" }
