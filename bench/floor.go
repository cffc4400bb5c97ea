package main

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/pkg/kvstate"
)

// floor measures what raw NATS allows for the stream writes a job makes
// and nothing else: no JSON, no validation, no reads, no watch of master
// records, no node, only the writes with their acknowledgements, in the
// order a job makes them, on buckets and an events stream configured as
// Drover's. Each figure is the ceiling of the Drover figure beside it
// while a job keeps those writes, and is paired with raw KV Create runs
// just before and after it, as submit is.
//
// The end-to-end floor is a `counter` job of one worker's 15 writes
// (docs/architecture.md, What a job writes), with as many jobs in flight
// as the end-to-end phase. The submit floor is the submit phase with the
// leader at work reduced to its messages: a request answered after a KV
// Create of the record (stored pending, as no node can take the job) and
// its two events, created and pending, and a watcher of the bucket (the
// leader, which finds no node either and writes nothing).
// Every value is 256 bytes, raw KV Create's, where a job's records and
// events are larger, and the state writes are plain KV writes, where
// Drover's are fenced (an atomic batch checking the fence key's
// revision): the floor errs on Drover's side.
func (b *bench) floor() error {
	nc, js, err := connectJS(b.url, "bench-floor")
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx := context.Background()
	fl, cleanup, err := b.newFloor(ctx, nc, js)
	if err != nil {
		return err
	}
	defer cleanup()

	e2e, err := b.pairedLoop("e2e write floor", b.o.e2eWindow, fl.job)
	if err != nil {
		return err
	}
	b.r.E2EFloorJobsPerS, b.r.E2EFloorRatio = round0(e2e.rate), round3(e2e.ratio)
	logf("end-to-end write floor: %.0f jobs/s (%d in flight, %d writes each), %.1f %% of raw KV Create (paired)",
		e2e.rate, b.o.e2eWindow, len(counterJobWrites), 100*e2e.ratio)

	stop, _, err := fl.serveSubmit(ctx)
	if err != nil {
		return err
	}
	sub, err := b.pairedLoop("submit write floor", b.o.conc, func(g, i int) error {
		_, err := nc.Request("bench.floor.submit", []byte("s"+strconv.Itoa(g)+"_"+strconv.Itoa(i)), 10*time.Second)
		return err
	})
	stop()
	if err != nil {
		return err
	}
	b.r.SubmitFloorJobsPerS, b.r.SubmitFloorRatio = round0(sub.rate), round3(sub.ratio)
	logf("submit write floor: %.0f jobs/s (%d callers, 3 writes and a request each), %.1f %% of raw KV Create (paired)",
		sub.rate, b.o.conc, 100*sub.ratio)
	return nil
}

// newFloor creates the floor's buckets and events stream; cleanup
// deletes them.
func (b *bench) newFloor(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) (_ *floorWrites, cleanup func(), err error) {
	cleanup = func() {
		for _, name := range []string{"bench_floor_jobs", "bench_floor_state"} {
			_ = js.DeleteKeyValue(ctx, name)
		}
		_ = js.DeleteStream(ctx, "bench_floor_events")
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	jobs, err := b.rawBucket(js, "bench_floor_jobs")
	if err != nil {
		return nil, nil, err
	}
	state, err := b.rawBucket(js, "bench_floor_state")
	if err != nil {
		return nil, nil, err
	}
	// The events stream as kvstate creates Drover's, with its defaults.
	if _, err := js.CreateOrUpdateStream(ctx, kvstate.EventsStreamConfig("bench_floor_events",
		[]string{"bench.floor.ev.>"}, kvstate.Options{Replicas: b.replicas})); err != nil {
		return nil, nil, err
	}
	return &floorWrites{nc: nc, jobs: jobs, state: state, payload: make([]byte, 256)}, cleanup, nil
}

// pairedLoop is pairedRuns of one closed loop of op from conc callers.
func (b *bench) pairedLoop(what string, conc int, op func(g, i int) error) (paired, error) {
	ps, err := b.pairedRuns(what, b.o.runs, []string{what}, func(r int) ([]loop, error) {
		l := closedLoop(b.o.dur, conc, func(g, i int) error { return op(g, r<<24|i) })
		return []loop{l}, l.check(what)
	})
	if err != nil {
		return paired{}, err
	}
	return ps[0], nil
}

// floorWrite is one of a job's writes: a KV write of the jobs or the
// state bucket (a Create, a CAS Update of the key's last revision, or a
// Put of a business key), or an event (a plain publish into the events
// stream, as Drover publishes events, the created one with a message id).
type floorWrite struct {
	bucket string // "jobs", "state" or "" for an event
	op     string // "create", "update", "put"; "created" for the created event
	key    string // the record's kind: j, m, w, b
}

// counterJobWrites are a counter job of one worker's writes, in order.
var counterJobWrites = []floorWrite{
	{"jobs", "create", "j"}, {"", "created", ""}, // submit: record, created event
	{"state", "create", "m"}, {"jobs", "update", "j"}, {"", "", ""}, // leader: epoch 1, running, its event
	{"state", "update", "m"}, {"state", "create", "w"}, {"", "", ""}, {"", "", ""}, // master: running, worker, master_ready, worker_online
	{"state", "put", "b"}, {"state", "update", "w"}, // worker: its count, its end
	{"", "", ""}, {"state", "update", "m"}, // master: worker_offline, finished
	{"", "", ""}, {"jobs", "update", "j"}, // leader: its event, the record finished
}

// floorAcks is how many acknowledgements a job's writes in the floor
// receive: one per KV write (events are published without one).
func floorAcks() int {
	n := 0
	for _, w := range counterJobWrites {
		if w.bucket != "" {
			n++
		}
	}
	return n
}

type floorWrites struct {
	nc          *nats.Conn
	jobs, state jetstream.KeyValue
	payload     []byte
}

// job makes one job's writes in order, each KV write waiting for its
// acknowledgement as the job's own does.
func (f *floorWrites) job(g, i int) error {
	id := "f" + strconv.Itoa(g) + "_" + strconv.Itoa(i)
	ctx := context.Background()
	revs := map[string]uint64{}
	for _, w := range counterJobWrites {
		if w.bucket == "" {
			msgID := ""
			if w.op == "created" {
				msgID = "created"
			}
			if err := f.event(id, msgID); err != nil {
				return err
			}
			continue
		}
		kv, key := f.jobs, w.key+"."+id
		if w.bucket == "state" {
			kv = f.state
		}
		var rev uint64
		var err error
		switch w.op {
		case "create":
			rev, err = kv.Create(ctx, key, f.payload)
		case "update":
			rev, err = kv.Update(ctx, key, f.payload, revs[key])
		default:
			rev, err = kv.Put(ctx, key, f.payload)
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", w.op, key, err)
		}
		revs[key] = rev
	}
	return nil
}

// event publishes one event of job id, as Drover does: no acknowledgement
// awaited; msgID, if any, as the message id (a submit's events).
func (f *floorWrites) event(id, msgID string) error {
	m := &nats.Msg{Subject: "bench.floor.ev." + id, Data: f.payload}
	if msgID != "" {
		m.Header = nats.Header{jetstream.MsgIDHeader: []string{msgID + "." + id}}
	}
	return f.nc.PublishMsg(m)
}

// serveSubmit answers submit requests (a KV Create of the job's record,
// its created and pending events, then the answer) and, as the leader,
// takes every new record from a watch of the bucket, until stop; seen
// counts the records it took.
func (f *floorWrites) serveSubmit(ctx context.Context) (stop func(), seen *atomic.Int64, err error) {
	ctx, cancel := context.WithCancel(ctx)
	sub, err := f.nc.Subscribe("bench.floor.submit", func(m *nats.Msg) {
		go func() {
			id := string(m.Data)
			if _, err := f.jobs.Create(ctx, "j."+id, f.payload); err != nil {
				return // no answer: the caller's request fails the run
			}
			if f.event(id, "created") == nil && f.event(id, "pending") == nil {
				_ = m.Respond(nil)
			}
		}()
	})
	if err != nil {
		cancel()
		return nil, nil, err
	}
	sub.SetPendingLimits(-1, -1)
	w, err := f.jobs.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		cancel()
		_ = sub.Unsubscribe()
		return nil, nil, err
	}
	seen = &atomic.Int64{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range w.Updates() {
			if e != nil && e.Operation() == jetstream.KeyValuePut {
				seen.Add(1)
			}
		}
	}()
	return func() {
		_ = sub.Unsubscribe()
		_ = w.Stop()
		cancel()
		<-done
	}, seen, nil
}
