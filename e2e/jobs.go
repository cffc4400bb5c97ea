package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"
)

// Nodes returns the live nodes of kind.
func (c *Cluster) Nodes(kind string) []api.Node {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ns, err := c.Store.ListNodes(ctx, kind)
	if err != nil {
		return nil
	}
	return ns
}

// WaitNodes waits until exactly the given node ids of kind are present.
func (c *Cluster) WaitNodes(kind string, ids ...string) {
	c.t.Helper()
	want := append([]string(nil), ids...)
	sort.Strings(want)
	c.Eventually(30*time.Second, fmt.Sprintf("%s nodes %v", kind, want), func() bool {
		var got []string
		for _, n := range c.Nodes(kind) {
			got = append(got, n.ID)
		}
		return strings.Join(got, ",") == strings.Join(want, ",")
	})
}

// WaitLeader waits until one of the job managers leads and returns it.
func (c *Cluster) WaitLeader(within time.Duration, jms ...*Proc) *Proc {
	c.t.Helper()
	var leader *Proc
	c.Eventually(within, "a leading job manager", func() bool {
		for _, p := range jms {
			if p.Leading() {
				leader = p
				return true
			}
		}
		return false
	})
	return leader
}

// Submit submits a job through the API, retrying while no replica answers.
func (c *Cluster) Submit(spec api.Spec) *api.Job {
	c.t.Helper()
	j, err := c.TrySubmit(spec)
	if err != nil {
		c.t.Fatalf("submit %s: %v", spec.ID, err)
	}
	return j
}

// TrySubmit is Submit returning the error; it may run off the test's goroutine.
func (c *Cluster) TrySubmit(spec api.Spec) (*api.Job, error) {
	var j *api.Job
	var err error
	Poll(20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		j, err = c.Client.Submit(ctx, spec)
		return err == nil || api.ErrorCode(err) != api.CodeUnavailable
	})
	return j, err
}

// Beat submits a beat job (testjobs): a master and workers that write a
// beat to business KV every tick until canceled.
func (c *Cluster) Beat(id string, workers, intervalMS, burst int) *api.Job {
	c.t.Helper()
	cfg := fmt.Sprintf(`{"workers":%d,"interval_ms":%d,"burst":%d}`, workers, intervalMS, max(burst, 1))
	return c.Submit(api.Spec{ID: id, Type: "beat", Config: json.RawMessage(cfg)})
}

// Cancel cancels a job through the API.
func (c *Cluster) Cancel(id string) *api.Job {
	c.t.Helper()
	var j *api.Job
	var err error
	Poll(20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		j, err = c.Client.Cancel(ctx, id)
		return err == nil || api.ErrorCode(err) != api.CodeUnavailable
	})
	if err != nil {
		c.t.Fatalf("cancel %s: %v", id, err)
	}
	return j
}

// Counter submits a counter job.
func (c *Cluster) Counter(id string, workers, target, intervalMS int) *api.Job {
	c.t.Helper()
	cfg := fmt.Sprintf(`{"workers":%d,"target":%d,"interval_ms":%d}`, workers, target, intervalMS)
	return c.Submit(api.Spec{ID: id, Type: "counter", Config: json.RawMessage(cfg)})
}

// Job reads a job from the state store (no job manager needed).
func (c *Cluster) Job(id string) *api.Job {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	j, _, err := c.Store.GetJob(ctx, id)
	if err != nil {
		c.t.Fatalf("get job %s: %v", id, err)
	}
	return j
}

// WaitJob polls the job until cond holds.
func (c *Cluster) WaitJob(id string, within time.Duration, what string, cond func(*api.Job) bool) *api.Job {
	c.t.Helper()
	var j *api.Job
	c.Eventually(within, fmt.Sprintf("job %s %s", id, what), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var err error
		j, _, err = c.Store.GetJob(ctx, id)
		return err == nil && cond(j)
	})
	return j
}

// WaitTerminal waits until the job is terminal.
func (c *Cluster) WaitTerminal(id string, within time.Duration) *api.Job {
	c.t.Helper()
	return c.WaitJob(id, within, "terminal", func(j *api.Job) bool { return j.State.Terminal() })
}

// Workers reads a job's worker records.
func (c *Cluster) Workers(job string) []kvstate.WorkerRecord {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ws, err := c.Store.ListWorkers(ctx, job)
	if err != nil {
		return nil
	}
	out := make([]kvstate.WorkerRecord, 0, len(ws))
	for _, w := range ws {
		out = append(out, w.Record)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

// WaitWorkersOnline waits until n workers of the job are online.
func (c *Cluster) WaitWorkersOnline(job string, n int, within time.Duration) []kvstate.WorkerRecord {
	c.t.Helper()
	var ws []kvstate.WorkerRecord
	c.Eventually(within, fmt.Sprintf("%d workers of %s online", n, job), func() bool {
		ws = c.Workers(job)
		online := 0
		for _, w := range ws {
			if w.State == kvstate.WorkerOnline {
				online++
			}
		}
		return online == n
	})
	return ws
}

// WaitProgress waits until every worker of the job reported at least done
// steps (counter status).
func (c *Cluster) WaitProgress(job string, done int, within time.Duration) {
	c.t.Helper()
	c.Eventually(within, fmt.Sprintf("workers of %s past step %d", job, done), func() bool {
		ws := c.Workers(job)
		for _, w := range ws {
			var st struct {
				Done int `json:"done"`
			}
			if json.Unmarshal(w.Status, &st) != nil || st.Done < done {
				return false
			}
		}
		return len(ws) > 0
	})
}

// Master reads a job's master record.
func (c *Cluster) Master(job string) *kvstate.MasterRecord {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	m, _, err := c.Store.GetMaster(ctx, job)
	if err != nil {
		return nil
	}
	return m
}

// Events returns every event of a job so far, from the events stream.
func (c *Cluster) Events(job string) []api.Event {
	c.t.Helper()
	subj, err := c.Space.JobEvents(job)
	if err != nil {
		c.t.Fatal(err)
	}
	js, _ := jetstream.New(c.NC)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, c.Space.EventsStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subj}})
	if err != nil {
		c.t.Fatalf("events of %s: %v", job, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		c.t.Fatalf("events of %s: %v", job, err)
	}
	var out []api.Event
	for pending := info.NumPending; pending > 0; {
		batch, err := cons.Fetch(int(min(pending, 256)), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			c.t.Fatalf("events of %s: %v", job, err)
		}
		n := 0
		for m := range batch.Messages() {
			var ev api.Event
			if json.Unmarshal(m.Data(), &ev) == nil {
				out = append(out, ev)
			}
			n++
		}
		if n == 0 {
			break
		}
		pending -= uint64(n)
	}
	return out
}
