package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drover-run/drover/jobs/counter"
	"github.com/drover-run/drover/pkg/api"
)

// bigJobSizes are the counter jobs the bigjob phase tries, smallest first
// (counter.MaxWorkers is the largest a counter job may ask for).
var bigJobSizes = []int{1000, 5000, counter.MaxWorkers}

// bigJobTimeout bounds one job of the bigjob phase: one that does not
// finish by then has collapsed, the failure this phase looks for.
const bigJobTimeout = 5 * time.Minute

// bigJobRun is one job of the bigjob phase.
type bigJobRun struct {
	Workers int      `json:"workers"`
	State   string   `json:"state"`
	Seconds *float64 `json:"seconds"`
	// Recreated counts worker incarnations beyond the first that came
	// online: a re-created worker is one its master gave up on.
	Recreated int `json:"recreated"`
	MaxEpoch  int `json:"max_worker_epoch"`
}

// bigJobFile is bench/results/bigjob.json.
type bigJobFile struct {
	Date    string      `json:"date"`
	Command string      `json:"command"`
	Load    string      `json:"loadavg_start"`
	Runs    []bigJobRun `json:"runs"`
	// Largest is the largest job that finished with no worker re-created.
	Largest int `json:"largest_job_no_recreate_workers"`
}

// bigjob runs the topology of make run — a job manager, one job-master
// node and two worker nodes, the nodes as processes — and one counter job
// (target 1) at a time of each of bigJobSizes. The figure is the largest
// that finishes with no worker re-created: a master that reads its own
// overload as worker deaths re-creates workers, and the re-creations feed
// the overload. The figures go to bench/results/bigjob.json, quoted into
// the results file.
func (b *bench) bigjob() error {
	const prefix = "bbig"
	d, err := b.deploy(prefix, 0, 0, false)
	if err != nil {
		return err
	}
	defer d.close()
	nodes := []*child{}
	defer func() {
		for _, c := range nodes {
			c.stop()
		}
	}()
	for _, n := range []struct{ role, id string }{{"jobmaster", "jobmaster-1"}, {"worker", "worker-1"}, {"worker", "worker-2"}} {
		c, err := startChild(n.role, b.url, prefix, prefix+"-"+n.id, nil)
		if err != nil {
			return err
		}
		nodes = append(nodes, c)
	}
	if err := d.waitReady(len(nodes)); err != nil {
		return err
	}
	out := bigJobFile{Date: time.Now().UTC().Format(time.RFC3339), Command: command(), Load: loadavg()}
	for _, n := range bigJobSizes {
		run, err := b.bigJobRun(d, n)
		if err != nil {
			return err
		}
		out.Runs = append(out.Runs, run)
		if run.State == string(api.StateFinished) && run.Recreated == 0 {
			out.Largest = n
		}
	}
	buf, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	path := b.o.bigJobPath()
	if err := os.WriteFile(path, append(buf, '\n'), 0o644); err != nil {
		return err
	}
	b.r.readBigJob(path)
	return nil
}

// bigJobRun submits one counter job of n workers and waits for its end.
func (b *bench) bigJobRun(d *deployment, n int) (bigJobRun, error) {
	run := bigJobRun{Workers: n}
	cfg, err := json.Marshal(counter.Config{Workers: n, Target: 1})
	if err != nil {
		return run, err
	}
	// Re-creations are counted from the job's events (the workers API
	// answers in one message, too small for 10,000 workers): every
	// incarnation announces itself online, with its epoch.
	id := fmt.Sprintf("big%d", n)
	subj, err := d.space.JobEvents(id)
	if err != nil {
		return run, err
	}
	var mu sync.Mutex
	sub, err := d.client.Conn().Subscribe(subj, func(m *nats.Msg) {
		var ev api.Event
		if json.Unmarshal(m.Data, &ev) != nil || ev.Kind != api.EventWorkerOnline {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if ev.WorkerEpoch > 1 {
			run.Recreated++
		}
		run.MaxEpoch = max(run.MaxEpoch, int(ev.WorkerEpoch))
	})
	if err != nil {
		return run, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = sub.SetPendingLimits(-1, -1)
	if err := d.client.Conn().Flush(); err != nil {
		return run, err
	}
	ctx := context.Background()
	t0 := time.Now()
	job, err := d.client.Submit(ctx, api.Spec{ID: id, Type: counter.Name, Config: cfg})
	if err != nil {
		return run, err
	}
	var state api.State
	err = poll(bigJobTimeout, fmt.Sprintf("counter job of %d workers", n), func() bool {
		time.Sleep(200 * time.Millisecond)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		j, err := d.client.Get(cctx, job.ID)
		if err == nil {
			state = j.State
		}
		return err == nil && state.Terminal()
	})
	run.State = string(state)
	if err == nil {
		run.Seconds = round2(time.Since(t0).Seconds())
	} else {
		logf("bigjob: %v", err)
		if _, err := d.client.Cancel(ctx, job.ID); err != nil {
			logf("bigjob: cancel %s: %v", job.ID, err)
		}
	}
	_ = d.client.Conn().Flush()
	mu.Lock()
	defer mu.Unlock()
	secs := "—"
	if run.Seconds != nil {
		secs = fmt.Sprintf("%.1f s", *run.Seconds)
	}
	logf("bigjob: %d workers: %s in %s, %d re-created (highest worker epoch %d)", n, run.State, secs, run.Recreated, run.MaxEpoch)
	return run, nil
}

// readBigJob quotes the bigjob phase's file.
func (r *results) readBigJob(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	var f bigJobFile
	if err := json.Unmarshal(b, &f); err != nil {
		logf("%s: %v", filepath.Base(path), err)
		return
	}
	r.LargestJobNoRecreate = &f.Largest
	r.BigJob = b
}
