package wordcount

import (
	"bufio"
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"github.com/drover-run/drover/pkg/framework"
)

// mergesPerTick bounds the map outputs a reducer merges in one tick, so
// its loop stays responsive (stop, status) while it catches up.
const mergesPerTick = 16

// reducer merges partition r of every committed map task, as soon as each
// is committed, then writes its sorted counts and commits them. Its merged
// state lives in memory only: a new incarnation starts over, which costs
// time, never exactness, because it reads only committed map outputs and
// each of them once.
type reducer struct {
	framework.BaseWorker
	cfg        workerConfig
	plan       *Plan
	tasks      int
	merged     map[int]bool
	counts     *Counts
	scratch    framework.Bucket
	status     ReduceStatus
	lastStatus time.Time
	dirty      bool
}

func newReducer(h framework.WorkerHandle) (framework.Worker, error) {
	var cfg workerConfig
	if err := json.Unmarshal(h.Config(), &cfg); err != nil {
		return nil, fmt.Errorf("wordcount reduce config: %w", err)
	}
	return &reducer{BaseWorker: framework.BaseWorker{H: h}, cfg: cfg, merged: map[int]bool{}, counts: NewCounts()}, nil
}

func (r *reducer) TickInterval() time.Duration { return 50 * time.Millisecond }

func (r *reducer) Init(ctx context.Context) error {
	st, ok := r.H.Storage()
	if !ok {
		return framework.Permanent(errNoStorage)
	}
	plan, found, err := loadPlan(ctx, r.H.KV())
	if err != nil {
		return err
	}
	if !found {
		return errors.New("no plan yet")
	}
	r.plan, r.tasks = plan, len(plan.Tasks())
	if r.scratch, err = st.Scratch(ctx); err != nil {
		return err
	}
	r.status = ReduceStatus{Total: plan.reduceShare(r.cfg.Index), Of: r.tasks}
	return r.H.UpdateStatus(ctx, r.status)
}

func (r *reducer) Tick(ctx context.Context) error {
	if len(r.merged) < r.tasks {
		if err := r.mergeCommitted(ctx); err != nil {
			return err
		}
	}
	if len(r.merged) == r.tasks {
		return r.finish(ctx)
	}
	if r.dirty && time.Since(r.lastStatus) >= 250*time.Millisecond {
		return r.report(ctx)
	}
	return nil
}

func (r *reducer) report(ctx context.Context) error {
	r.dirty, r.lastStatus = false, time.Now()
	r.status.Merged = len(r.merged)
	r.status.Done = r.status.Total
	if r.tasks > 0 {
		r.status.Done = r.status.Total * int64(len(r.merged)) / int64(r.tasks)
	}
	r.status.Top = TopN(r.counts, liveTop)
	return r.H.UpdateStatus(ctx, r.status)
}

// mergeCommitted merges the map tasks committed since the last tick. One
// read returns every commit with its value (a batched get), rather than a
// key listing (a consumer on the server) and a get per new commit.
func (r *reducer) mergeCommitted(ctx context.Context) error {
	committed, err := mapCommits(ctx, r.H.KV())
	if err != nil {
		return err
	}
	var todo []int
	for i := range committed {
		if !r.merged[i] && i < r.tasks {
			todo = append(todo, i)
		}
	}
	sort.Ints(todo)
	for _, i := range todo[:min(len(todo), mergesPerTick)] {
		var c mapCommit
		if err := json.Unmarshal(committed[i], &c); err != nil {
			return framework.Permanent(fmt.Errorf("map commit %d: %w", i, err))
		}
		if err := r.merge(ctx, mapObject(i, c.Attempt, r.cfg.Index)); err != nil {
			return fmt.Errorf("merge map task %d: %w", i, err)
		}
		r.merged[i] = true
		r.dirty = true
	}
	return nil
}

// merge adds one map output ("word\tcount\n" lines) to the counts.
func (r *reducer) merge(ctx context.Context, name string) error {
	rd, _, err := r.scratch.Open(ctx, name)
	if err != nil {
		return err
	}
	defer rd.Close()
	return readCounts(rd, func(w []byte, n int64) { r.counts.Add(w, n) })
}

// readCounts parses "word\tcount\n" lines without a string per word.
func readCounts(rd io.Reader, f func(word []byte, n int64)) error {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		w, n, err := splitCountLine(sc.Bytes())
		if err != nil {
			return err
		}
		f(w, n)
	}
	return sc.Err()
}

func parseCount(b []byte) (int64, error) {
	if len(b) == 0 || len(b) > 18 {
		return 0, strconv.ErrSyntax
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, strconv.ErrSyntax
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

// finish writes the partition's counts sorted by word and commits them.
func (r *reducer) finish(ctx context.Context) error {
	words := make([]string, 0, r.counts.Len())
	r.counts.Each(func(w string, _ int64) { words = append(words, w) })
	sort.Strings(words)
	var buf bytes.Buffer
	for _, w := range words {
		buf.WriteString(w)
		buf.WriteByte('\t')
		buf.WriteString(strconv.FormatInt(r.counts.Get(w), 10))
		buf.WriteByte('\n')
	}
	attempt := attemptOf(r.H.WorkerID(), r.H.Epoch())
	obj := reduceObject(r.cfg.Index, attempt)
	if _, err := r.scratch.PutBytes(ctx, obj, buf.Bytes()); err != nil {
		return err
	}
	c, _ := json.Marshal(reduceCommit{Attempt: attempt, Object: obj, Words: r.counts.Words(),
		Distinct: int64(r.counts.Len()), Top: TopN(r.counts, liveTop)})
	if _, err := r.H.KV().Put(ctx, reduceKey(r.cfg.Index), c); err != nil {
		return err
	}
	if err := r.report(ctx); err != nil {
		return err
	}
	r.H.Exit(framework.ExitFinished, nil, map[string]int64{"words": r.counts.Words(), "distinct": int64(r.counts.Len())})
	return nil
}

// TopN returns the n most frequent words, by count then word.
func TopN(c *Counts, n int) []WordCount {
	if n <= 0 {
		return nil
	}
	h := &topHeap{}
	c.EachBytes(func(w []byte, k int64) {
		// Most words do not make the list: no string for them.
		if h.Len() == n {
			worst := (*h)[0]
			if k < worst.Count || (k == worst.Count && string(w) >= worst.Word) {
				return
			}
		}
		h.offer(WordCount{string(w), k}, n)
	})
	return h.sorted()
}

// before orders a top list: higher count first, then by word.
func before(a, b WordCount) bool {
	if a.Count != b.Count {
		return a.Count > b.Count
	}
	return a.Word < b.Word
}

// topHeap keeps the best n entries with the worst on top.
type topHeap []WordCount

func (h topHeap) Len() int           { return len(h) }
func (h topHeap) Less(i, j int) bool { return before(h[j], h[i]) }
func (h topHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *topHeap) Push(x any)        { *h = append(*h, x.(WordCount)) }
func (h *topHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (h *topHeap) offer(wc WordCount, n int) {
	if h.Len() < n {
		heap.Push(h, wc)
		return
	}
	if before(wc, (*h)[0]) {
		(*h)[0] = wc
		heap.Fix(h, 0)
	}
}

func (h *topHeap) sorted() []WordCount {
	out := append([]WordCount(nil), (*h)...)
	sort.Slice(out, func(i, j int) bool { return before(out[i], out[j]) })
	return out
}

// mergeTops merges top lists of disjoint word sets into the top n.
func mergeTops(n int, lists ...[]WordCount) []WordCount {
	h := &topHeap{}
	for _, l := range lists {
		for _, wc := range l {
			h.offer(wc, n)
		}
	}
	return h.sorted()
}
