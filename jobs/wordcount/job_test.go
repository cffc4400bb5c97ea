package wordcount_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/internal/runtime"
	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/jobs/wordcount"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
	"github.com/drover-run/drover/pkg/objstore"
	"github.com/drover-run/drover/pkg/topics"
)

// TestJobInProcess runs wordcount on an in-process system, crashes a
// worker node and the master's node while it runs, and checks the output
// against the generator's exact counts, the top route while and after it
// runs, and that the scratch space is gone.
func TestJobInProcess(t *testing.T) {
	types := framework.NewRegistry()
	types.MustRegister(wordcount.Type())
	sys := testsys.Start(t, types)
	addr := testsys.FreeAddr(t)
	sys.AddJobManagerHTTP("mgr", addr)
	sys.AddJobMaster("jm-1")
	sys.AddJobMaster("jm-2")
	sys.AddWorker("wk-1")
	sys.AddWorker("wk-2")
	sys.WaitReady(2, 2)
	_, js := natstest.Connect(t, sys.Server)
	objs := objstore.New(js, topics.MustNew(topics.DefaultPrefix), objstore.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	in, err := objs.Bucket(ctx, "in")
	if err != nil {
		t.Fatal(err)
	}
	gen := wordcount.NewGenerator(1, 20000)
	for name, size := range map[string]int64{"books/a": 6 << 20, "books/b": 2 << 20, "books/c": 10 << 10, "books/empty": 0, "other": 1 << 10} {
		var buf bytes.Buffer
		g := gen
		if name == "other" {
			g = wordcount.NewGenerator(2, 100) // not an input: not counted
		}
		if _, err := g.WriteText(&buf, size); err != nil {
			t.Fatal(err)
		}
		if _, err := in.Put(ctx, name, &buf); err != nil {
			t.Fatal(err)
		}
	}
	want := gen.Counts()

	cfg := `{"bucket":"in","prefix":"books/","reducers":3,"mappers":3,"split_bytes":65536,"output":"out/wc.tsv","top":20}`
	if _, err := sys.Client.Submit(ctx, api.Spec{ID: "wc", Type: wordcount.Name, Config: json.RawMessage(cfg)}); err != nil {
		t.Fatal(err)
	}

	// Partial answers while it runs.
	var live wordcount.TopResponse
	natstest.Eventually(t, 30*time.Second, "a partial top", func() bool {
		code, body := get(t, addr, "/api/v1/jobs/wc/top?n=5")
		return code == http.StatusOK && json.Unmarshal(body, &live) == nil && !live.Final && live.Merged > 0 && len(live.Top) == 5
	})
	if live.Of == 0 || live.Merged > live.Of {
		t.Fatalf("live top: %+v", live)
	}
	if code, body := get(t, addr, "/api/v1/jobs/wc/top?n=0"); code != http.StatusBadRequest || !strings.Contains(string(body), "invalid_argument") {
		t.Fatalf("n=0: %d %s", code, body)
	}

	// Crash a worker node and the master's node mid-run.
	j, err := sys.Client.Get(ctx, "wc")
	if err != nil {
		t.Fatal(err)
	}
	sys.Crash(j.Node)
	sys.Crash("wk-1")
	sys.AddWorker("wk-3")

	final, err := sys.WaitJob("wc", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if final.State != api.StateFinished {
		t.Fatalf("job ended %s: %v", final.State, final.Error)
	}
	if final.Epoch < 2 {
		t.Fatalf("master not moved (epoch %d)", final.Epoch)
	}
	ws, err := sys.Client.Workers(ctx, "wc")
	if err != nil {
		t.Fatal(err)
	}
	recreated := 0
	for _, w := range ws {
		if w.Epoch > 1 {
			recreated++
		}
	}
	if recreated == 0 {
		t.Fatalf("no worker was re-created after the crash: %+v", ws)
	}
	var d wordcount.Detail
	if err := json.Unmarshal(final.Detail, &d); err != nil {
		t.Fatal(err)
	}
	if d.Words != gen.Words() || d.Distinct != int64(len(want)) || d.Inputs != 4 || d.Output.Name != "out/wc.tsv" || len(d.Top) != 20 {
		t.Fatalf("detail %+v, want %d words, %d distinct", d, gen.Words(), len(want))
	}

	got := readOutput(t, ctx, objs, "in", "out/wc.tsv")
	if !maps.Equal(got, want) {
		diff := 0
		for w, n := range want {
			if got[w] != n {
				if diff < 10 {
					t.Errorf("%q: got %d, want %d", w, got[w], n)
				}
				diff++
			}
		}
		t.Fatalf("%d words wrong of %d (%d output)", diff, len(want), len(got))
	}
	top := wantTop(want, 20)
	if fmt.Sprint(d.Top) != fmt.Sprint(top) {
		t.Fatalf("top: %v, want %v", d.Top, top)
	}

	// After the job: the job manager answers from the detail.
	var after wordcount.TopResponse
	code, body := get(t, addr, "/api/v1/jobs/wc/top?n=3")
	if code != http.StatusOK || json.Unmarshal(body, &after) != nil || !after.Final || fmt.Sprint(after.Top) != fmt.Sprint(top[:3]) {
		t.Fatalf("top after the job: %d %s", code, body)
	}
	if code, _ := get(t, addr, "/api/v1/jobs/wc/nope"); code != api.CodeFailedPrecondition.HTTPStatus() {
		t.Fatalf("unknown route of an ended job: %d", code)
	}

	work, err := objs.OpenBucket(ctx, runtime.DefaultWorkBucket)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := work.List(ctx, runtime.ScratchPrefix("wc"))
		if err == nil && len(l) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scratch not deleted: %d objects left, e.g. %+v (%v)", len(l), l[:min(len(l), 3)], err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func get(t *testing.T, addr, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// readOutput parses the output object, checking it is sorted by word.
func readOutput(t *testing.T, ctx context.Context, objs *objstore.Client, bucket, name string) map[string]int64 {
	t.Helper()
	b, err := objs.OpenBucket(ctx, bucket)
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

func wantTop(counts map[string]int64, n int) []wordcount.WordCount {
	var all []wordcount.WordCount
	for w, c := range counts {
		all = append(all, wordcount.WordCount{Word: w, Count: c})
	}
	slices.SortFunc(all, func(a, b wordcount.WordCount) int {
		if a.Count != b.Count {
			return int(b.Count - a.Count)
		}
		return strings.Compare(a.Word, b.Word)
	})
	return all[:min(n, len(all))]
}
