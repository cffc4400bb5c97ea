package wordcount

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/drover-run/drover/pkg/framework"
	"github.com/drover-run/drover/pkg/objstore"
)

// workerConfig is what each worker is created with; everything else comes
// from the stored plan.
type workerConfig struct {
	Index int `json:"index"`
}

// mapper runs the map tasks of one map worker, one per tick, skipping
// those already committed (by a previous incarnation).
type mapper struct {
	framework.BaseWorker
	cfg     workerConfig
	plan    *Plan
	tasks   []Task
	done    map[int]bool
	input   framework.Bucket
	scratch framework.Bucket
	status  MapStatus
	// Kept from task to task: the table and the partition buffers reach
	// their size on the first task and are reused, not grown again.
	counts *Counts
	parts  []bytes.Buffer
}

func newMapper(h framework.WorkerHandle) (framework.Worker, error) {
	var cfg workerConfig
	if err := json.Unmarshal(h.Config(), &cfg); err != nil {
		return nil, fmt.Errorf("wordcount map config: %w", err)
	}
	return &mapper{BaseWorker: framework.BaseWorker{H: h}, cfg: cfg, done: map[int]bool{}, counts: NewCounts()}, nil
}

func (m *mapper) TickInterval() time.Duration { return 5 * time.Millisecond }

func (m *mapper) Init(ctx context.Context) error {
	st, ok := m.H.Storage()
	if !ok {
		return framework.Permanent(errNoStorage)
	}
	plan, found, err := loadPlan(ctx, m.H.KV())
	if err != nil {
		return err
	}
	if !found {
		return errors.New("no plan yet")
	}
	m.plan = plan
	m.tasks = plan.MapperTasks(m.cfg.Index)
	if m.input, err = st.Bucket(ctx, plan.Bucket); err != nil {
		return err
	}
	if m.scratch, err = st.Scratch(ctx); err != nil {
		return err
	}
	committed, err := mapCommits(ctx, m.H.KV())
	if err != nil {
		return err
	}
	m.status.Of = len(m.tasks)
	for _, t := range m.tasks {
		m.status.Total += t.End - t.Start
		if _, ok := committed[t.ID]; ok {
			m.done[t.ID] = true
			m.status.Done += t.End - t.Start
			m.status.Tasks++
		}
	}
	if m.status.Tasks > 0 {
		m.H.Logger().Info("map worker resumes", zap.Int("committed", m.status.Tasks), zap.Int("tasks", len(m.tasks)))
	}
	return m.H.UpdateStatus(ctx, m.status)
}

// Tick runs the next uncommitted task.
func (m *mapper) Tick(ctx context.Context) error {
	for _, t := range m.tasks {
		if m.done[t.ID] {
			continue
		}
		if err := m.run(ctx, t); err != nil {
			return err
		}
		m.done[t.ID] = true
		m.status.Done += t.End - t.Start
		m.status.Tasks++
		return m.H.UpdateStatus(ctx, m.status)
	}
	m.H.Exit(framework.ExitFinished, nil, m.status)
	return nil
}

// run counts one task's words, writes one object per reducer under this
// incarnation's name, and commits the task with a fenced write. Until
// that write, nothing of this run is visible to anyone.
func (m *mapper) run(ctx context.Context, t Task) error {
	in := m.plan.Inputs[t.Input]
	from := max(t.Start-1, 0)
	r, _, err := m.input.Open(ctx, in.Name, objstore.At(from), objstore.Version(in.Version))
	if errors.Is(err, framework.ErrObjectChanged) || errors.Is(err, framework.ErrObjectNotFound) {
		return framework.Permanent(fmt.Errorf("input %s/%s changed while the job ran: %w", m.plan.Bucket, in.Name, err))
	}
	if err != nil {
		return err
	}
	counts := m.counts
	counts.Reset()
	counts.Reserve(int(min((t.End-t.Start)/reserveBytesPerWord, maxReservedWords)))
	read, err := splitRange(r, t.Start, t.End, in.Size, func(w []byte) { counts.Add(w, 1) })
	r.Close()
	if errors.Is(err, framework.ErrObjectChanged) {
		return framework.Permanent(fmt.Errorf("input %s/%s changed while the job ran: %w", m.plan.Bucket, in.Name, err))
	}
	if err != nil {
		return fmt.Errorf("map task %d (%s [%d,%d)): %w", t.ID, in.Name, t.Start, t.End, err)
	}
	if len(m.parts) != m.plan.Reducers {
		m.parts = make([]bytes.Buffer, m.plan.Reducers)
	}
	parts := m.parts
	for p := range parts {
		parts[p].Reset()
	}
	var line []byte
	counts.EachBytes(func(w []byte, n int64) {
		line = appendCount(line[:0], w, n)
		parts[partition(w, m.plan.Reducers)].Write(line)
	})
	attempt := attemptOf(m.H.WorkerID(), m.H.Epoch())
	for p := range parts {
		if _, err := m.scratch.PutBytes(ctx, mapObject(t.ID, attempt, p), parts[p].Bytes()); err != nil {
			return err
		}
	}
	c, _ := json.Marshal(mapCommit{Attempt: attempt, Words: counts.Words(), Bytes: read})
	if _, err := m.H.KV().Put(ctx, mapKey(t.ID), c); err != nil {
		return err // a stale incarnation stops here, its objects never read
	}
	return nil
}

// A map task's table starts with room for a distinct word per
// reserveBytesPerWord bytes of its range, up to maxReservedWords (65,536
// slots, 2 MB): a task of megabytes of text meets tens of thousands of
// distinct words, and the table would otherwise double its way there
// from 1,024 slots, rehashing every word at each step.
const (
	reserveBytesPerWord = 256
	maxReservedWords    = 32 << 10
)

var errNoStorage = errors.New("wordcount needs bucket storage (DROVER_STORAGE=on on job-master and worker nodes)")

// mapCommits returns the commit record of every committed map task.
func mapCommits(ctx context.Context, kv framework.KV) (map[int][]byte, error) {
	entries, err := kv.GetPrefix(ctx, "map.")
	if err != nil {
		return nil, err
	}
	out := make(map[int][]byte, len(entries))
	for _, e := range entries {
		if i, err := strconv.Atoi(e.Key[len("map."):]); err == nil {
			out[i] = e.Value
		}
	}
	return out, nil
}

func isNotFound(err error) bool { return errors.Is(err, framework.ErrNotFound) }
