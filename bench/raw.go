package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// closedLoop runs op from conc goroutines for d and returns the completed
// operations per second; each goroutine waits for its op before the next,
// as a client waiting for an answer does.
func closedLoop(d time.Duration, conc int, op func(g, i int) error) (float64, int64, error) {
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for g := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				if err := op(g, i); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var err error
	if v := firstErr.Load(); v != nil {
		err = v.(error)
	}
	return float64(ok.Load()) / elapsed.Seconds(), failed.Load(), err
}

// raw measures what NATS itself allows on this machine: request/reply
// round trips and JetStream KV Create and CAS Update, with the same
// concurrency and value size as the submit phase.
func (b *bench) raw() error {
	srvConn, err := nats.Connect(b.url, nats.Name("bench-responder"))
	if err != nil {
		return err
	}
	defer srvConn.Close()
	nc, err := nats.Connect(b.url, nats.Name("bench-raw"))
	if err != nil {
		return err
	}
	defer nc.Close()

	payload := make([]byte, 256)
	sub, err := srvConn.Subscribe("bench.raw.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) })
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	sub.SetPendingLimits(-1, -1)
	_ = srvConn.Flush()
	rate, failed, err := closedLoop(b.o.dur, b.o.conc, func(int, int) error {
		_, err := nc.Request("bench.raw.echo", payload, 5*time.Second)
		return err
	})
	if err := check("request/reply", failed, err); err != nil {
		return err
	}
	b.r.RawReqPerS = round0(rate)
	logf("raw request/reply: %.0f/s (%d callers)", rate, b.o.conc)

	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: "bench_raw", History: 1, Storage: jetstream.FileStorage, Replicas: 1,
	})
	if err != nil {
		return err
	}
	rate, failed, err = closedLoop(b.o.dur, b.o.conc, func(g, i int) error {
		_, err := kv.Create(ctx, "c"+strconv.Itoa(g)+"_"+strconv.Itoa(i), payload)
		return err
	})
	if err := check("KV create", failed, err); err != nil {
		return err
	}
	b.r.RawKVCreatePerS = round0(rate)
	logf("raw KV create: %.0f/s", rate)

	revs := make([]uint64, b.o.conc)
	for g := range revs {
		if revs[g], err = kv.Create(ctx, "u"+strconv.Itoa(g), payload); err != nil {
			return err
		}
	}
	rate, failed, err = closedLoop(b.o.dur, b.o.conc, func(g, _ int) error {
		rev, err := kv.Update(ctx, "u"+strconv.Itoa(g), payload, revs[g])
		if err == nil {
			revs[g] = rev
		}
		return err
	})
	if err := check("KV update", failed, err); err != nil {
		return err
	}
	b.r.RawKVUpdatePerS = round0(rate)
	logf("raw KV CAS update: %.0f/s", rate)
	return js.DeleteKeyValue(ctx, "bench_raw")
}

func check(what string, failed int64, err error) error {
	if failed > 0 {
		return fmt.Errorf("%s: %d failed, first: %w", what, failed, err)
	}
	return nil
}
