package wordcount

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/drover-run/drover/pkg/framework"
)

// master plans the job, keeps its M map and R reduce workers alive, and
// writes the output once every reducer committed. Like counter's, its loop
// is driven by state (the plan and the commits in business KV, the worker
// records), not by events, so it is the same after a recovery.
type master struct {
	framework.BaseJobMaster
	cfg   Config
	plan  *Plan
	st    framework.Storage
	phase string
	// noResult: this master found no result committed. Only it can commit
	// one from then on (an older master's write is refused by its fence),
	// so its ticks need not read the key again.
	noResult bool

	// The output is written off the loop (it can take a while); the loop
	// picks up the outcome on its next tick.
	writing  bool
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	mu       sync.Mutex
	written  *Detail
	writeErr error
}

func newMaster(h framework.MasterHandle) (framework.JobMaster, error) {
	cfg, err := ParseConfig(h.Config(), h.JobID())
	if err != nil {
		return nil, framework.Permanent(err)
	}
	st, ok := h.Storage()
	if !ok {
		return nil, framework.Permanent(errNoStorage)
	}
	st.KeepScratch(cfg.KeepScratch)
	return &master{BaseJobMaster: framework.BaseJobMaster{H: h}, cfg: cfg, st: st}, nil
}

func (m *master) Init(ctx context.Context) error { return m.start(ctx) }

func (m *master) OnMasterRecovered(ctx context.Context) error { return m.start(ctx) }

// start loads the stored plan, or makes and stores it on a first start.
func (m *master) start(ctx context.Context) error {
	plan, found, err := loadPlan(ctx, m.H.KV())
	if err != nil {
		return err
	}
	if !found {
		if plan, err = makePlan(ctx, m.st, m.cfg); err != nil {
			return err
		}
		b, _ := json.Marshal(plan)
		if _, err := m.H.KV().Put(ctx, keyPlan, b); err != nil {
			return err
		}
		m.H.Logger().Info("wordcount planned", zap.Int("inputs", len(plan.Inputs)),
			zap.Int64("bytes", plan.InputBytes()), zap.Int("tasks", len(plan.Tasks())))
	}
	m.plan, m.noResult = plan, false
	return m.reconcile(ctx)
}

func (m *master) Tick(ctx context.Context) error { return m.reconcile(ctx) }

// TickInterval is short because the ticks carry the job's last steps: a
// tick sees the reducers finished and starts the output, a tick commits
// it once written; each step waited half the default 100 ms on average,
// a tenth of a job over a 128 MB corpus. A tick does no I/O while the
// job runs (see noResult).
func (m *master) TickInterval() time.Duration { return 20 * time.Millisecond }

func (m *master) OnWorkerOffline(w framework.WorkerInfo, reason string) error {
	if w.State == "failed" && reason != framework.OfflineDispatchFailed {
		m.H.Logger().Warn("wordcount worker failed", zap.String("worker_id", w.ID), zap.Int("failures", w.Failures))
	}
	return m.reconcile(context.Background())
}

func (m *master) detail(phase string) Detail {
	d := Detail{Phase: phase, Reducers: m.cfg.Reducers,
		Output: Output{Bucket: m.cfg.OutputBucket, Name: m.cfg.Output, Top: topName(m.cfg.Output)}}
	if m.plan != nil {
		d.Inputs, d.InputBytes, d.MapTasks, d.Mappers = len(m.plan.Inputs), m.plan.InputBytes(), len(m.plan.Tasks()), m.plan.Mappers
	}
	return d
}

func (m *master) setPhase(ctx context.Context, phase string) error {
	if m.phase == phase {
		return nil
	}
	m.phase = phase
	return m.H.UpdateJobStatus(ctx, m.detail(phase))
}

// reconcile keeps every worker live or finished and moves the job on.
func (m *master) reconcile(ctx context.Context) error {
	if !m.H.IsMasterReady() || m.plan == nil {
		return nil
	}
	if m.writing {
		return m.checkWritten(ctx)
	}
	// A previous incarnation may have committed the result already.
	if !m.noResult {
		v, _, err := m.H.KV().Get(ctx, keyResult)
		switch {
		case err == nil:
			var d Detail
			if err := json.Unmarshal(v, &d); err != nil {
				return framework.Permanent(fmt.Errorf("stored result: %w", err))
			}
			m.H.Exit(framework.ExitFinished, nil, d)
			return nil
		case !isNotFound(err):
			return err
		}
		m.noResult = true
	}
	if err := m.setPhase(ctx, PhaseRunning); err != nil {
		return err
	}
	reducersDone := 0
	for _, w := range m.workers() {
		info, ok := m.H.Worker(w.id)
		switch {
		case ok && info.Live():
			continue
		case ok && info.State == "finished":
			if w.typ == ReduceWorker {
				reducersDone++
			}
			continue
		case ok && info.Failures > m.cfg.MaxWorkerRestarts:
			// Failures is persisted: the bound holds across master failovers.
			m.H.Exit(framework.ExitFailed, fmt.Errorf("worker %s failed %d times", w.id, info.Failures), nil)
			return nil
		}
		_, err := m.H.CreateWorker(ctx, w.typ, workerConfig{Index: w.index}, framework.WithWorkerID(w.id))
		if err != nil && !errors.Is(err, framework.ErrWorkerExists) {
			return err
		}
	}
	if reducersDone < m.plan.Reducers {
		return nil
	}
	commits, err := m.reduceCommits(ctx)
	if err != nil {
		return err
	}
	if len(commits) < m.plan.Reducers {
		return nil // a commit not visible yet (replicated KV lag): next tick
	}
	if err := m.setPhase(ctx, PhaseWriting); err != nil {
		return err
	}
	m.startWriting(commits)
	return nil
}

type workerSlot struct {
	id, typ string
	index   int
}

func (m *master) workers() []workerSlot {
	out := make([]workerSlot, 0, m.plan.Mappers+m.plan.Reducers)
	for k := range m.plan.Mappers {
		out = append(out, workerSlot{mapperID(k), MapWorker, k})
	}
	for r := range m.plan.Reducers {
		out = append(out, workerSlot{reducerID(r), ReduceWorker, r})
	}
	return out
}

func (m *master) reduceCommits(ctx context.Context) ([]reduceCommit, error) {
	var out []reduceCommit
	for r := range m.plan.Reducers {
		v, _, err := m.H.KV().Get(ctx, reduceKey(r))
		if isNotFound(err) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		var c reduceCommit
		if err := json.Unmarshal(v, &c); err != nil {
			return nil, framework.Permanent(fmt.Errorf("reduce commit %d: %w", r, err))
		}
		out = append(out, c)
	}
	return out, nil
}

// startWriting merges the reducers' outputs into the output object off
// the loop.
func (m *master) startWriting(commits []reduceCommit) {
	ctx, cancel := context.WithCancel(context.Background())
	m.writing, m.cancel = true, cancel
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		d, err := m.write(ctx, commits)
		m.mu.Lock()
		m.written, m.writeErr = d, err
		m.mu.Unlock()
	}()
}

// checkWritten commits the result once the output is written. The commit
// is the master's fenced write: a stale master that wrote the output too
// wrote the same bytes, and its commit is refused.
func (m *master) checkWritten(ctx context.Context) error {
	m.mu.Lock()
	d, err := m.written, m.writeErr
	m.mu.Unlock()
	if d == nil && err == nil {
		return nil
	}
	m.writing = false
	if err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	b, _ := json.Marshal(d)
	if _, err := m.H.KV().Put(ctx, keyResult, b); err != nil {
		return err
	}
	m.H.Logger().Info("wordcount done", zap.Int64("words", d.Words), zap.Int64("distinct", d.Distinct))
	m.H.Exit(framework.ExitFinished, nil, d)
	return nil
}

// write streams a k-way merge of the reducers' sorted outputs (disjoint
// sets of words) into the output object, keeping the top N on the way.
func (m *master) write(ctx context.Context, commits []reduceCommit) (*Detail, error) {
	scratch, err := m.st.Scratch(ctx)
	if err != nil {
		return nil, err
	}
	out, err := m.st.CreateBucket(ctx, m.cfg.OutputBucket)
	if err != nil {
		return nil, err
	}
	var readers []io.ReadCloser
	defer func() {
		for _, r := range readers {
			r.Close()
		}
	}()
	mh := &mergeHeap{}
	for _, c := range commits {
		r, _, err := scratch.Open(ctx, c.Object)
		if err != nil {
			return nil, fmt.Errorf("reduce output %s: %w", c.Object, err)
		}
		readers = append(readers, r)
		s := newCountScanner(r)
		if s.next() {
			mh.items = append(mh.items, s)
		} else if s.err != nil {
			return nil, s.err
		}
	}
	heap.Init(mh)
	d := m.detail(PhaseDone)
	top := &topHeap{}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		var err error
		bw := newLineWriter(pw)
		for mh.Len() > 0 && err == nil {
			s := mh.items[0]
			d.Words += s.n
			d.Distinct++
			top.offer(WordCount{s.word, s.n}, m.cfg.Top)
			err = bw.line(s.word, s.n)
			if s.next() {
				heap.Fix(mh, 0)
			} else {
				if s.err != nil {
					err = s.err
				}
				heap.Pop(mh)
			}
		}
		if err == nil {
			err = bw.flush()
		}
		pw.CloseWithError(err)
	}()
	_, err = out.Put(ctx, m.cfg.Output, pr)
	pr.CloseWithError(err) // let the writer goroutine end
	<-done
	if err != nil {
		return nil, err
	}
	d.Top = top.sorted()
	tb, _ := json.MarshalIndent(struct {
		Words    int64       `json:"words"`
		Distinct int64       `json:"distinct"`
		Top      []WordCount `json:"top"`
	}{d.Words, d.Distinct, d.Top}, "", "  ")
	if _, err := out.PutBytes(ctx, topName(m.cfg.Output), tb); err != nil {
		return nil, err
	}
	return &d, nil
}

// Stop ends the output writer of a stopped (handed over, fenced) master.
func (m *master) Stop(context.Context) { m.stopWriting() }

func (m *master) Close(context.Context) error { m.stopWriting(); return nil }

func (m *master) stopWriting() {
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
}

// countScanner reads one sorted "word\tcount\n" stream.
type countScanner struct {
	lines *lineReader
	word  string
	n     int64
	err   error
}

func newCountScanner(r io.Reader) *countScanner { return &countScanner{lines: newLineReader(r)} }

func (s *countScanner) next() bool {
	w, n, ok, err := s.lines.next()
	if err != nil {
		s.err = err
		return false
	}
	s.word, s.n = w, n
	return ok
}

type mergeHeap struct{ items []*countScanner }

func (h *mergeHeap) Len() int           { return len(h.items) }
func (h *mergeHeap) Less(i, j int) bool { return h.items[i].word < h.items[j].word }
func (h *mergeHeap) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *mergeHeap) Push(x any)         { h.items = append(h.items, x.(*countScanner)) }
func (h *mergeHeap) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}

// formatCount renders one output line.
func formatCount(buf []byte, word string, n int64) []byte {
	return appendCount(buf, []byte(word), n)
}

// appendCount appends the line "word\tn\n" to buf.
func appendCount(buf, word []byte, n int64) []byte {
	buf = append(buf, word...)
	buf = append(buf, '\t')
	buf = strconv.AppendInt(buf, n, 10)
	return append(buf, '\n')
}
