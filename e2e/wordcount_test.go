package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/jobs/wordcount"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"
	"github.com/drover-run/drover/pkg/objstore"
)

var wordcountLong = flag.Bool("wordcount.long", false, "run the long form of the wordcount fault test: 200 MB and random kills (also DROVER_WORDCOUNT_LONG=1)")

// TestWordcountExactUnderSIGKILL runs wordcount on a generated corpus of
// more than 50 MB whose counts are known exactly, while map and reduce
// workers (their worker nodes) and the master (its job-master node) are
// killed with SIGKILL, and checks that the output equals the known counts
// exactly. It also checks, from the KV history, that every map task was
// committed exactly once and every reduce partition at most once per
// incarnation that got to commit: a task re-run after its worker was lost
// never counts twice, because only committed outputs are ever read.
func TestWordcountExactUnderSIGKILL(t *testing.T) {
	long := *wordcountLong || os.Getenv("DROVER_WORDCOUNT_LONG") == "1"
	c := NewCluster(t, Options{})
	w := c.StartWitness()
	c.Start(JobManager, "mgr-1")
	jms := []*Proc{c.Start(JobMaster, "jm-1"), c.Start(JobMaster, "jm-2")}
	wks := []*Proc{c.Start(Worker, "wk-1"), c.Start(Worker, "wk-2"), c.Start(Worker, "wk-3")}
	c.WaitNodes(api.NodeJobMaster, "jm-1", "jm-2")
	c.WaitNodes(api.NodeWorker, "wk-1", "wk-2", "wk-3")

	sizes := []int64{24 << 20, 20 << 20, 8 << 20, 100 << 10, 0}
	if long {
		sizes = []int64{96 << 20, 64 << 20, 40 << 20, 100 << 10, 0}
	}
	t0 := time.Now()
	gen, total := uploadCorpus(t, c, "corpus", "books/", 7, sizes)
	want := gen.Counts()
	t.Logf("corpus: %.1f MB, %d words, %d distinct, generated and uploaded in %s",
		float64(total)/(1<<20), gen.Words(), len(want), time.Since(t0).Round(time.Millisecond))

	const job = "wc"
	cfg := `{"bucket":"corpus","prefix":"books/","reducers":4,"mappers":6,"split_bytes":2097152,"output":"out/counts.tsv","top":25}`
	c.Submit(api.Spec{ID: job, Type: wordcount.Name, Config: json.RawMessage(cfg)})
	j := c.WaitJob(job, 30*time.Second, "running", func(j *api.Job) bool { return j.State == api.StateRunning })
	tasks := int(total / (2 << 20))

	// Kill points, by map tasks committed: a worker node (map and reduce
	// workers die with it), then the master's node, then another worker
	// node; each is restarted (same node id) a moment later.
	mapCommits := func() int { return w.Count("b." + job + ".map.") }
	restart := func(p *Proc) *Proc {
		time.Sleep(500 * time.Millisecond)
		return p.Restart()
	}
	frozen := -1
	killWorkerNode := func(why string) {
		i := busiestWorkerNode(c, job, wks, frozen)
		t.Logf("%s: SIGKILL %s (%d map commits)", why, wks[i].Name, mapCommits())
		wks[i].Kill()
		// A fresh node id, so the dead node's worker records are not
		// mistaken for the new node's.
		time.Sleep(500 * time.Millisecond)
		wks = append(wks, c.Start(Worker, fmt.Sprintf("wk-%d", len(wks)+1)))
	}
	killMaster := func(why string) {
		cur := c.Job(job)
		p := NodeOf(cur.Node, jms...)
		if p == nil || !p.Alive() || cur.State.Terminal() {
			return
		}
		t.Logf("%s: SIGKILL %s, master of epoch %d (%d map commits)", why, p.Name, cur.Epoch, mapCommits())
		p.Kill()
		for i := range jms {
			if jms[i] == p {
				jms[i] = restart(p)
			}
		}
	}
	waitCommits := func(n int) bool {
		return Poll(90*time.Second, func() bool { return mapCommits() >= n || c.Job(job).State.Terminal() }) &&
			!c.Job(job).State.Terminal()
	}
	if waitCommits(1) {
		killWorkerNode("a map task committed")
	}
	// A frozen worker node outlives its workers' timeout: they are
	// re-created elsewhere, and when it resumes, any commit they attempt is
	// refused by the fence (counted below), never counted.
	thawed := make(chan struct{})
	if waitCommits(tasks / 4) {
		frozen = busiestWorkerNode(c, job, wks, -1)
		p := wks[frozen]
		t.Logf("a quarter of the map tasks committed: SIGSTOP %s (%d map commits)", p.Name, mapCommits())
		p.Stop()
		go func() {
			defer close(thawed)
			time.Sleep(c.Timing.WorkerTimeout + 2*time.Second)
			p.Cont()
		}()
	} else {
		close(thawed)
	}
	if waitCommits(tasks / 3) {
		killMaster("a third of the map tasks committed")
	}
	if waitCommits(2 * tasks / 3) {
		killWorkerNode("two thirds of the map tasks committed")
	}
	if long {
		// Then random kills of anything but the job manager until it ends.
		r := rand.New(rand.NewPCG(11, 11))
		for !c.Job(job).State.Terminal() {
			time.Sleep(time.Duration(2000+r.IntN(3000)) * time.Millisecond)
			if c.Job(job).State.Terminal() {
				break
			}
			if r.IntN(3) == 0 {
				killMaster("random")
			} else {
				killWorkerNode("random")
			}
		}
	}

	final := c.WaitTerminal(job, 4*time.Minute)
	<-thawed
	t.Logf("job %s %s at epoch %d after %s (from submit)", job, final.State, final.Epoch, time.Since(j.CreatedAt).Round(time.Millisecond))
	if final.State != api.StateFinished {
		t.Fatalf("job ended %s: %v", final.State, final.Error)
	}
	if final.Epoch == j.Epoch {
		t.Errorf("the master was never moved (epoch %d)", final.Epoch)
	}
	var d wordcount.Detail
	if err := json.Unmarshal(final.Detail, &d); err != nil {
		t.Fatal(err)
	}
	if d.Words != gen.Words() || d.Distinct != int64(len(want)) || d.InputBytes != total {
		t.Fatalf("detail: %d words, %d distinct, %d bytes; want %d, %d, %d", d.Words, d.Distinct, d.InputBytes,
			gen.Words(), len(want), total)
	}
	got := readCounts(t, c, "corpus", "out/counts.tsv")
	diff := 0
	for word, n := range want {
		if got[word] != n {
			if diff < 10 {
				t.Errorf("%q counted %d, want %d", word, got[word], n)
			}
			diff++
		}
	}
	if diff > 0 || len(got) != len(want) {
		t.Fatalf("%d of %d words wrong; output has %d words", diff, len(want), len(got))
	}

	// Re-created workers: the kills did hit workers.
	recreated := 0
	recreatedTypes := map[string]bool{}
	for _, r := range c.Workers(job) {
		if r.Epoch > 1 {
			recreated++
			recreatedTypes[r.Type] = true
		}
	}
	if !recreatedTypes[wordcount.MapWorker] || !recreatedTypes[wordcount.ReduceWorker] {
		t.Errorf("re-created worker types %v: the kills missed map or reduce workers", recreatedTypes)
	}
	// Every map task committed exactly once: a committed task is never run
	// again, and a re-run of an uncommitted one commits once.
	perKey := map[string]int{}
	for _, e := range w.Entries() {
		if strings.HasPrefix(e.Key, "b."+job+".map.") && !e.Deleted {
			perKey[e.Key]++
		}
	}
	if len(perKey) != d.MapTasks {
		t.Errorf("%d map tasks committed, plan has %d", len(perKey), d.MapTasks)
	}
	for k, n := range perKey {
		if n != 1 {
			t.Errorf("%s committed %d times", k, n)
		}
	}
	if bad := w.Check(); len(bad) > 0 {
		t.Errorf("KV history: %v", bad)
	}
	rejected := 0
	if frozen >= 0 {
		// Give the resumed node a moment to try, and be refused.
		time.Sleep(time.Second)
		rejected = RejectedWrites(wks[frozen])
	}
	t.Logf("%d map tasks, %d workers re-created, %d stale writes refused, output exact (%d words, %d distinct)",
		d.MapTasks, recreated, rejected, d.Words, d.Distinct)
}

// uploadCorpus generates one object per size under prefix, streaming, and
// returns the generator (which knows the counts) and the bytes written.
func uploadCorpus(t *testing.T, c *Cluster, bucket, prefix string, seed uint64, sizes []int64) (*wordcount.Generator, int64) {
	t.Helper()
	js, err := jetstream.New(c.NC)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := objstore.New(js, c.Space, objstore.Options{}).Bucket(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	gen := wordcount.NewGenerator(seed, 50000)
	var total int64
	for i, size := range sizes {
		pr, pw := io.Pipe()
		go func() {
			_, err := gen.WriteText(pw, size)
			pw.CloseWithError(err)
		}()
		info, err := b.Put(ctx, fmt.Sprintf("%spart-%d", prefix, i), pr)
		pr.CloseWithError(err)
		if err != nil {
			t.Fatal(err)
		}
		total += info.Size
	}
	return gen, total
}

// readCounts reads a wordcount output, checking it is sorted by word.
func readCounts(t *testing.T, c *Cluster, bucket, name string) map[string]int64 {
	t.Helper()
	js, _ := jetstream.New(c.NC)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := objstore.New(js, c.Space, objstore.Options{}).OpenBucket(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := b.Open(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out, err := wordcount.ReadOutput(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// busiestWorkerNode returns the index of the live worker node running the
// most live workers of job (map workers count double: they are the busy
// ones), other than skip.
func busiestWorkerNode(c *Cluster, job string, wks []*Proc, skip int) int {
	load := map[string]int{}
	for _, r := range c.Workers(job) {
		if r.State == kvstate.WorkerOnline || r.State == kvstate.WorkerCreated {
			load[r.Node]++
			if r.Type == wordcount.MapWorker {
				load[r.Node]++
			}
		}
	}
	idx := make([]int, len(wks))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return load[wks[idx[a]].ID] > load[wks[idx[b]].ID] })
	for _, i := range idx {
		if wks[i].Alive() && i != skip {
			return i
		}
	}
	return idx[0]
}
