package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/jobs/wordcount"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/objstore"
)

// The wordcount phase (issue 7): the throughput of the wordcount job,
// submit to finished, with 1, 2 and 4 worker-node processes (and one
// job-master node process), against a single-process Go word count of the
// same corpus (the same tokenizer, one goroutine, from a file in the page
// cache) in the same run. Every run must count exactly the generator's
// words.
//
// Each job run is paired with a baseline count made just before it, and a
// number of worker nodes is given the median of its runs' ratios: the
// baseline alone moved by half between minutes of the same morning (with
// what else ran on the shared host), so a job's best run against a
// baseline's best run from another moment said as much about the moments
// as about the job.

// wordcountFigures is the phase's result, for latest.json.
type wordcountFigures struct {
	CorpusBytes  int64   `json:"corpus_bytes"`
	Words        int64   `json:"words"`
	Distinct     int     `json:"distinct"`
	BaselineMBps float64 `json:"baseline_mb_per_s"`
	// ParallelMBps is the same count on one goroutine per CPU, each on
	// its share of the corpus in memory (split at whitespace): what any
	// parallel word count reaches on this machine, with nothing to read,
	// send or merge; Cores is how many goroutines.
	ParallelMBps float64 `json:"parallel_mb_per_s"`
	Cores        int     `json:"cores"`
	// Job is the wordcount config every run used (bucket and ids aside).
	Mappers    int            `json:"mappers"`
	Reducers   int            `json:"reducers"`
	SplitBytes int64          `json:"split_bytes"`
	Runs       []wordcountRun `json:"runs"`
}

// wordcountRun is the fastest of the runs with one number of worker nodes,
// and the median of the runs' ratios to their paired baseline.
type wordcountRun struct {
	WorkerNodes int     `json:"worker_nodes"`
	Seconds     float64 `json:"seconds"`
	MBps        float64 `json:"mb_per_s"`
	// VsBaseline is the median over the runs of each run's MB/s over the
	// baseline count made just before it; Ratios are those ratios.
	VsBaseline float64   `json:"vs_baseline"`
	Ratios     []float64 `json:"paired_ratios"`
	// WorkerCores is the CPU the worker node processes used, in cores;
	// ServerCores the bench process's: nats-server and the job manager.
	WorkerCores float64 `json:"worker_cores"`
	ServerCores float64 `json:"server_cores"`
}

// wordcountDefaults: the corpus size of the full and the quick run.
const (
	wordcountMB      = 128
	wordcountQuickMB = 24
)

// wordcountResult holds the last figures measured, for the results file.
var wordcountResult *wordcountFigures

// wordcount runs the phase with the bench's options (-quick: a smaller
// corpus and one run; else five runs at least) and keeps its figures in wordcountResult.
func (b *bench) wordcount() error {
	mb := wordcountMB
	if b.o.quick {
		mb = wordcountQuickMB
	}
	runs := max(b.o.runs, 1)
	if !b.o.quick {
		// A median of paired runs: five at least, as one run in five
		// lands ±20 % off on this shared host.
		runs = max(runs, 5)
	}
	f, err := b.measureWordcount(int64(mb)<<20, []int{1, 2, 4}, runs)
	if err != nil {
		return err
	}
	wordcountResult = f
	return nil
}

// measureWordcount generates a corpus of size bytes, times the baseline,
// then the job with each number of worker nodes, runs times each.
func (b *bench) measureWordcount(size int64, nodeCounts []int, runs int) (*wordcountFigures, error) {
	dir, err := os.MkdirTemp("", "drover-bench-wordcount-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "corpus.txt")
	file, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	gen := wordcount.NewGenerator(2026, 50000)
	written, err := gen.WriteText(file, size)
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	f := &wordcountFigures{CorpusBytes: written, Words: gen.Words(), Distinct: len(gen.Counts()),
		Mappers: 8, Reducers: 4, SplitBytes: 8 << 20}
	mb := float64(written) / (1 << 20)
	logf("wordcount corpus: %.1f MB, %d words, %d distinct", mb, f.Words, f.Distinct)

	for range runs {
		quietCount()
		if _, err := baselineCount(path, f); err != nil {
			return nil, err
		}
	}
	logf("wordcount baseline (one goroutine): %.1f MB/s", f.BaselineMBps)
	if err := parallelCount(path, f, mb, runs); err != nil {
		return nil, err
	}
	logf("wordcount on %d goroutines, in memory: %.1f MB/s (%.2fx the baseline)", f.Cores, f.ParallelMBps, f.ParallelMBps/f.BaselineMBps)

	for _, n := range nodeCounts {
		run, err := b.wordcountNodes(path, f, n, runs)
		if err != nil {
			return nil, fmt.Errorf("%d worker nodes: %w", n, err)
		}
		f.Runs = append(f.Runs, *run)
		logf("wordcount with %d worker node(s): %.1f MB/s (%.2f s, %.2fx the baseline; worker nodes %.2f cores, nats-server + job manager %.2f cores)",
			n, run.MBps, run.Seconds, run.VsBaseline, run.WorkerCores, run.ServerCores)
	}
	return f, nil
}

// baselineCount times the baseline once: a process of its own (this binary
// with countArg) counting the corpus from a file on one goroutine with the
// same tokenizer and table, which times itself from opening the file to
// the last word. A process of its own, not a goroutine of this one: this
// process runs nats-server, whose heap (the corpus's messages among it)
// every garbage collection of a count here would mark. It keeps the
// fastest in f.BaselineMBps and returns this run's MB/s.
func baselineCount(path string, f *wordcountFigures) (float64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(exe, countArg, path)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("baseline count: %w", err)
	}
	var c countResult
	if err := json.Unmarshal(out, &c); err != nil || c.Seconds <= 0 {
		return 0, fmt.Errorf("baseline count: %q: %v", out, err)
	}
	if c.Words != f.Words {
		return 0, fmt.Errorf("baseline counted %d words, want %d", c.Words, f.Words)
	}
	mbps := float64(f.CorpusBytes) / (1 << 20) / c.Seconds
	f.BaselineMBps = max(f.BaselineMBps, *round2(mbps))
	return mbps, nil
}

// countArg makes the benchmark binary count the words of one file on one
// goroutine and print a countResult: the baseline.
const countArg = "__bench-count"

type countResult struct {
	Seconds float64 `json:"seconds"`
	Words   int64   `json:"words"`
}

// runCount is the baseline process: it counts the file at path and
// prints the time it took and the words it counted.
func runCount(path string) error {
	t0 := time.Now()
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	c, err := wordcount.CountReader(fh)
	fh.Close()
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(countResult{Seconds: time.Since(t0).Seconds(), Words: c.Words()})
}

// quietCount waits, up to 5 s, for the CPUs to be quiet over 200 ms before a
// timed count: a job's processes wind down after it (the master deletes
// its scratch objects, the server its messages), and a baseline timed
// during that would favour the job paired with it; each count and each job
// starts on a quiet machine alike.
func quietCount() { waitQuietFor(200*time.Millisecond, 5*time.Second) }

// parallelCount times the word count of the corpus at path on one
// goroutine per CPU, each counting its share in memory, runs times, and
// keeps the fastest in f: the machine's ceiling for counting in parallel.
func parallelCount(path string, f *wordcountFigures, mb float64, runs int) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	f.Cores = runtime.NumCPU()
	best := 0.0
	for range runs {
		t0 := time.Now()
		var words atomic.Int64
		var wg sync.WaitGroup
		start := 0
		for i := range f.Cores {
			end := len(data) * (i + 1) / f.Cores
			for end < len(data) && !wordcount.IsSpace(data[end]) {
				end++
			}
			share := data[start:end]
			start = end
			wg.Go(func() {
				if c, err := wordcount.CountReader(bytes.NewReader(share)); err == nil {
					words.Add(c.Words())
				}
			})
		}
		wg.Wait()
		secs := time.Since(t0).Seconds()
		if words.Load() != f.Words {
			return fmt.Errorf("parallel count: %d words, want %d", words.Load(), f.Words)
		}
		best = max(best, mb/secs)
	}
	f.ParallelMBps = *round2(best)
	return nil
}

// wordcountNodes deploys a job manager (in process), a job-master node and
// n worker nodes (processes) in a namespace of their own, uploads the
// corpus, and times runs jobs, each just after a baseline count, keeping
// the fastest and the median of the paired ratios.
func (b *bench) wordcountNodes(path string, f *wordcountFigures, n, runs int) (*wordcountRun, error) {
	prefix := fmt.Sprintf("bwc%d", n)
	d, err := b.deploy(prefix, 0, 0, false)
	if err != nil {
		return nil, err
	}
	defer d.close()
	jm, err := startChild("jobmaster", b.url, prefix, prefix+"-jobmaster-0", nil)
	if err != nil {
		return nil, err
	}
	defer jm.stop()
	var workers []*child
	defer func() {
		for _, w := range workers {
			w.stop()
		}
	}()
	var profiled []*child
	profs := func(name string) []string {
		if !b.o.profile || n != 2 {
			return nil
		}
		return []string{b.profPath(fmt.Sprintf("wordcount%d_%s", n, name))}
	}
	for i := range n {
		var p []string
		if i == 0 {
			p = profs("worker")
		}
		w, err := startChild("worker", b.url, prefix, fmt.Sprintf("%s-worker-%d", prefix, i), p)
		if err != nil {
			return nil, err
		}
		workers = append(workers, w)
		if p != nil {
			profiled = append(profiled, w)
		}
	}
	if err := d.waitReady(1 + n); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	js, err := jetstream.New(d.client.Conn())
	if err != nil {
		return nil, err
	}
	bucket, err := objstore.New(js, d.space, objstore.Options{}).Bucket(ctx, "corpus")
	if err != nil {
		return nil, err
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	_, err = bucket.Put(ctx, "corpus.txt", fh)
	fh.Close()
	if err != nil {
		return nil, err
	}

	mb := float64(f.CorpusBytes) / (1 << 20)
	cfg, _ := json.Marshal(map[string]any{"bucket": "corpus", "objects": []string{"corpus.txt"},
		"mappers": f.Mappers, "reducers": f.Reducers, "split_bytes": f.SplitBytes})
	best := &wordcountRun{WorkerNodes: n}
	for r := range runs {
		quietCount()
		base, err := baselineCount(path, f)
		if err != nil {
			return nil, err
		}
		quietCount()
		before, err := ticksOf(workers)
		if err != nil {
			return nil, err
		}
		self0, err := readProc(os.Getpid())
		if err != nil {
			return nil, err
		}
		if r == 0 {
			// The first run of the two-node case, profiled with -profile:
			// one worker node's CPU, where the job's time goes.
			for _, c := range profiled {
				c.signal(syscall.SIGUSR1)
			}
		}
		t0 := time.Now()
		id := fmt.Sprintf("wc%d", r)
		if _, err := d.client.Submit(ctx, api.Spec{ID: id, Type: wordcount.Name, Config: cfg}); err != nil {
			return nil, err
		}
		j, err := d.client.Wait(ctx, id, nil)
		if err != nil {
			return nil, err
		}
		secs := time.Since(t0).Seconds()
		if r == 0 {
			for _, c := range profiled {
				c.signal(syscall.SIGUSR1)
			}
		}
		after, err := ticksOf(workers)
		if err != nil {
			return nil, err
		}
		self1, err := readProc(os.Getpid())
		if err != nil {
			return nil, err
		}
		var det wordcount.Detail
		if j.State != api.StateFinished || json.Unmarshal(j.Detail, &det) != nil || det.Words != f.Words {
			return nil, fmt.Errorf("job %s ended %s with detail %s, want %d words", id, j.State, j.Detail, f.Words)
		}
		best.Ratios = append(best.Ratios, *round3(mb / secs / base))
		if best.Seconds == 0 || secs < best.Seconds {
			best.Seconds = *round3(secs)
			best.MBps = *round2(mb / secs)
			best.WorkerCores = *round2(float64(after-before) / clockTicks / secs)
			best.ServerCores = *round2(float64(self1.ticks-self0.ticks) / clockTicks / secs)
		}
	}
	best.VsBaseline = *round3(median(best.Ratios))
	return best, nil
}

// medianOf says what a ratio of n paired runs is.
func medianOf(n int) string {
	if n == 1 {
		return "one run"
	}
	return fmt.Sprintf("median of %d runs", n)
}

// ticksOf sums the CPU clock ticks of processes.
func ticksOf(cs []*child) (uint64, error) {
	var t uint64
	for _, c := range cs {
		p, err := readProc(c.pid())
		if err != nil {
			return 0, err
		}
		t += p.ticks
	}
	return t, nil
}

// wordcountRows are the phase's lines of the BENCHMARKS.md table.
func wordcountRows(f *wordcountFigures) []row {
	if f == nil {
		return nil
	}
	mb := float64(f.CorpusBytes) / (1 << 20)
	rows := []row{{fmt.Sprintf("wordcount baseline: one goroutine in a process of its own, %.0f MB from a file (MB/s, the fastest count of the phase)", mb),
		fmt.Sprintf("%.1f", f.BaselineMBps), "baseline"}}
	if f.ParallelMBps > 0 {
		rows = append(rows, row{fmt.Sprintf("wordcount, %d goroutines, each on its share of the corpus in memory (MB/s)", f.Cores),
			fmt.Sprintf("%.1f", f.ParallelMBps),
			fmt.Sprintf("%.2f× baseline: the most any parallel count reaches on these cores, with nothing to read, send or merge", f.ParallelMBps/f.BaselineMBps)})
	}
	for _, r := range f.Runs {
		rows = append(rows, row{fmt.Sprintf("wordcount job, %d worker node(s), submit → finished (MB/s)", r.WorkerNodes),
			fmt.Sprintf("%.1f", r.MBps), fmt.Sprintf("%.2f× baseline (%s, each against a baseline count just before it); cores: worker nodes %.2f, nats-server + job manager %.2f", r.VsBaseline, medianOf(len(r.Ratios)), r.WorkerCores, r.ServerCores)})
	}
	return rows
}
