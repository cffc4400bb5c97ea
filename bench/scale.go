package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/drover-run/drover/jobs/benchjobs"
	"github.com/drover-run/drover/pkg/api"
)

// scale places one fanout job's workers (10,000 by default) across the
// worker nodes and measures placements per second until all are online;
// then, with every worker live at the default 1 s heartbeat, the CPU used
// by the job-master node and the worker nodes (separate processes, read
// from /proc), the NATS messages per second and the memory per worker.
func (b *bench) scale() error {
	const prefix = "bscale"
	n, nodes := b.o.workers, b.o.workerNodes
	d, err := b.deploy(prefix, 0, 0, false)
	if err != nil {
		return err
	}
	defer d.close()

	var profs func(name string) []string
	if b.o.profile {
		profs = func(name string) []string {
			return []string{b.profPath("placement_" + name), b.profPath("hb_" + name)}
		}
	}
	p, err := b.startNodes(d, prefix, nodes, profs)
	if err != nil {
		return err
	}
	defer func() { p.stop() }()
	master, workers := p.master, p.workers
	profiled := []*child{master, workers[0]}
	toggleProfiles := func() {
		if b.o.profile {
			for _, c := range profiled {
				c.signal(syscall.SIGUSR1)
			}
		}
	}
	time.Sleep(time.Second)
	rssBefore, err := rssOf(workers)
	if err != nil {
		return err
	}
	masterBefore, err := readProc(master.pid())
	if err != nil {
		return err
	}

	tr, err := newTracker(d.client.Conn(), d.space)
	if err != nil {
		return err
	}
	defer tr.stop()
	toggleProfiles()
	placeSecs, err := b.place(d, tr, fanoutSpec("fanout0", benchjobs.Fanout, n), n, placeWithin)
	if err != nil {
		return err
	}
	toggleProfiles()
	firstSecs := placeSecs

	// Let the burst's garbage and first status writes settle, then watch
	// the steady state of heartbeats only.
	time.Sleep(3 * time.Second)
	offBefore := tr.offlineCount()
	snap0, err := b.snapshot(master, workers)
	if err != nil {
		return err
	}
	toggleProfiles()
	time.Sleep(b.o.hbWindow)
	toggleProfiles()
	snap1, err := b.snapshot(master, workers)
	if err != nil {
		return err
	}
	if lost := tr.offlineCount() - offBefore; lost > 0 {
		return fmt.Errorf("%d workers went offline during the heartbeat window", lost)
	}
	secs := snap1.at.Sub(snap0.at).Seconds()
	cores := func(t0, t1 uint64) *float64 { return coresOver(t0, t1, secs) }
	r := b.r
	r.HBWorkers = n
	r.HBWindowSeconds = round2(secs)
	r.HBMasterCores = cores(snap0.master.ticks, snap1.master.ticks)
	r.HBWorkerCores = cores(snap0.workers, snap1.workers)
	r.HBServerCores = cores(snap0.self, snap1.self)
	r.HBNatsMsgsPerS = round0(float64(snap1.msgs-snap0.msgs) / secs)
	rssAfter, err := rssOf(workers)
	if err != nil {
		return err
	}
	r.HBMemBytesPerWorker = perEach(rssBefore, rssAfter, n)
	r.HBMasterMemBytesPerWorker = perEach(masterBefore.rss, snap1.master.rss, n)
	logf("heartbeats of %d workers over %.1f s: job-master node %.3f cores, worker nodes %.3f cores, server+job manager %.3f cores, %.0f NATS msgs/s, %.0f B RSS per worker (workers), %.0f B (master)",
		n, secs, *r.HBMasterCores, *r.HBWorkerCores, *r.HBServerCores, *r.HBNatsMsgsPerS, *r.HBMemBytesPerWorker, *r.HBMasterMemBytesPerWorker)

	// More placements, the fastest kept: the first ran on fresh node
	// processes, for the memory figure; these run on nodes that placed
	// and stopped as many workers before.
	id := "fanout0"
	for r := 1; r < b.o.runs; r++ {
		if err := b.cancelFanout(d, tr, id); err != nil {
			return err
		}
		id = fmt.Sprintf("fanout%d", r)
		secs, err := b.place(d, tr, fanoutSpec(id, benchjobs.Fanout, n), n, placeWithin)
		if err != nil {
			return err
		}
		placeSecs = min(placeSecs, secs)
	}
	placements := float64(n) / placeSecs
	b.r.PlacementsPerS = &placements
	b.r.PlacementWorkers, b.r.PlacementWorkerNodes = n, nodes
	b.r.PlacementSeconds = round2(placeSecs)
	logf("placement: %d workers on %d nodes: %.0f placements/s (the fastest of %d)", n, nodes, placements, max(b.o.runs, 1))
	if err := b.cancelFanout(d, tr, id); err != nil {
		return err
	}

	// The fresh-node figure is, like every throughput figure, the fastest
	// of the runs: each further one on new node processes, started after
	// the previous ones ended (a graceful stop removes a node's presence).
	for r := 1; r < b.o.runs; r++ {
		p.stop()
		fresh, err := b.startNodes(d, prefix, nodes, nil)
		if err != nil {
			return err
		}
		p = fresh
		id := fmt.Sprintf("fresh%d", r)
		secs, err := b.place(d, tr, fanoutSpec(id, benchjobs.Fanout, n), n, placeWithin)
		if err != nil {
			return err
		}
		firstSecs = min(firstSecs, secs)
		if err := b.cancelFanout(d, tr, id); err != nil {
			return err
		}
	}
	b.r.PlacementsFirstPerS = round0(float64(n) / firstSecs)
	logf("placement on fresh node processes: %.0f placements/s (the fastest of %d)", *b.r.PlacementsFirstPerS, max(b.o.runs, 1))
	return nil
}

// placeWithin bounds a placement: a job whose workers are not all online
// by then has collapsed.
const placeWithin = 5 * time.Minute

func fanoutSpec(id, jobType string, n int) api.Spec {
	cfg, _ := json.Marshal(benchjobs.FanoutConfig{Workers: n})
	return api.Spec{ID: id, Type: jobType, Config: cfg}
}

// place submits a fanout job of n workers and returns the seconds from its
// master's assignment (the running event) to its n-th worker online.
func (b *bench) place(d *deployment, tr *tracker, spec api.Spec, n int, within time.Duration) (float64, error) {
	id := spec.ID
	allOnline := make(chan struct{})
	tr.setOnline(func(job string, jt *jobTimes) {
		if job == id && jt.onlines == n {
			close(allOnline)
		}
	})
	defer tr.setOnline(nil)
	jt := tr.expect(id)
	if _, err := d.client.Submit(context.Background(), spec); err != nil {
		return 0, err
	}
	if err := placed(tr, jt, allOnline, n, within); err != nil {
		return 0, err
	}
	tr.mu.Lock()
	secs := jt.lastOnline.Sub(jt.running).Seconds()
	fromSubmit := jt.lastOnline.Sub(jt.submit).Seconds()
	firstOnline := jt.online.Sub(jt.running)
	tr.mu.Unlock()
	logf("placement %s: %d workers in %.2f s after master assignment (%.2f s after submit; first online after %s): %.0f placements/s",
		id, n, secs, fromSubmit, firstOnline.Round(time.Millisecond), float64(n)/secs)
	return secs, nil
}

// stallAfter ends a placement in which no worker came online for so long.
const stallAfter = 30 * time.Second

// placed waits for allOnline, and fails early once the placement has
// collapsed: the job's master failed over (its node too busy to renew its
// presence), a worker went offline (its master or itself gave up on it),
// no new worker came online for stallAfter, or within passed.
func placed(tr *tracker, jt *jobTimes, allOnline <-chan struct{}, n int, within time.Duration) error {
	deadline := time.Now().Add(within)
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-allOnline:
			return nil
		case now := <-t.C:
			tr.mu.Lock()
			got, epoch, off, last := jt.onlines, jt.masterEpoch, jt.offlines, jt.lastOnline
			if last.IsZero() {
				last = jt.submit
			}
			tr.mu.Unlock()
			switch {
			case epoch > 1:
				return fmt.Errorf("the master failed over (epoch %d) with %d of %d workers online", epoch, got, n)
			case off > 0:
				return fmt.Errorf("%d workers went offline with %d of %d online", off, got, n)
			case now.Sub(last) > stallAfter:
				return fmt.Errorf("no worker came online for %s, %d of %d online", stallAfter, got, n)
			case now.After(deadline):
				return fmt.Errorf("only %d of %d workers online after %s", got, n, within)
			}
		}
	}
}

// cancelFanout cancels a fanout job and waits until the worker nodes run
// none of its workers.
func (b *bench) cancelFanout(d *deployment, tr *tracker, id string) error {
	ended := make(chan struct{}, 1)
	tr.setDone(func(job string, _ *jobTimes) {
		if job == id {
			ended <- struct{}{}
		}
	})
	defer tr.setDone(nil)
	if _, err := d.client.Cancel(context.Background(), id); err != nil {
		return fmt.Errorf("cancel %s: %w", id, err)
	}
	select {
	case <-ended:
	case <-time.After(60 * time.Second):
		return fmt.Errorf("%s did not end within 60 s of its cancel", id)
	}
	return poll(60*time.Second, "worker nodes to stop the canceled workers", func() bool {
		ns, err := d.client.Nodes(context.Background())
		if err != nil {
			return false
		}
		for _, n := range ns {
			if n.Kind == api.NodeWorker && n.Load > 0 {
				return false
			}
		}
		return true
	})
}

type snapshot struct {
	at      time.Time
	master  procStat
	workers uint64 // ticks of every worker node
	self    uint64 // ticks of this process: nats-server and the job manager
	msgs    int64  // messages in and out of the server
}

func (b *bench) snapshot(master *child, workers []*child) (snapshot, error) {
	s := snapshot{at: time.Now()}
	var err error
	if s.master, err = readProc(master.pid()); err != nil {
		return s, err
	}
	for _, w := range workers {
		p, err := readProc(w.pid())
		if err != nil {
			return s, err
		}
		s.workers += p.ticks
	}
	self, err := readProc(os.Getpid())
	if err != nil {
		return s, err
	}
	s.self = self.ticks
	v, err := b.srv.Varz(nil)
	if err != nil {
		return s, err
	}
	s.msgs = v.InMsgs + v.OutMsgs
	return s, nil
}

func rssOf(cs []*child) (uint64, error) {
	var sum uint64
	for _, c := range cs {
		p, err := readProc(c.pid())
		if err != nil {
			return 0, err
		}
		sum += p.rss
	}
	return sum, nil
}

// nodeProcs are a deployment's node processes: one job-master node and
// the worker nodes.
type nodeProcs struct {
	master  *child
	workers []*child
}

// startNodes starts one job-master node and workerNodes worker nodes as
// processes and waits until they are registered. profs, if not nil, gives
// the CPU profile paths of the job-master node and the first worker node.
func (b *bench) startNodes(d *deployment, prefix string, workerNodes int, profs func(name string) []string) (*nodeProcs, error) {
	if profs == nil {
		profs = func(string) []string { return nil }
	}
	p := &nodeProcs{}
	ok := false
	defer func() {
		if !ok {
			p.kill()
		}
	}()
	var err error
	if p.master, err = startChild("jobmaster", b.url, prefix, prefix+"-jobmaster-0", profs("jobmaster")); err != nil {
		return nil, err
	}
	for i := range workerNodes {
		var pp []string
		if i == 0 {
			pp = profs("worker")
		}
		w, err := startChild("worker", b.url, prefix, fmt.Sprintf("%s-worker-%d", prefix, i), pp)
		if err != nil {
			return nil, err
		}
		p.workers = append(p.workers, w)
	}
	if err := d.waitReady(1 + workerNodes); err != nil {
		return nil, err
	}
	ok = true
	return p, nil
}

// stop ends the worker nodes, then the job-master node, gracefully.
func (p *nodeProcs) stop() {
	for _, w := range p.workers {
		w.stop()
	}
	if p.master != nil {
		p.master.stop()
	}
}

// kill ends the job-master node, then the worker nodes, at once: their
// master gone first, no worker is re-created.
func (p *nodeProcs) kill() {
	if p.master != nil {
		p.master.kill()
	}
	for _, w := range p.workers {
		w.kill()
	}
}
