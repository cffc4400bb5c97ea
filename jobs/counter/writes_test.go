package counter_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-run/drover/internal/config"
	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/jobs/builtin"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/topics"
)

// TestWritesPerJob counts the JetStream writes a counter job with one
// worker and target 1 costs from submit to finished, per stream, and holds
// them to the budget that docs/architecture.md ("What a job writes") explains
// write by write: a change that adds a write fails here and has to say
// why in both places. The writes are counted as stream sequences, so a
// duplicate the stream drops (the created event published twice in a
// race) or a refused CAS does not count; what was published is logged.
func TestWritesPerJob(t *testing.T) {
	// Rows of the table in docs/architecture.md, by stream.
	want := map[string]uint64{"jobs": 3, "state": 6, "events": 6}

	sys := testsys.Start(t, builtin.Registry())
	// The default schedule: a worker that runs longer than a heartbeat
	// writes its record online on its own (docs/architecture.md), which
	// a loaded machine must not turn into a spurious extra write here.
	sys.Timing = config.DefaultTiming()
	mgr := sys.AddJobManager("mgr")
	sys.AddJobMaster("jm")
	sys.AddWorker("wk")
	sys.WaitReady(1, 1)
	sp := topics.MustNew(topics.DefaultPrefix)
	nc, js := natstest.Connect(t, sys.Server)
	streams := map[string]string{"jobs": "KV_" + sp.JobsBucket(), "state": "KV_" + sp.StateBucket(), "events": sp.EventsStream()}
	last := func() map[string]uint64 {
		seqs := map[string]uint64{}
		for name, stream := range streams {
			st, err := js.Stream(context.Background(), stream)
			if err != nil {
				t.Fatalf("stream %s: %v", stream, err)
			}
			seqs[name] = st.CachedInfo().State.LastSeq
		}
		return seqs
	}

	var mu sync.Mutex
	var seen []string
	for _, subj := range []string{"$KV." + sp.JobsBucket() + ".>", "$KV." + sp.StateBucket() + ".>", sp.JobEventsPattern()} {
		if _, err := nc.Subscribe(subj, func(m *nats.Msg) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, fmt.Sprintf("%s %.300s", m.Subject, m.Data))
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	before := last()
	const id = "budget"
	if _, err := sys.Client.Submit(context.Background(), api.Spec{ID: id, Type: "counter",
		Config: json.RawMessage(`{"workers":1,"target":1,"interval_ms":0}`)}); err != nil {
		t.Fatal(err)
	}
	j, err := sys.WaitJob(id, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != api.StateFinished {
		t.Fatalf("job ended %s: %+v", j.State, j.Error)
	}
	// What the writes left out must not be missed: the worker's record
	// ends with its final status, and every event a user sees is there.
	ws, err := sys.Client.Workers(context.Background(), id)
	if err != nil || len(ws) != 1 {
		t.Fatalf("workers: %v %v", ws, err)
	}
	if done, total, ok := api.StatusProgress(ws[0].Status); ws[0].State != "finished" || !ok || done != 1 || total != 1 {
		t.Errorf("worker record %s with status %s, want finished with done 1 of 1", ws[0].State, ws[0].Status)
	}
	// The job record says finished before the leader publishes the
	// finished event: wait for it (its absence fails below).
	const wantEvents = "state created, state running, master_ready, worker_online, worker_offline, state finished"
	var got string
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs, _, err := sys.Client.Events(context.Background(), api.EventsRequest{ID: id})
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, e := range evs {
			kinds = append(kinds, strings.TrimSuffix(e.Kind+" "+string(e.State), " "))
		}
		got = strings.Join(kinds, ", ")
		if sameSet(got, wantEvents) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !sameSet(got, wantEvents) {
		t.Errorf("events %s, want %s (in any order but the first and last)", got, wantEvents)
	}
	// The leader makes sure of the created event at most once per job: none
	// when the stream answers its replica's publish within the assignment's
	// wait (services/jobmanager's created-log tests), one otherwise (it
	// used to read twice).
	if n := opCount(t, mgr.Registry, "last_job_event"); n > 1 {
		t.Errorf("%d reads of the events stream for the created event, want at most 1", n)
	}
	// Every write the job causes is made by the time its processes have
	// stopped (the master's and the workers' off-loop writes included).
	sys.StopAll()
	after := last()

	mu.Lock()
	defer mu.Unlock()
	var diffs []string
	for name := range streams {
		if got := after[name] - before[name]; got != want[name] {
			diffs = append(diffs, fmt.Sprintf("%s: %d writes, want %d", name, got, want[name]))
		}
	}
	if diffs != nil {
		t.Errorf("%s; published:\n%s", strings.Join(diffs, "; "), strings.Join(seen, "\n"))
	}
}

// sameSet reports whether two comma-separated lists hold the same items,
// with the same first and last.
func sameSet(a, b string) bool {
	x, y := strings.Split(a, ", "), strings.Split(b, ", ")
	if len(x) != len(y) || x[0] != y[0] || x[len(x)-1] != y[len(y)-1] {
		return false
	}
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// opCount is how many KV operations op reg's process made.
func opCount(t *testing.T, reg prometheus.Gatherer, op string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "drover_kv_operation_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "op" && l.GetValue() == op {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}
