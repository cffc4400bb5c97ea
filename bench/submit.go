package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/drover-run/drover/pkg/api"
)

// counterSpec is the trivially short job of the submit, end-to-end and
// scheduling phases: one worker counting to one.
func counterSpec(id string) api.Spec {
	return api.Spec{ID: id, Type: "counter", Config: json.RawMessage(`{"workers":1,"target":1,"interval_ms":0}`)}
}

// submit measures jobs accepted per second through the v1 API, each one
// durably stored before its answer, from as many concurrent callers as
// the raw KV Create baseline, twice: with the job manager's leader at work
// (no job-master node runs, so it marks every job pending, one more CAS
// write and event per job), and with the lease held elsewhere, which is
// the API path alone (a replica while another leads).
func (b *bench) submit() error {
	full, err := b.submitRun("bsub", false)
	if err != nil {
		return err
	}
	b.r.SubmitJobsPerS, b.r.SubmitCPUUs = round0(full.rate), us(full.cpu)
	logf("submit: %.0f jobs/s (%d callers), %s CPU each", full.rate, b.o.conc, full.cpu)
	api, err := b.submitRun("bsubapi", true)
	if err != nil {
		return err
	}
	b.r.SubmitAPIOnlyJobsPerS, b.r.SubmitAPIOnlyCPUUs = round0(api.rate), us(api.cpu)
	logf("submit, API only (lease held elsewhere): %.0f jobs/s, %s CPU each", api.rate, api.cpu)
	return nil
}

// submitRun keeps the fastest of the runs, each on a fresh deployment (its
// own namespace), so that no run pays for the jobs an earlier one left.
func (b *bench) submitRun(prefix string, holdLease bool) (loop, error) {
	var best loop
	for r := range max(b.o.runs, 1) {
		l, err := b.submitOnce(fmt.Sprintf("%s%d", prefix, r), holdLease)
		if err != nil {
			return l, err
		}
		logf("submit run %d (%s): %.0f jobs/s, %s CPU each", r+1, prefix, l.rate, l.cpu)
		if l.rate > best.rate {
			best = l
		}
	}
	return best, nil
}

func (b *bench) submitOnce(prefix string, holdLease bool) (loop, error) {
	d, err := b.deploy(prefix, 0, 0, holdLease)
	if err != nil {
		return loop{}, err
	}
	defer d.close()
	ctx := context.Background()
	l := closedLoop(b.o.dur, b.o.conc, func(g, i int) error {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := d.client.Submit(cctx, counterSpec(fmt.Sprintf("s%d-%d", g, i)))
		return err
	})
	return l, l.check("submit")
}
