package main

import (
	"context"
	"os"
	"strings"
)

// r3 measures the documented deployment's storage: an embedded cluster of
// three servers on loopback (this process, the same cores) with every
// bucket and stream at replicas 3. Raw KV Create on an R3 bucket, as the
// raw phase measures it; submit, paired with raw R3 KV Create runs as the
// submit phase pairs it (leader at work only); end-to-end counter jobs as
// the e2e phase runs them. Every connection is given the three servers'
// URLs and picks one at random, as clients of a cluster do.
//
// It is shorter than the single-server phases (one paired submit run and a
// third of the end-to-end jobs in a full run) to keep the full run's
// length: each figure is still the fastest of its runs.
func (b *bench) r3() error {
	dir, err := os.MkdirTemp("", "drover-bench-r3-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srvs, stop, err := startCluster(dir, 3)
	defer stop()
	if err != nil {
		return err
	}
	urls := make([]string, len(srvs))
	for i, s := range srvs {
		urls[i] = s.ClientURL()
	}
	c := &bench{o: b.o, cluster: srvs, url: strings.Join(urls, ","), r: b.r, replicas: 3}
	logf("nats-server cluster of %d on %s, store %s", len(srvs), c.url, dir)

	nc, js, err := connectJS(c.url, "bench-r3-raw")
	if err != nil {
		return err
	}
	defer nc.Close()
	kv, err := c.rawBucket(js, "bench_r3_raw")
	if err != nil {
		return err
	}
	l := bestOf(b.o.runs, b.o.dur, b.o.conc, kvCreate(kv, "c"))
	if err := l.check("R3 KV create"); err != nil {
		return err
	}
	b.r.R3RawKVCreatePerS = round0(l.rate)
	logf("raw R3 KV create: %.0f/s, %s CPU each", l.rate, l.cpu)
	if err := js.DeleteKeyValue(context.Background(), "bench_r3_raw"); err != nil {
		return err
	}

	full, _, err := c.pairedSubmit("br3sub", 1, false)
	if err != nil {
		return err
	}
	b.r.R3SubmitJobsPerS, b.r.R3SubmitToRawCreateRatio = round0(full.rate), round3(full.ratio)
	logf("R3 submit: %.0f jobs/s, %s CPU each, %.0f %% of raw R3 KV Create (paired)", full.rate, full.cpu, 100*full.ratio)

	e, err := c.measureE2E("br3e2e", max(b.o.e2eJobs/3, 100), b.o.runs)
	if err != nil {
		return err
	}
	b.r.R3E2EJobsPerS, b.r.R3E2ELatencyP99Ms = round0(e.rate), ms(pct(e.lat, 0.99))
	logf("R3 end-to-end: %.0f jobs/s (%d jobs; submit→finished p99 %.1f ms), %s CPU each; Drover's processes sent %.1f messages and received %.1f per job",
		e.rate, len(e.lat), *b.r.R3E2ELatencyP99Ms, e.cpu, e.sent, e.received)
	return nil
}
