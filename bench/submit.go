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
// the raw KV Create baseline. The deployment has a job manager and no
// job-master node: what is measured is the API and the store, with the
// leader marking the jobs pending as it would with no free capacity.
func (b *bench) submit() error {
	d, err := b.deploy("bsub", 0, 0)
	if err != nil {
		return err
	}
	defer d.close()
	ctx := context.Background()
	l := closedLoop(b.o.dur, b.o.conc, func(g, i int) error {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := d.client.Submit(cctx, counterSpec(fmt.Sprintf("s%d-%d", g, i)))
		return err
	})
	if err := l.check("submit"); err != nil {
		return err
	}
	b.r.SubmitJobsPerS, b.r.SubmitCPUUs = round0(l.rate), us(l.cpu)
	logf("submit: %.0f jobs/s (%d callers), %s CPU each", l.rate, b.o.conc, l.cpu)
	return nil
}
