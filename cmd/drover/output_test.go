package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/drover-run/drover/pkg/api"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestAge(t *testing.T) {
	tests := []struct {
		ago  time.Duration
		want string
	}{
		{0, "0s"}, {-time.Second, "0s"}, {59 * time.Second, "59s"}, {90 * time.Second, "1m"},
		{3 * time.Hour, "3h"}, {47 * time.Hour, "47h"}, {72 * time.Hour, "3d"},
	}
	for _, tt := range tests {
		if got := age(now.Add(-tt.ago), now); got != tt.want {
			t.Errorf("age(%s) = %s, want %s", tt.ago, got, tt.want)
		}
	}
	if age(time.Time{}, now) != "-" {
		t.Error("zero time should show -")
	}
}

// lines splits output and collapses runs of spaces, so tests check
// columns without depending on exact padding.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		out = append(out, strings.Join(strings.Fields(l), " "))
	}
	return out
}

func TestPrintJobsTable(t *testing.T) {
	jobs := []api.Job{
		{ID: "j1", Type: "counter", State: api.StateRunning, Epoch: 2, Node: "jobmaster-1", Restarts: 1, CreatedAt: now.Add(-5 * time.Minute)},
		{ID: "long-job-id-0002", Type: "counter", State: api.StateCreated, CreatedAt: now.Add(-3 * time.Second)},
	}
	var b bytes.Buffer
	if err := printJobs(&b, jobs, now); err != nil {
		t.Fatal(err)
	}
	got := lines(b.String())
	want := []string{
		"ID TYPE STATE EPOCH NODE RESTARTS AGE",
		"j1 counter running 2 jobmaster-1 1 5m",
		"long-job-id-0002 counter created 0 - 0 3s",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Columns line up: every row's STATE starts at the same offset.
	rows := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	col := strings.Index(rows[0], "STATE")
	for _, r := range rows[1:] {
		if r[col-2:col] != "  " || r[col] == ' ' {
			t.Errorf("row %q not aligned on column %d", r, col)
		}
	}
}

func TestPrintJob(t *testing.T) {
	j := &api.Job{
		ID: "j1", Type: "counter", State: api.StateFailed, Epoch: 3, Restarts: 2,
		Config:    json.RawMessage(`{ "workers": 4 }`),
		Selectors: map[string]string{"zone": "b", "gpu": "1"},
		Error:     &api.Error{Code: api.CodeInternal, Message: "boom"},
		Detail:    json.RawMessage(`{"total": 7}`),
		CreatedAt: now.Add(-time.Hour), UpdatedAt: now,
	}
	var b bytes.Buffer
	if err := printJob(&b, j, now); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(lines(b.String()), "\n")
	for _, want := range []string{
		"ID: j1", "State: failed", "Epoch: 3", "Node: -", "Restarts: 2",
		"Selectors: gpu=1,zone=b", `Config: {"workers":4}`, "Error: internal: boom", `Detail: {"total":7}`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
}

func TestPrintNodesAndWorkers(t *testing.T) {
	var out bytes.Buffer
	c := &cli{stdout: &out}
	nodes := filterNodes([]api.Node{
		{ID: "worker-2", Kind: "worker", Capacity: 8, Load: 1, StartedAt: now.Add(-2 * time.Minute)},
		{ID: "jobmaster-1", Kind: "jobmaster", Capacity: 100, Load: 3, Labels: map[string]string{"zone": "a"}, Types: []string{"counter"}, HTTPAddr: "127.0.0.1:8081", StartedAt: now.Add(-time.Hour)},
		{ID: "worker-1", Kind: "worker", Capacity: 8, StartedAt: now},
	}, "")
	if err := printNodes(c, nodes, now); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"KIND ID LABELS CAPACITY LOAD TYPES HTTP AGE",
		"jobmaster jobmaster-1 zone=a 100 3 counter 127.0.0.1:8081 1h",
		"worker worker-1 - 8 0 - - 0s",
		"worker worker-2 - 8 1 - - 2m",
	}
	if got := lines(out.String()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("nodes:\n%s", strings.Join(got, "\n"))
	}
	if n := filterNodes(nodes, "worker"); len(n) != 2 {
		t.Fatalf("filter worker: %d nodes", len(n))
	}

	out.Reset()
	ws := []api.Worker{
		{ID: "w1", Type: "counter", Node: "worker-2", Epoch: 2, State: "running", Status: json.RawMessage(`{"done":50,"total":100}`), UpdatedAt: now},
		{ID: "w0", Type: "counter", Node: "worker-1", Epoch: 1, State: "offline", Reason: "timeout", UpdatedAt: now},
	}
	sortWorkers(ws)
	if err := printWorkers(c, ws, now); err != nil {
		t.Fatal(err)
	}
	want = []string{
		"ID TYPE NODE EPOCH STATE PROGRESS REASON UPDATED",
		"w0 counter worker-1 1 offline - timeout 0s",
		"w1 counter worker-2 2 running 50/100 50% - 0s",
		"total: 50/100 50%",
	}
	if got := lines(out.String()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("workers:\n%s", strings.Join(got, "\n"))
	}
}

func TestAggregateProgress(t *testing.T) {
	w := func(status string) api.Worker { return api.Worker{Status: json.RawMessage(status)} }
	tests := []struct {
		name    string
		ws      []api.Worker
		done    float64
		total   float64
		counted int
		ratio   string
	}{
		{"none", nil, 0, 0, 0, "-"},
		{"counter workers", []api.Worker{w(`{"done":10,"total":100}`), w(`{"done":100,"total":100}`)}, 110, 200, 2, "110/200  55%"},
		{"no status and other fields", []api.Worker{w(``), w(`{"phase":"x"}`), w(`{"done":3,"total":4,"phase":"y"}`)}, 3, 4, 1, "3/4  75%"},
		{"done without total", []api.Worker{w(`{"done":5}`), w(`{"done":1,"total":2}`)}, 1, 2, 1, "1/2  50%"},
		{"non-numeric", []api.Worker{w(`{"done":"5","total":10}`), w(`{"done":null,"total":1}`)}, 0, 0, 0, "-"},
		{"not an object", []api.Worker{w(`[1,2]`), w(`7`), w(`{bad`)}, 0, 0, 0, "-"},
		{"fractions and overshoot", []api.Worker{w(`{"done":1.5,"total":1}`)}, 1.5, 1, 1, "1.5/1 100%"},
		{"zero total", []api.Worker{w(`{"done":0,"total":0}`)}, 0, 0, 1, "-"},
		{"big numbers", []api.Worker{w(`{"done":1e6,"total":4000000}`)}, 1e6, 4e6, 1, "1000000/4000000  25%"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := aggregate(tt.ws)
			if p.Done != tt.done || p.Total != tt.total || p.Counted != tt.counted || p.Workers != len(tt.ws) {
				t.Fatalf("aggregate = %+v", p)
			}
			if got := p.ratio(); got != tt.ratio {
				t.Fatalf("ratio = %q, want %q", got, tt.ratio)
			}
		})
	}
}

func TestBar(t *testing.T) {
	tests := []struct {
		f     float64
		width int
		want  string
	}{
		{0, 10, "[----------]"}, {0.5, 10, "[#####-----]"}, {1, 10, "[##########]"},
		{2, 4, "[####]"}, {-1, 4, "[----]"}, {0.26, 4, "[#---]"}, {0.5, 0, ""},
	}
	for _, tt := range tests {
		if got := bar(tt.f, tt.width); got != tt.want {
			t.Errorf("bar(%v, %d) = %q, want %q", tt.f, tt.width, got, tt.want)
		}
	}
	p := progress{Done: 250, Total: 400, Workers: 4, Counted: 4}
	if got := progressLine("job1", api.StateRunning, p, 8); got != "job1  running    [#####---]  250/400  62%  (4 workers)" {
		t.Errorf("progressLine = %q", got)
	}
	if got := progressLine("job1", api.StateCreated, progress{}, 8); got != "job1  created  " {
		t.Errorf("progressLine without progress = %q", got)
	}
}

func TestLiveViewPlain(t *testing.T) {
	var b bytes.Buffer
	v := newLiveView(&b, false, 80)
	clock := now
	v.now = func() time.Time { return clock }
	v.update([]liveLine{{key: "a", state: "running", text: "a running 1/10"}})
	v.update([]liveLine{{key: "a", state: "running", text: "a running 1/10"}}) // unchanged
	clock = clock.Add(time.Second)
	v.update([]liveLine{{key: "a", state: "running", text: "a running 2/10"}}) // too soon
	v.above("event\n")
	clock = clock.Add(time.Second)
	v.update([]liveLine{{key: "a", state: "running", text: "a running 3/10"}})    // 2s later
	v.update([]liveLine{{key: "a", state: "finished", text: "a finished 10/10"}}) // state change
	want := "12:00:00 a running 1/10\nevent\n12:00:02 a running 3/10\n12:00:02 a finished 10/10\n"
	if b.String() != want {
		t.Fatalf("got\n%q\nwant\n%q", b.String(), want)
	}
}

func TestLiveViewTTY(t *testing.T) {
	var b bytes.Buffer
	v := newLiveView(&b, true, 12)
	v.update([]liveLine{{text: "a 1"}, {text: "b 1234567890123"}})
	if got := b.String(); got != "a 1\nb 123456789\n" {
		t.Fatalf("first draw %q", got)
	}
	b.Reset()
	v.above("ev\n")
	if got := b.String(); got != "\r\033[2A\033[Jev\na 1\nb 123456789\n" {
		t.Fatalf("event above %q", got)
	}
	b.Reset()
	v.clear()
	if got := b.String(); got != "\r\033[2A\033[J" {
		t.Fatalf("clear %q", got)
	}
}

func TestFormatEvent(t *testing.T) {
	ts := time.Date(2026, 3, 1, 12, 0, 1, 500e6, time.Local)
	tests := []struct {
		ev   api.Event
		want string
	}{
		{api.Event{Job: "j1", Kind: api.EventState, State: api.StateRunning, Epoch: 1, Node: "jobmaster-1", Time: ts},
			"12:00:01.500 j1 state running node=jobmaster-1 epoch=1"},
		{api.Event{Job: "j1", Kind: api.EventWorkerOffline, Worker: "w3", Node: "worker-2", Epoch: 2, Reason: "timeout", Time: ts},
			"12:00:01.500 j1 worker_offline worker=w3 node=worker-2 epoch=2 reason=timeout"},
		{api.Event{Job: "j1", Kind: api.EventState, State: api.StateFailed, Epoch: 4, Error: &api.Error{Code: api.CodeInternal, Message: "x"}, Time: ts},
			"12:00:01.500 j1 state failed epoch=4 error=internal: x"},
	}
	for _, tt := range tests {
		if got := formatEvent(tt.ev); got != tt.want {
			t.Errorf("formatEvent = %q\nwant          %q", got, tt.want)
		}
	}
}
