package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/jobs/benchjobs"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/client"
	"github.com/drover-run/drover/pkg/topics"
)

// loadWithin bounds the placement of the scale100k and active10k phases
// and the scheduling of the live10k phase: past it the deployment has
// collapsed, which the phase reports (figures null, the counts beside)
// instead of failing the whole run.
const loadWithin = 3 * time.Minute

// settle lets a burst's garbage and first writes pass before a window.
const settle = 3 * time.Second

// scale100k is the scale phase at 100,000 workers of one fanout job on 8
// worker nodes (by default): placements/s on fresh node processes, then
// the job-master node's CPU with every worker at the 1 s heartbeat, the
// worker nodes' RSS per worker, and the workers lost or re-created.
func (b *bench) scale100k() error {
	f, err := b.fanoutLoad("bhuge", benchjobs.Fanout, b.o.hugeWorkers, b.o.hugeNodes)
	if err != nil {
		return err
	}
	b.r.Scale100k = f
	return nil
}

// active10k runs one job of 10,000 active workers (by default), each
// writing its status and a business KV key every second, and measures the
// job-master node's CPU (and the others') over a window, with the writes
// the state stream took in it against those asked for.
func (b *bench) active10k() error {
	f, err := b.fanoutLoad("bactive", benchjobs.Active, b.o.activeWorkers, b.o.workerNodes)
	if err != nil {
		return err
	}
	b.r.Active10k = f
	return nil
}

// fanoutLoad places one job of n workers of jobType on nodes worker nodes
// (processes, fresh) and measures it over the heartbeat window. The nodes
// are killed at the end: the deployment is thrown away.
func (b *bench) fanoutLoad(prefix, jobType string, n, nodes int) (*loadFigures, error) {
	d, err := b.deploy(prefix, 0, 0, false)
	if err != nil {
		return nil, err
	}
	defer d.close()
	p, err := b.startNodes(d, prefix, nodes, b.windowProfs(prefix))
	if err != nil {
		return nil, err
	}
	defer p.kill()
	time.Sleep(time.Second)
	rss0, err := rssOf(p.workers)
	if err != nil {
		return nil, err
	}
	master0, err := readProc(p.master.pid())
	if err != nil {
		return nil, err
	}
	tr, err := newTracker(d.client.Conn(), d.space)
	if err != nil {
		return nil, err
	}
	defer tr.stop()

	f := &loadFigures{Workers: n, WorkerNodes: nodes}
	id := prefix + "0"
	secs, err := b.place(d, tr, fanoutSpec(id, jobType, n), n, loadWithin)
	online := func() {
		tr.mu.Lock()
		f.Online, f.MasterEpoch = tr.jobs[id].onlines, tr.jobs[id].masterEpoch
		f.Offline, f.Recreated = tr.offlines, tr.recreated
		tr.mu.Unlock()
	}
	if err != nil {
		online()
		logf("%s: collapsed: %v (%d offline, %d re-created, master epoch %d)", prefix, err, f.Offline, f.Recreated, f.MasterEpoch)
		return f, nil
	}
	f.PlacementSeconds, f.PlacementsPerS = round2(secs), round0(float64(n)/secs)

	time.Sleep(settle)
	writes := stateWrites(d)
	w0, err := writes()
	if err != nil {
		return nil, err
	}
	// An active job's master reports the status updates it handled.
	var c0, c1 benchjobs.ActiveDetail
	active := jobType == benchjobs.Active
	if active {
		if c0, err = activeCount(d, id); err != nil {
			return nil, err
		}
	}
	s0, err := b.snapshot(p.master, p.workers)
	if err != nil {
		return nil, err
	}
	b.toggleProfiles(p.master, p.workers[0])
	time.Sleep(b.o.hbWindow)
	b.toggleProfiles(p.master, p.workers[0])
	s1, err := b.snapshot(p.master, p.workers)
	if err != nil {
		return nil, err
	}
	if active {
		if c1, err = activeCount(d, id); err != nil {
			return nil, err
		}
	}
	w1, err := writes()
	if err != nil {
		return nil, err
	}
	rss1, err := rssOf(p.workers)
	if err != nil {
		return nil, err
	}
	online()
	f.window(s0, s1, w1-w0)
	f.MemBytesPerWorker = perEach(rss0, rss1, n)
	f.MasterMemBytesPerWorker = perEach(master0.rss, s1.master.rss, n)
	if active {
		f.KeepUp = keepUp(f.StateWritesPerS, n, time.Second)
		if secs := c1.At.Sub(c0.At).Seconds(); secs > 0 {
			f.MasterStatusesPerS = round0(float64(c1.Statuses-c0.Statuses) / secs)
		}
		f.MasterKeepUp = masterKeepUp(f.MasterStatusesPerS, f.StateWritesPerS)
		logf("%s: the master handled %.0f status updates/s, %s of those written; the writes were %s of those asked",
			prefix, *f.MasterStatusesPerS, pctOf(f.MasterKeepUp), pctOf(f.KeepUp))
	}
	logf("%s: %d workers on %d nodes, %.0f placements/s; over %.1f s: job-master node %.3f cores, worker nodes %.3f, server+job manager %.3f; %.0f state writes/s; %.0f B RSS per worker; %d online, %d offline, %d re-created, master epoch %d",
		prefix, n, nodes, *f.PlacementsPerS, *f.WindowSeconds, *f.MasterCores, *f.WorkerCores, *f.ServerCores,
		*f.StateWritesPerS, *f.MemBytesPerWorker, f.Online, f.Offline, f.Recreated, f.MasterEpoch)
	return f, nil
}

// activeCount reads the count of status updates an Active job's master
// reports in its job detail, with the time it wrote it.
func activeCount(d *deployment, id string) (benchjobs.ActiveDetail, error) {
	var c benchjobs.ActiveDetail
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	j, err := d.client.Get(ctx, id)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(j.Detail, &c); err != nil {
		return c, fmt.Errorf("%s detail: %w", id, err)
	}
	return c, nil
}

// stateWrites reads the last sequence of a deployment's state stream
// (worker, master and business records): its writes so far.
func stateWrites(d *deployment) func() (uint64, error) {
	js, err := jetstream.New(d.client.Conn())
	return func() (uint64, error) {
		if err != nil {
			return 0, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, "KV_"+d.space.StateBucket())
		if err != nil {
			return 0, err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return 0, err
		}
		return info.State.LastSeq, nil
	}
}

// live10k submits 10,000 idle, long-lived jobs (by default: fanout jobs of
// no worker, a master each, on one job-master node) to a job manager that
// is a process of its own, and measures the leader's CPU over a window
// once every master is ready, and its RSS.
func (b *bench) live10k() error {
	const prefix = "blive"
	n := b.o.liveJobs
	d, jm, err := b.deployJobManager(prefix)
	if err != nil {
		return err
	}
	defer d.close()
	p, err := b.startNodes(d, prefix, 0, b.windowProfs(prefix))
	if err != nil {
		jm.kill()
		return err
	}
	// The leader first, so it does not fail the masters over.
	defer func() {
		jm.kill()
		p.kill()
	}()
	time.Sleep(time.Second)
	jm0, err := readProc(jm.pid())
	if err != nil {
		return err
	}
	master0, err := readProc(p.master.pid())
	if err != nil {
		return err
	}
	tr, err := newTracker(d.client.Conn(), d.space)
	if err != nil {
		return err
	}
	defer tr.stop()

	f := &liveFigures{Jobs: n}
	b.r.Live10k = f
	ready := func() int { return tr.count(func(jt *jobTimes) bool { return !jt.ready.IsZero() && jt.end.IsZero() }) }
	t0 := time.Now()
	if err := submitIdle(d.client, tr, n); err != nil {
		return err
	}
	progress := t0
	for f.Live = ready(); f.Live < n; f.Live = ready() {
		if time.Since(t0) > loadWithin {
			logf("live10k: collapsed: %d of %d masters ready after %s", f.Live, n, loadWithin)
			return nil
		}
		if time.Since(progress) > 10*time.Second {
			progress = time.Now()
			logf("live10k: %d of %d masters ready after %s", f.Live, n, time.Since(t0).Round(time.Second))
		}
		time.Sleep(200 * time.Millisecond)
	}
	f.ScheduleSeconds = round2(time.Since(t0).Seconds())
	logf("live10k: %d jobs submitted and every master ready in %.2f s", n, *f.ScheduleSeconds)

	time.Sleep(settle)
	s0, err := b.snapshot(p.master, nil)
	if err != nil {
		return err
	}
	l0, err := readProc(jm.pid())
	if err != nil {
		return err
	}
	b.toggleProfiles(p.master, jm)
	time.Sleep(b.o.hbWindow)
	b.toggleProfiles(p.master, jm)
	s1, err := b.snapshot(p.master, nil)
	if err != nil {
		return err
	}
	l1, err := readProc(jm.pid())
	if err != nil {
		return err
	}
	f.window(jm0, l0, l1, master0, s0, s1)
	f.Live = ready()
	f.Ended = tr.count(func(jt *jobTimes) bool { return !jt.end.IsZero() })
	logf("live10k: %d live jobs over %.1f s: leader %.3f cores, RSS %.0f B (%.0f B with no job, %.0f B per job); job-master node %.3f cores; server %.3f cores; %d ended",
		f.Live, *f.WindowSeconds, *f.LeaderCores, *f.LeaderRSS, *f.LeaderRSSNoJobs, *f.LeaderBytesPerJob, *f.MasterCores, *f.ServerCores, f.Ended)
	return nil
}

// submitIdle submits n fanout jobs of no worker, live0..live<n-1>, from a
// few callers at once.
func submitIdle(c *client.Client, tr *tracker, n int) error {
	const callers = 32
	ids := make(chan int)
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				spec := fanoutSpec(fmt.Sprintf("live%d", i), benchjobs.Fanout, 0)
				tr.expect(spec.ID)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := c.Submit(ctx, spec)
				cancel()
				if err != nil {
					errs <- fmt.Errorf("submit %s: %w", spec.ID, err)
					return
				}
			}
		}()
	}
	var err error
	for i := 0; i < n && err == nil; i++ {
		select {
		case ids <- i:
		case err = <-errs:
		}
	}
	close(ids)
	wg.Wait()
	if err == nil && len(errs) > 0 {
		err = <-errs
	}
	return err
}

// deployJobManager starts a deployment whose job manager is a process of
// its own, so its CPU and RSS are its alone; the caller starts the nodes.
func (b *bench) deployJobManager(prefix string) (*deployment, *child, error) {
	d := &deployment{url: b.url, replicas: 1, prefix: prefix, space: topics.MustNew(prefix), log: newLogger()}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	nc, err := nats.Connect(b.url, nats.Name(prefix+"-client"), nats.MaxReconnects(-1))
	if err != nil {
		d.close()
		return nil, nil, err
	}
	d.conns = append(d.conns, nc)
	d.client = client.New(nc, d.space)
	var profs []string
	if b.o.profile {
		profs = []string{b.profPath(prefix + "_jobmanager")}
	}
	jm, err := startChild("jobmanager", b.url, prefix, prefix+"-jm", profs)
	if err != nil {
		d.close()
		return nil, nil, err
	}
	// The nodes open the store the job manager creates: start them once
	// its API answers.
	err = poll(30*time.Second, "the job manager's API", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := d.client.Get(ctx, "bench-probe")
		return api.ErrorCode(err) == api.CodeNotFound
	})
	if err != nil {
		jm.kill()
		d.close()
		return nil, nil, err
	}
	return d, jm, nil
}

// windowProfs gives, with -profile, each node's CPU profile path of a
// phase's measurement window: bench/results/<prefix>_<node>.prof.
func (b *bench) windowProfs(prefix string) func(string) []string {
	if !b.o.profile {
		return nil
	}
	return func(name string) []string { return []string{b.profPath(prefix + "_" + name)} }
}

// toggleProfiles starts, or stops, the CPU profiles of cs (with -profile),
// and gives them a moment to act on the signal: a profile stopped just
// before its node is killed must have been written.
func (b *bench) toggleProfiles(cs ...*child) {
	if b.o.profile {
		for _, c := range cs {
			c.signal(syscall.SIGUSR1)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
