package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/topics"
)

// stubManager answers the v1 API from memory on a real NATS server: it
// stands in for the job manager, so the CLI is tested on its own.
type stubManager struct {
	t     *testing.T
	nc    *nats.Conn
	space topics.Space
	url   string

	mu      sync.Mutex
	jobs    map[string]*api.Job
	workers map[string][]api.Worker
	nodes   []api.Node
	gets    atomic.Int64
	lists   []api.ListRequest
	events  []api.StreamEvent // the history emit keeps, seq = index+1
}

func newStubManager(t *testing.T) *stubManager {
	t.Helper()
	s := natstest.RunServer(t)
	nc, _ := natstest.Connect(t, s)
	m := &stubManager{t: t, nc: nc, space: topics.MustNew("drover"), url: s.ClientURL(),
		jobs: map[string]*api.Job{}, workers: map[string][]api.Worker{}}
	handle := func(subj string, f func(data []byte) api.Reply) {
		if _, err := nc.Subscribe(subj, func(msg *nats.Msg) {
			rep := f(msg.Data)
			b, _ := json.Marshal(rep)
			_ = msg.Respond(b)
		}); err != nil {
			t.Fatal(err)
		}
	}
	handle(m.space.APISubmit(), m.submit)
	handle(m.space.APIGet(), func(data []byte) api.Reply {
		m.gets.Add(1)
		return m.byID(data, func(j *api.Job) api.Reply { return api.Reply{Job: j} })
	})
	handle(m.space.APICancel(), func(data []byte) api.Reply {
		return m.byID(data, func(j *api.Job) api.Reply {
			if !j.State.Terminal() {
				j.State = api.StateCanceling
			}
			return api.Reply{Job: j}
		})
	})
	handle(m.space.APIList(), m.list)
	handle(m.space.APINodes(), func([]byte) api.Reply {
		m.mu.Lock()
		defer m.mu.Unlock()
		return api.Reply{Nodes: m.nodes}
	})
	handle(m.space.APIWorkers(), m.workersPage)
	if _, err := nc.Subscribe(m.space.APIEvents(), m.history); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return m
}

// emit adds an event to the history and publishes it live, as the events
// stream would.
func (m *stubManager) emit(ev api.Event) {
	m.mu.Lock()
	m.events = append(m.events, api.StreamEvent{Seq: uint64(len(m.events) + 1), Event: ev})
	m.mu.Unlock()
	b, _ := json.Marshal(ev)
	subj, _ := m.space.JobEvents(ev.Job)
	if err := m.nc.Publish(subj, b); err != nil {
		m.t.Fatal(err)
	}
}

func (m *stubManager) history(msg *nats.Msg) {
	var req api.EventsRequest
	_ = json.Unmarshal(msg.Data, &req)
	m.mu.Lock()
	rep := api.EventsReply{Events: []api.StreamEvent{}, Next: uint64(len(m.events) + 1)}
	for _, ev := range m.events {
		if ev.Job == req.ID && ev.Seq >= req.SinceSeq && (req.SinceTime == nil || !ev.Time.Before(*req.SinceTime)) {
			if req.Limit > 0 && len(rep.Events) == req.Limit {
				rep.Next = ev.Seq
				break
			}
			rep.Events = append(rep.Events, ev)
		}
	}
	m.mu.Unlock()
	b, _ := json.Marshal(rep)
	_ = msg.Respond(b)
}

func (m *stubManager) submit(data []byte) api.Reply {
	var spec api.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return api.Reply{Error: api.Errorf(api.CodeInvalidArgument, "malformed: %v", err)}
	}
	if spec.Type != "counter" {
		return api.Reply{Error: api.Errorf(api.CodeUnknownType, "unknown job type %q", spec.Type)}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if spec.ID == "" {
		spec.ID = fmt.Sprintf("job-%d", len(m.jobs)+1)
	}
	if j, ok := m.jobs[spec.ID]; ok {
		return api.Reply{Job: j}
	}
	j := &api.Job{ID: spec.ID, Type: spec.Type, Config: spec.Config, Selectors: spec.Selectors,
		State: api.StateCreated, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	m.jobs[j.ID] = j
	return api.Reply{Job: j}
}

func (m *stubManager) byID(data []byte, f func(*api.Job) api.Reply) api.Reply {
	var req api.GetRequest
	_ = json.Unmarshal(data, &req)
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[req.ID]
	if !ok {
		return api.Reply{Error: api.Errorf(api.CodeNotFound, "job %s not found", req.ID)}
	}
	cp := *j
	return f(&cp)
}

func (m *stubManager) list(data []byte) api.Reply {
	var req api.ListRequest
	_ = json.Unmarshal(data, &req)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lists = append(m.lists, req)
	var ids []string
	for id, j := range m.jobs {
		if (req.State == "" || j.State == req.State) && (req.Type == "" || j.Type == req.Type) && id > req.After {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	limit := req.Limit
	if limit <= 0 {
		limit = 100
	}
	var rep api.Reply
	for i, id := range ids {
		if i == limit {
			rep.Next = ids[i-1]
			break
		}
		rep.Jobs = append(rep.Jobs, *m.jobs[id])
	}
	return rep
}

// set changes a stored job under the lock.
func (m *stubManager) set(id string, f func(j *api.Job)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(m.jobs[id])
}

func (m *stubManager) put(j api.Job, ws ...api.Worker) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.jobs[j.ID] = &j
	m.workers[j.ID] = ws
}

func (m *stubManager) setWorkers(id string, ws ...api.Worker) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.workers[id] = ws
}

// stubWorkersPage is the most workers the stub answers at once, as a
// real page is cut below the payload limit.
const stubWorkersPage = 2

// workersPage answers a page of a job's workers (in the order put) after
// req.After, at most stubWorkersPage of them.
func (m *stubManager) workersPage(data []byte) api.Reply {
	var req api.WorkersRequest
	_ = json.Unmarshal(data, &req)
	return m.byID(data, func(j *api.Job) api.Reply {
		all := m.workers[j.ID]
		i := 0
		if req.After != "" {
			i = slices.IndexFunc(all, func(w api.Worker) bool { return w.ID == req.After }) + 1
		}
		n := min(len(all)-i, stubWorkersPage, max(req.Limit, 1))
		rep := api.Reply{Workers: all[i : i+n], Total: len(all)}
		if i+n < len(all) {
			rep.Next = all[i+n-1].ID
		}
		return rep
	})
}

func (m *stubManager) run(ctx context.Context, args ...string) result {
	m.t.Helper()
	return runCLI(m.t, ctx, map[string]string{"DROVER_NATS_URL": m.url}, "", args...)
}

func counterWorker(id string, done, total int) api.Worker {
	return api.Worker{ID: id, Type: "counter", Node: "worker-1", Epoch: 1, State: "running",
		Status: json.RawMessage(fmt.Sprintf(`{"done":%d,"total":%d}`, done, total))}
}

func TestSubmitGetCancel(t *testing.T) {
	m := newStubManager(t)
	ctx := deadline(t, 20*time.Second)

	r := m.run(ctx, "submit", "--type", "counter", "--config", `{"workers":4,"target":100}`, "--id", "j1")
	if r.code != 0 || strings.Join(lines(r.stdout), "\n") != "ID TYPE STATE\nj1 counter created" {
		t.Fatalf("submit: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = m.run(ctx, "get", "j1", "--json")
	var j api.Job
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &j) != nil || j.ID != "j1" || compactJSON(j.Config) != `{"workers":4,"target":100}` {
		t.Fatalf("get --json: exit %d %q %s", r.code, r.stdout, r.stderr)
	}

	r = m.run(ctx, "get", "j1")
	if r.code != 0 || !strings.Contains(r.stdout, "State:") || !strings.Contains(r.stdout, `{"workers":4,"target":100}`) {
		t.Fatalf("get: %q", r.stdout)
	}

	r = m.run(ctx, "cancel", "j1")
	if r.code != 0 || r.stdout != "j1 canceling\n" {
		t.Fatalf("cancel: exit %d %q", r.code, r.stdout)
	}

	r = m.run(ctx, "get", "nope")
	if r.code != exitError || r.stderr != "error: not_found: job nope not found\n" {
		t.Fatalf("get missing: exit %d %q", r.code, r.stderr)
	}

	r = m.run(ctx, "submit", "--type", "teleport")
	if r.code != exitError || r.stderr != "error: unknown_type: unknown job type \"teleport\"\n" {
		t.Fatalf("unknown type: exit %d %q", r.code, r.stderr)
	}

	r = m.run(ctx, "--json", "submit", "--type", "counter")
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &j) != nil || j.ID == "" || j.State != api.StateCreated {
		t.Fatalf("submit --json: exit %d %q", r.code, r.stdout)
	}
}

func TestNoJobManager(t *testing.T) {
	s := natstest.RunServer(t)
	r := runCLI(t, deadline(t, 10*time.Second), nil, "", "--nats-url", s.ClientURL(), "--timeout", "300ms", "list")
	if r.code != exitError || !strings.HasPrefix(r.stderr, "error: unavailable: no answer on drover.api.v1.jobs.list") {
		t.Fatalf("exit %d %q", r.code, r.stderr)
	}
}

func TestListPagination(t *testing.T) {
	m := newStubManager(t)
	ctx := deadline(t, 20*time.Second)
	for i := range 5 {
		st := api.StateRunning
		if i%2 == 0 {
			st = api.StateFinished
		}
		m.put(api.Job{ID: fmt.Sprintf("j%d", i), Type: "counter", State: st, CreatedAt: time.Now()})
	}

	r := m.run(ctx, "list", "--limit", "2")
	if r.code != 0 || len(lines(r.stdout)) != 3 || !strings.Contains(r.stderr, "more: drover list --after j1") {
		t.Fatalf("one page: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = m.run(ctx, "list", "--limit", "2", "--after", "j1", "--json")
	var page jobPage
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &page) != nil || len(page.Jobs) != 2 || page.Jobs[0].ID != "j2" || page.Next != "j3" {
		t.Fatalf("second page: exit %d %q", r.code, r.stdout)
	}

	r = m.run(ctx, "list", "--limit", "2", "--all", "--json")
	page = jobPage{}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &page) != nil || len(page.Jobs) != 5 || page.Next != "" {
		t.Fatalf("--all: exit %d %q", r.code, r.stdout)
	}

	r = m.run(ctx, "list", "--state", "finished", "--type", "counter", "--json")
	page = jobPage{}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &page) != nil || len(page.Jobs) != 3 {
		t.Fatalf("filtered: exit %d %q", r.code, r.stdout)
	}
	m.mu.Lock()
	last := m.lists[len(m.lists)-1]
	m.mu.Unlock()
	if last.State != api.StateFinished || last.Type != "counter" {
		t.Fatalf("filters not sent: %+v", last)
	}

	r = m.run(ctx, "list", "--type", "none", "--json")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "{\n  \"jobs\": []\n}" {
		t.Fatalf("empty list: %q", r.stdout)
	}
}

func TestNodesAndWorkersJSON(t *testing.T) {
	m := newStubManager(t)
	ctx := deadline(t, 20*time.Second)
	m.nodes = []api.Node{
		{ID: "worker-1", Kind: api.NodeWorker, Capacity: 8, Load: 2},
		{ID: "jobmaster-1", Kind: api.NodeJobMaster, Capacity: 100, Load: 1},
	}
	m.put(api.Job{ID: "j1", Type: "counter", State: api.StateRunning}, counterWorker("w0", 10, 100), counterWorker("w1", 30, 100))

	r := m.run(ctx, "nodes", "--json")
	var nodes struct{ Nodes []api.Node }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &nodes) != nil || len(nodes.Nodes) != 2 || nodes.Nodes[0].Kind != api.NodeJobMaster {
		t.Fatalf("nodes --json: exit %d %q", r.code, r.stdout)
	}
	r = m.run(ctx, "nodes", "--kind", "worker")
	if r.code != 0 || len(lines(r.stdout)) != 2 {
		t.Fatalf("nodes --kind: %q", r.stdout)
	}

	r = m.run(ctx, "workers", "j1", "--json")
	var ws struct {
		Workers  []api.Worker
		Progress progress
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ws) != nil || len(ws.Workers) != 2 || ws.Progress.Done != 40 || ws.Progress.Total != 200 {
		t.Fatalf("workers --json: exit %d %q", r.code, r.stdout)
	}
	r = m.run(ctx, "workers", "j1")
	if r.code != 0 || !strings.Contains(r.stdout, "total: 40/200  20%") {
		t.Fatalf("workers: %q", r.stdout)
	}
	m.put(api.Job{ID: "j5", Type: "counter", State: api.StateRunning},
		counterWorker("w0", 1, 10), counterWorker("w1", 1, 10), counterWorker("w2", 1, 10), counterWorker("w3", 1, 10), counterWorker("w4", 1, 10))
	r = m.run(ctx, "workers", "j5", "--json")
	var all struct {
		Workers []api.Worker
		Total   int
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &all) != nil || len(all.Workers) != 5 || all.Total != 5 ||
		all.Workers[4].ID != "w4" || !strings.Contains(r.stderr, "read 4 of 5 workers") {
		t.Fatalf("workers of three pages: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = m.run(ctx, "workers", "j5", "--limit", "3")
	if r.code != 0 || len(lines(r.stdout)) != 1+3+1 || !strings.Contains(r.stderr, "3 of the job's 5 workers shown") {
		t.Fatalf("workers --limit 3: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = m.run(ctx, "workers", "zzz")
	if r.code != exitError || !strings.HasPrefix(r.stderr, "error: not_found:") {
		t.Fatalf("workers of a missing job: exit %d %q", r.code, r.stderr)
	}
}

// waitForGets blocks until the CLI has read a job n more times, which
// proves it has subscribed to the job's events.
func (m *stubManager) waitForGets(t *testing.T, n int64) {
	t.Helper()
	target := m.gets.Load() + n
	natstest.Eventually(t, 10*time.Second, "the CLI to poll", func() bool { return m.gets.Load() >= target })
}

func TestWaitExitCodes(t *testing.T) {
	tests := []struct {
		name  string
		end   func(j *api.Job)
		code  int
		wants []string
	}{
		{"finished", func(j *api.Job) {
			j.State, j.Detail = api.StateFinished, json.RawMessage(`{"total": 200}`)
		}, exitOK, []string{"j1 finished  200/200 100%", `detail: {"total":200}`}},
		{"failed", func(j *api.Job) {
			j.State, j.Error = api.StateFailed, &api.Error{Code: api.CodeInternal, Message: "boom"}
		}, exitJobNotOK, []string{"j1 failed: internal: boom"}},
		{"canceled", func(j *api.Job) { j.State = api.StateCanceled }, exitJobNotOK, []string{"j1 canceled"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newStubManager(t)
			ctx := deadline(t, 20*time.Second)
			m.put(api.Job{ID: "j1", Type: "counter", State: api.StateRunning}, counterWorker("w0", 10, 100), counterWorker("w1", 0, 100))
			done := make(chan result, 1)
			go func() { done <- m.run(ctx, "wait", "j1") }()
			m.waitForGets(t, 2)
			m.setWorkers("j1", counterWorker("w0", 100, 100), counterWorker("w1", 100, 100))
			m.set("j1", tt.end)
			r := <-done
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d\n%s%s", r.code, tt.code, r.stdout, r.stderr)
			}
			if r.stderr != "" {
				t.Errorf("stderr %q", r.stderr)
			}
			for _, w := range append(tt.wants, "j1  running    10/200   5%  (2 workers)") {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, r.stdout)
				}
			}
		})
	}
}

func TestWaitJSONAndTimeout(t *testing.T) {
	m := newStubManager(t)
	ctx := deadline(t, 20*time.Second)
	m.put(api.Job{ID: "done", Type: "counter", State: api.StateFinished, Detail: json.RawMessage(`{"total":4}`)})
	m.put(api.Job{ID: "slow", Type: "counter", State: api.StateRunning})

	r := m.run(ctx, "wait", "--json", "done")
	var j api.Job
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &j) != nil || j.State != api.StateFinished {
		t.Fatalf("wait --json: exit %d %q", r.code, r.stdout)
	}

	start := time.Now()
	r = m.run(ctx, "wait", "--wait-timeout", "700ms", "slow")
	if r.code != exitError || !strings.HasPrefix(r.stderr, "error: timeout: slow not done after 700ms") || time.Since(start) > 5*time.Second {
		t.Fatalf("wait timeout: exit %d %q", r.code, r.stderr)
	}

	r = m.run(ctx, "wait", "missing")
	if r.code != exitError || !strings.HasPrefix(r.stderr, "error: not_found") {
		t.Fatalf("wait missing: exit %d %q", r.code, r.stderr)
	}

	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(300*time.Millisecond, cancel)
	r = m.run(cctx, "wait", "slow")
	if r.code != exitInterrupted || r.stderr != "error: interrupted\n" {
		t.Fatalf("interrupted wait: exit %d %q", r.code, r.stderr)
	}
}

func TestWatchShowsEvents(t *testing.T) {
	m := newStubManager(t)
	ctx := deadline(t, 20*time.Second)
	m.put(api.Job{ID: "a", Type: "counter", State: api.StateRunning}, counterWorker("w0", 1, 10))
	m.put(api.Job{ID: "b", Type: "counter", State: api.StateRunning})
	// What happened before watch started comes first, from the history.
	m.emit(api.Event{Job: "a", Kind: api.EventState, State: api.StateRunning, Epoch: 1, Reason: "assigned", Time: time.Now()})

	var out, errb syncBuffer
	c := newCLI(strings.NewReader(""), &out, &errb, func(k string) string {
		return map[string]string{"DROVER_NATS_URL": m.url}[k]
	})
	done := make(chan int, 1)
	go func() { done <- c.run(ctx, []string{"watch", "a", "b"}) }()
	m.waitForGets(t, 2)

	m.emit(api.Event{Job: "a", Kind: api.EventWorkerOnline, Worker: "w0", Node: "worker-1", Epoch: 1, Time: time.Now()})
	natstest.Eventually(t, 10*time.Second, "the event to show", func() bool {
		return strings.Contains(out.String(), "a worker_online worker=w0 node=worker-1 epoch=1 seq=2")
	})
	m.set("a", func(j *api.Job) { j.State = api.StateFinished })
	m.set("b", func(j *api.Job) { j.State = api.StateFailed })
	if code := <-done; code != exitJobNotOK {
		t.Fatalf("watch exit %d, want %d\n%s%s", code, exitJobNotOK, out.String(), errb.String())
	}
	for _, w := range []string{"a  running    1/10  10%  (1 workers)", "\na finished", "\nb failed"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("watch output lacks %q:\n%s", w, out.String())
		}
	}
	// Each event once, history first.
	text := out.String()
	if strings.Count(text, "seq=1") != 1 || strings.Count(text, "seq=2") != 1 ||
		strings.Index(text, "a state running") > strings.Index(text, "a worker_online") {
		t.Errorf("events shown out of order or twice:\n%s", text)
	}
}

func TestWatchJSONStream(t *testing.T) {
	m := newStubManager(t)
	ctx := deadline(t, 20*time.Second)
	m.put(api.Job{ID: "a", Type: "counter", State: api.StateRunning}, counterWorker("w0", 5, 10))
	var out syncBuffer
	c := newCLI(strings.NewReader(""), &out, &out, func(k string) string {
		return map[string]string{"DROVER_NATS_URL": m.url}[k]
	})
	done := make(chan int, 1)
	go func() { done <- c.run(ctx, []string{"--json", "watch", "a"}) }()
	m.waitForGets(t, 2)
	m.emit(api.Event{Job: "a", Kind: api.EventState, State: api.StateFinished})
	natstest.Eventually(t, 10*time.Second, "the event", func() bool { return strings.Contains(out.String(), `{"event":`) })
	m.set("a", func(j *api.Job) { j.State = api.StateFinished })
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	// Every line before the final job is one JSON object.
	text := out.String()
	final := strings.Index(text, "{\n")
	var kinds []string
	for _, l := range strings.Split(strings.TrimSpace(text[:final]), "\n") {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(l), &obj); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		for k := range obj {
			kinds = append(kinds, k)
		}
	}
	var j api.Job
	if err := json.Unmarshal([]byte(text[final:]), &j); err != nil || j.State != api.StateFinished {
		t.Fatalf("final job %q: %v", text[final:], err)
	}
	if s := strings.Join(kinds, ","); !strings.Contains(s, "progress") || !strings.Contains(s, "event") {
		t.Fatalf("stream kinds %s", s)
	}
}

func TestSubmitDurable(t *testing.T) {
	m := newStubManager(t)
	ctx := deadline(t, 20*time.Second)
	js, err := jetstream.New(m.nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: m.space.RequestsStream(), Subjects: []string{m.space.JobRequests()}})
	if err != nil {
		t.Fatal(err)
	}
	r := m.run(ctx, "submit", "--durable", "--id", "d1", "--type", "counter", "--config", `{"workers":1}`)
	if r.code != 0 || !strings.Contains(r.stdout, "published d1") {
		t.Fatalf("durable submit: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, m.space.JobRequests())
	if err != nil {
		t.Fatal(err)
	}
	var spec api.Spec
	if err := json.Unmarshal(msg.Data, &spec); err != nil || spec.ID != "d1" || msg.Header.Get(jetstream.MsgIDHeader) != "d1" {
		t.Fatalf("published %s %v (msg id %q)", msg.Data, err, msg.Header.Get(jetstream.MsgIDHeader))
	}

	// --wait keeps waiting while the request is not yet accepted.
	done := make(chan result, 1)
	go func() { done <- m.run(ctx, "submit", "--durable", "--id", "d2", "--type", "counter", "--wait") }()
	m.waitForGets(t, 2)
	m.put(api.Job{ID: "d2", Type: "counter", State: api.StateFinished})
	if r := <-done; r.code != 0 || !strings.Contains(r.stdout, "d2 finished") {
		t.Fatalf("durable --wait: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
}

// TestWaitAndFollowThroughABurstOfEvents: the thousands of events of a large
// job's start (a worker_online each) only wake wait and events --follow,
// which read by sequence: no backlog for the connection to drop as a slow
// consumer (a warning on stderr), and every event is printed once.
func TestWaitAndFollowThroughABurstOfEvents(t *testing.T) {
	const burst = 5000
	m := newStubManager(t)
	ctx := deadline(t, 60*time.Second)
	for _, args := range [][]string{{"wait", "big1"}, {"events", "--follow", "big2"}} {
		id := args[len(args)-1]
		t.Run(args[0], func(t *testing.T) {
			m.put(api.Job{ID: id, Type: "counter", State: api.StateRunning})
			done := make(chan result, 1)
			go func() { done <- m.run(ctx, args...) }()
			m.waitForGets(t, 2)
			for i := range burst {
				m.emit(api.Event{Job: id, Kind: api.EventWorkerOnline, Worker: fmt.Sprintf("w%d", i), WorkerEpoch: 1, Epoch: 1, Time: time.Now()})
			}
			m.set(id, func(j *api.Job) { j.State = api.StateFinished })
			m.emit(api.Event{Job: id, Kind: api.EventState, State: api.StateFinished, Epoch: 1, Time: time.Now()})
			r := <-done
			if r.code != exitOK || r.stderr != "" {
				t.Fatalf("%v: exit %d, stderr %q", args, r.code, r.stderr)
			}
			if args[0] == "events" {
				if n := strings.Count(r.stdout, "worker_online"); n != burst {
					t.Fatalf("events --follow printed %d worker_online events, want %d", n, burst)
				}
			}
		})
	}
}
