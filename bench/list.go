package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drover-run/drover/pkg/api"
)

// list measures the latency of the list API with listJobs jobs stored:
// the first page (default limit), a page of one, a filter that matches
// nothing (one page reads its bounded budget) and a walk through every
// page. The lease is held elsewhere, so the jobs stay as submitted and
// nothing else loads the store.
func (b *bench) list() error {
	d, err := b.deploy("blist", 0, 0, true)
	if err != nil {
		return err
	}
	defer d.close()
	ctx := context.Background()
	n := b.o.listJobs
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, b.o.conc)
	t0 := time.Now()
	for range b.o.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := d.client.Submit(cctx, counterSpec(fmt.Sprintf("l%06d", i)))
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("store %d jobs: %w", n, err)
	}
	logf("list: %d jobs stored in %s", n, time.Since(t0).Round(time.Millisecond))

	const calls = 50
	measure := func(req api.ListRequest) ([]time.Duration, error) {
		lat := make([]time.Duration, 0, calls)
		for range calls {
			s := time.Now()
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, _, err := d.client.List(cctx, req)
			cancel()
			if err != nil {
				return nil, err
			}
			lat = append(lat, time.Since(s))
		}
		return lat, nil
	}
	page, err := measure(api.ListRequest{})
	if err != nil {
		return err
	}
	one, err := measure(api.ListRequest{Limit: 1})
	if err != nil {
		return err
	}
	none, err := measure(api.ListRequest{State: api.StateFinished})
	if err != nil {
		return err
	}
	walk0, pages, seen := time.Now(), 0, 0
	req := api.ListRequest{Limit: 1000}
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		jobs, nxt, err := d.client.List(cctx, req)
		cancel()
		if err != nil {
			return err
		}
		pages, seen = pages+1, seen+len(jobs)
		if nxt == "" {
			break
		}
		req.After = nxt
	}
	walk := time.Since(walk0)
	if seen < n {
		return fmt.Errorf("walk listed %d of %d jobs", seen, n)
	}
	b.r.ListJobs = n
	b.r.ListPageP50Ms, b.r.ListPageP99Ms = ms(pct(page, 0.5)), ms(pct(page, 0.99))
	b.r.ListOneP50Ms, b.r.ListNoneP50Ms = ms(pct(one, 0.5)), ms(pct(none, 0.5))
	b.r.ListWalkMs = ms(walk)
	logf("list at %d jobs: page of 100 p50 %.2f ms p99 %.2f ms; limit 1 p50 %.2f ms; filter matching nothing p50 %.2f ms; every page (%d of 1000) %.0f ms",
		n, *b.r.ListPageP50Ms, *b.r.ListPageP99Ms, *b.r.ListOneP50Ms, *b.r.ListNoneP50Ms, pages, *b.r.ListWalkMs)
	return nil
}
