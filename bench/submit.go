package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
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
// (no job-master node runs, so every job is stored pending with its two
// events, and the leader takes each from its watch, finds no node and
// queues it), and with the lease held elsewhere, which is the API path
// alone (a replica while another leads).
func (b *bench) submit() error {
	full, api, err := b.pairedSubmit("bsub", b.o.runs, true)
	if err != nil {
		return err
	}
	b.r.SubmitJobsPerS, b.r.SubmitCPUUs = round0(full.rate), us(full.cpu)
	b.r.SubmitMsgsSentPerJob, b.r.SubmitMsgsReceivedPerJob = round1(full.sent), round1(full.received)
	b.r.SubmitAPIOnlyJobsPerS, b.r.SubmitAPIOnlyCPUUs = round0(api.rate), us(api.cpu)
	b.r.SubmitToRawCreateRatio, b.r.SubmitAPIOnlyRatio = round3(full.ratio), round3(api.ratio)
	logf("submit: %.0f jobs/s (%d callers), %s CPU each, %.0f %% of raw KV Create (median of paired runs), the job manager sending %.1f messages and receiving %.1f per job; API path alone: %.0f jobs/s, %s CPU each, %.0f %%",
		full.rate, b.o.conc, full.cpu, 100*full.ratio, full.sent, full.received, api.rate, api.cpu, 100*api.ratio)
	return nil
}

// paired is a submit measurement: the fastest run, and the median of the
// runs' ratios to raw KV Create.
type paired struct {
	loop
	ratio float64
}

// pairedSubmit measures submit in runs runs, with the leader at work and,
// if apiPath, with the lease held elsewhere (pairedRuns frames each run
// by raw KV Create runs).
func (b *bench) pairedSubmit(prefix string, runs int, apiPath bool) (full, api paired, err error) {
	names := []string{"submit"}
	if apiPath {
		names = append(names, "API path alone")
	}
	ps, err := b.pairedRuns(prefix, runs, names, func(r int) ([]loop, error) {
		f, err := b.submitOnce(fmt.Sprintf("%s%d", prefix, r), false)
		if err != nil || !apiPath {
			return []loop{f}, err
		}
		a, err := b.submitOnce(fmt.Sprintf("%sapi%d", prefix, r), true)
		return []loop{f, a}, err
	})
	if err != nil {
		return full, api, err
	}
	full = ps[0]
	if apiPath {
		api = ps[1]
	}
	return full, api, nil
}

// pairedRuns measures in runs runs, each framed by raw KV Create runs just
// before and just after it, so that its ratio compares figures taken
// under the same machine load (the mean of the two raw rates). measure
// returns one loop per name; each keeps its fastest run and the median of
// its runs' ratios to raw KV Create.
func (b *bench) pairedRuns(what string, runs int, names []string, measure func(r int) ([]loop, error)) ([]paired, error) {
	nc, js, err := connectJS(b.url, "bench-pair")
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	kv, err := b.rawBucket(js, "bench_pair")
	if err != nil {
		return nil, err
	}
	defer func() { _ = js.DeleteKeyValue(context.Background(), "bench_pair") }()
	rawCreate := func(tag string) (float64, error) {
		raw := closedLoop(b.o.dur, b.o.conc, kvCreate(kv, tag+"_"))
		return raw.rate, raw.check("paired KV create")
	}
	best := make([]paired, len(names))
	ratios := make([][]float64, len(names))
	for r := range max(runs, 1) {
		before, err := rawCreate(fmt.Sprintf("b%d", r))
		if err != nil {
			return nil, err
		}
		ls, err := measure(r)
		if err != nil {
			return nil, err
		}
		after, err := rawCreate(fmt.Sprintf("a%d", r))
		if err != nil {
			return nil, err
		}
		raw := (before + after) / 2
		line := fmt.Sprintf("%s run %d: raw KV create %.0f/s before, %.0f/s after", what, r+1, before, after)
		for i, l := range ls {
			line += fmt.Sprintf("; %s %.0f/s (%s CPU, %.1f %%)", names[i], l.rate, l.cpu, 100*l.rate/raw)
			ratios[i] = append(ratios[i], l.rate/raw)
			if l.rate > best[i].rate {
				best[i].loop = l
			}
		}
		logf("%s", line)
	}
	for i := range best {
		best[i].ratio = median(ratios[i])
	}
	return best, nil
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (b *bench) submitOnce(prefix string, holdLease bool) (loop, error) {
	d, err := b.deploy(prefix, 0, 0, holdLease)
	if err != nil {
		return loop{}, err
	}
	defer d.close()
	ctx := context.Background()
	// The API path's messages are not reported, and the bench's own lease
	// holder is a connection of the deployment: only the leader's run counts.
	var sent0, received0 uint64
	if !holdLease {
		if sent0, received0, err = b.msgCounts(d); err != nil {
			return loop{}, err
		}
	}
	l := closedLoop(b.o.dur, b.o.conc, func(g, i int) error {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := d.client.Submit(cctx, counterSpec(fmt.Sprintf("s%d-%d", g, i)))
		return err
	})
	if err := l.check("submit"); err != nil {
		return l, err
	}
	if holdLease {
		return l, nil
	}
	// The leader takes the last jobs from its watch after their answers:
	// count once the job manager's traffic has stopped.
	sent1, received1, err := b.settledMsgCounts(d)
	if err != nil {
		return l, err
	}
	if l.ops > 0 {
		l.sent, l.received = float64(sent1-sent0)/float64(l.ops), float64(received1-received0)/float64(l.ops)
	}
	return l, nil
}
