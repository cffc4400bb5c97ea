package jobmanager_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/jobs/builtin"
	"github.com/drover-run/drover/pkg/api"
)

func startSystem(t *testing.T, jobmasters, workers int) *testsys.System {
	t.Helper()
	sys := testsys.Start(t, builtin.TestRegistry())
	sys.AddJobManager("jm-a")
	for i := range jobmasters {
		sys.AddJobMaster(fmt.Sprintf("master-%d", i))
	}
	for i := range workers {
		sys.AddWorker(fmt.Sprintf("worker-%d", i))
	}
	sys.WaitReady(jobmasters, workers)
	return sys
}

func jobCount(t *testing.T, sys *testsys.System) int {
	t.Helper()
	jobs, _, err := sys.Client.List(context.Background(), api.ListRequest{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(jobs)
}

// TestBadInputIsRefusedWithACodeAndChangesNothing sends every kind of bad
// submission over the public NATS API and checks its code and that no job
// record appeared.
func TestBadInputIsRefusedWithACodeAndChangesNothing(t *testing.T) {
	sys := startSystem(t, 0, 0)
	ctx := context.Background()
	subj := sys.Client.Space().APISubmit()
	big := `{"type":"counter","config":{"pad":"` + strings.Repeat("x", api.MaxPayload) + `"}}`
	tests := []struct {
		name string
		body string
		code api.Code
	}{
		{"malformed json", `{"type":`, api.CodeInvalidArgument},
		{"not an object", `[1,2]`, api.CodeInvalidArgument},
		{"trailing data", `{"type":"counter"} {}`, api.CodeInvalidArgument},
		{"unknown field", `{"type":"counter","colour":"red"}`, api.CodeInvalidArgument},
		{"missing type", `{"config":{}}`, api.CodeInvalidArgument},
		{"unknown type", `{"type":"nope"}`, api.CodeUnknownType},
		{"hostile type", `{"type":"a.b"}`, api.CodeInvalidArgument},
		{"id with dot", `{"id":"a.b","type":"counter"}`, api.CodeInvalidArgument},
		{"id star", `{"id":"*","type":"counter"}`, api.CodeInvalidArgument},
		{"id gt", `{"id":">","type":"counter"}`, api.CodeInvalidArgument},
		{"id space", `{"id":"a b","type":"counter"}`, api.CodeInvalidArgument},
		{"id 65 chars", `{"id":"` + strings.Repeat("a", 65) + `","type":"counter"}`, api.CodeInvalidArgument},
		{"config not object", `{"type":"counter","config":[1]}`, api.CodeInvalidArgument},
		{"config invalid for type", `{"type":"counter","config":{"workers":0}}`, api.CodeInvalidArgument},
		{"config unknown key", `{"type":"counter","config":{"wrkers":2}}`, api.CodeInvalidArgument},
		{"negative restarts", `{"type":"counter","restart":{"max_restarts":-1}}`, api.CodeInvalidArgument},
		{"backoff that overflows", `{"type":"counter","restart":{"initial_backoff_ms":10000000000000,"max_backoff_ms":10000000000000}}`, api.CodeInvalidArgument},
		{"backoff over 24 h", `{"type":"counter","restart":{"max_backoff_ms":86400001}}`, api.CodeInvalidArgument},
		{"oversized", big, api.CodeTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sys.Client.Call(ctx, subj, []byte(tt.body))
			if got := api.ErrorCode(err); got != tt.code || err == nil {
				t.Fatalf("code = %v (%v), want %s", got, err, tt.code)
			}
		})
	}
	if n := jobCount(t, sys); n != 0 {
		t.Fatalf("%d job records after refused submissions, want 0", n)
	}
	for name, id := range map[string]string{"get": "a.b", "cancel": "*", "get-empty": ""} {
		subject := sys.Client.Space().APIGet()
		if strings.HasPrefix(name, "cancel") {
			subject = sys.Client.Space().APICancel()
		}
		_, err := sys.Client.Call(ctx, subject, api.GetRequest{ID: id})
		if api.ErrorCode(err) != api.CodeInvalidArgument {
			t.Errorf("%s %q: %v, want invalid_argument", name, id, err)
		}
	}
	if _, err := sys.Client.Get(ctx, "missing"); api.ErrorCode(err) != api.CodeNotFound {
		t.Errorf("get missing: %v, want not_found", err)
	}
	if _, _, err := sys.Client.List(ctx, api.ListRequest{State: "sleeping"}); api.ErrorCode(err) != api.CodeInvalidArgument {
		t.Errorf("list with bad state: %v", err)
	}
}

func TestDuplicateSubmissionIsIdempotent(t *testing.T) {
	sys := startSystem(t, 0, 0)
	ctx := context.Background()
	spec := api.Spec{ID: "dup-1", Type: "counter", Config: json.RawMessage(`{"workers": 2, "target": 5}`)}
	first, err := sys.Client.Submit(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	// Same spec, differently formatted config: the same job.
	spec.Config = json.RawMessage(`{"workers":2,"target":5}`)
	again, err := sys.Client.Submit(ctx, spec)
	if err != nil {
		t.Fatalf("resubmit: %v", err)
	}
	if again.CreatedAt != first.CreatedAt {
		t.Fatalf("resubmission created a new job: %v vs %v", again.CreatedAt, first.CreatedAt)
	}
	spec.Config = json.RawMessage(`{"workers":3,"target":5}`)
	if _, err := sys.Client.Submit(ctx, spec); api.ErrorCode(err) != api.CodeAlreadyExists {
		t.Fatalf("same id, other spec: %v, want already_exists", err)
	}
	if n := jobCount(t, sys); n != 1 {
		t.Fatalf("%d jobs, want 1", n)
	}
}

func TestCounterJobFinishesWithExactTotal(t *testing.T) {
	sys := startSystem(t, 1, 2)
	ctx := context.Background()
	j, err := sys.Client.Submit(ctx, api.Spec{Type: "counter", Config: json.RawMessage(`{"workers":4,"target":50,"interval_ms":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	done, err := sys.WaitJob(j.ID, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if done.State != api.StateFinished {
		t.Fatalf("state %s, error %v", done.State, done.Error)
	}
	var d struct{ Total int }
	if err := json.Unmarshal(done.Detail, &d); err != nil || d.Total != 200 {
		t.Fatalf("detail %s: total %d, want 200", done.Detail, d.Total)
	}
	ws, err := sys.Client.Workers(ctx, j.ID)
	if err != nil || len(ws) != 4 {
		t.Fatalf("workers: %v %v", ws, err)
	}
	nodes := map[string]int{}
	for _, w := range ws {
		nodes[w.Node]++
		if w.State != "finished" {
			t.Errorf("worker %s state %s", w.ID, w.State)
		}
	}
	if len(nodes) != 2 {
		t.Errorf("workers placed on %v, want both worker nodes used", nodes)
	}
}

func TestListPaginatesAndFilters(t *testing.T) {
	sys := startSystem(t, 0, 0)
	ctx := context.Background()
	for i := range 5 {
		if _, err := sys.Client.Submit(ctx, api.Spec{ID: fmt.Sprintf("p%d", i), Type: "counter"}); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	after := ""
	for {
		jobs, next, err := sys.Client.List(ctx, api.ListRequest{Limit: 2, After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			seen = append(seen, j.ID)
		}
		if next == "" {
			break
		}
		after = next
	}
	// Pages come in last-change order, and a job the leader moved on
	// (created to pending) meanwhile may show twice; none is missing.
	seen = slices.Compact(slices.Sorted(slices.Values(seen)))
	if strings.Join(seen, ",") != "p0,p1,p2,p3,p4" {
		t.Fatalf("pages gave %v", seen)
	}
	// No job-master node runs: every job waits in created or pending.
	jobs, _, err := sys.Client.List(ctx, api.ListRequest{State: api.StateFinished})
	if err != nil || len(jobs) != 0 {
		t.Fatalf("finished filter: %v %v", jobs, err)
	}
}

func TestCancelPendingJobEndsAtOnce(t *testing.T) {
	sys := startSystem(t, 0, 0)
	ctx := context.Background()
	if _, err := sys.Client.Submit(ctx, api.Spec{ID: "c1", Type: "counter"}); err != nil {
		t.Fatal(err)
	}
	j, err := sys.Client.Cancel(ctx, "c1")
	if err != nil || j.State != api.StateCanceled {
		t.Fatalf("cancel: %+v %v", j, err)
	}
	// Cancel is idempotent on a terminal job.
	if j, err := sys.Client.Cancel(ctx, "c1"); err != nil || j.State != api.StateCanceled {
		t.Fatalf("second cancel: %+v %v", j, err)
	}
}

func TestCancelRunningJob(t *testing.T) {
	sys := startSystem(t, 1, 1)
	ctx := context.Background()
	j, err := sys.Client.Submit(ctx, api.Spec{Type: "counter", Config: json.RawMessage(`{"workers":2,"target":100000,"interval_ms":5}`)})
	if err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 10*time.Second, "job running", func() bool {
		g, err := sys.Client.Get(ctx, j.ID)
		return err == nil && g.State == api.StateRunning
	})
	c, err := sys.Client.Cancel(ctx, j.ID)
	if err != nil || (c.State != api.StateCanceling && c.State != api.StateCanceled) {
		t.Fatalf("cancel: %+v %v", c, err)
	}
	done, err := sys.WaitJob(j.ID, 10*time.Second)
	if err != nil || done.State != api.StateCanceled {
		t.Fatalf("after cancel: %+v %v", done, err)
	}
}

func TestDurableRequestsAreAcceptedExactlyOnce(t *testing.T) {
	sys := testsys.Start(t, builtin.TestRegistry())
	ctx := context.Background()
	// The deployment existed once (streams created), then every job
	// manager went away; requests are published meanwhile.
	sys.AddJobManager("jm-first")
	sys.WaitReady(0, 0)
	sys.Stop("jm-first")
	spec := api.Spec{ID: "durable-1", Type: "counter"}
	for range 3 {
		if err := sys.Client.SubmitDurable(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	js, _ := jetstream.New(sys.Client.Conn())
	if _, err := js.Publish(ctx, sys.Client.Space().JobRequests(), []byte(`{"type":"counter"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, sys.Client.Space().JobRequests(), []byte(`{"type":`)); err != nil {
		t.Fatal(err)
	}
	late := sys.AddJobManager("jm-late")
	natstest.Eventually(t, 10*time.Second, "durable requests stored", func() bool {
		jobs, _, err := sys.Client.List(ctx, api.ListRequest{})
		return err == nil && len(jobs) == 2
	})
	time.Sleep(300 * time.Millisecond) // nothing else may arrive
	jobs, _, _ := sys.Client.List(ctx, api.ListRequest{})
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].ID < jobs[b].ID }) // list is in last-change order
	if len(jobs) != 2 || jobs[0].ID != "durable-1" || !strings.HasPrefix(jobs[1].ID, "req-") {
		t.Fatalf("jobs from durable requests: %+v", jobs)
	}
	// The stream kept one of the three copies (same message id); that one
	// and the request without an id were accepted, the malformed one refused.
	if got := metricValue(t, late.Registry, "drover_jobmanager_submissions_total", map[string]string{"path": "durable"}); got != 2 {
		t.Errorf("durable submissions_total = %v, want 2", got)
	}
	if got := metricValue(t, late.Registry, "drover_jobmanager_rejections_total",
		map[string]string{"path": "durable", "code": "invalid_argument"}); got != 1 {
		t.Errorf("durable rejections_total{invalid_argument} = %v, want 1", got)
	}
}

func TestHTTPMirrorsTheAPI(t *testing.T) {
	sys := testsys.Start(t, builtin.TestRegistry())
	addr := testsys.FreeAddr(t)
	sys.AddJobManagerHTTP("jm-http", addr)
	sys.AddJobMaster("m0")
	sys.AddWorker("w0")
	sys.WaitReady(1, 1)
	base := "http://" + addr
	resp, err := http.Post(base+"/api/v1/jobs", "application/json",
		strings.NewReader(`{"id":"h1","type":"counter","config":{"workers":1,"target":100000,"interval_ms":5}}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"id":"h1"`) {
		t.Fatalf("submit: %d %s", resp.StatusCode, body)
	}
	for path, want := range map[string]int{
		"/api/v1/jobs/h1":      200,
		"/api/v1/jobs/missing": 404,
		"/api/v1/jobs/a%20b":   400,
		"/api/v1/jobs?limit=x": 400,
		"/api/v1/nodes":        200,
		"/healthz":             200,
	} {
		r, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", path, r.StatusCode, want)
		}
	}
	// A per-job route served by the master, forwarded over NATS.
	natstest.Eventually(t, 10*time.Second, "forwarded /status", func() bool {
		r, err := http.Get(base + "/api/v1/jobs/h1/status")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		return r.StatusCode == 200 && strings.Contains(string(b), `"workers"`)
	})
	r, err := http.Post(base+"/api/v1/jobs/h1/cancel", "application/json", nil)
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("cancel: %v %v", r, err)
	}
	r.Body.Close()
}
