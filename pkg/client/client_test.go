package client_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/client"
	"github.com/drover-run/drover/pkg/topics"
)

// TestWaitThroughABurstOfEvents: Wait re-reads the job when it hears of an
// event, so the thousands of events of a large job's start are one wake-up
// or a few: no backlog the connection drops as a slow consumer (an
// asynchronous error to the caller's handler), and not a read per event.
func TestWaitThroughABurstOfEvents(t *testing.T) {
	const burst = 20000
	srv := natstest.RunServer(t)
	space := topics.MustNew("drover")
	stub, _ := natstest.Connect(t, srv)
	var finished atomic.Bool
	var gets atomic.Int64
	if _, err := stub.Subscribe(space.APIGet(), func(m *nats.Msg) {
		gets.Add(1)
		j := &api.Job{ID: "big", Type: "counter", State: api.StateRunning}
		if finished.Load() {
			j.State = api.StateFinished
		}
		b, _ := json.Marshal(api.Reply{Job: j})
		_ = m.Respond(b)
	}); err != nil {
		t.Fatal(err)
	}
	nc, _, asyncErrs := natstest.ConnectRecordingErrors(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	var seen atomic.Int64
	go func() {
		_, err := client.New(nc, space).Wait(ctx, "big", func(*api.Job) { seen.Add(1) })
		done <- err
	}()
	natstest.Eventually(t, 10*time.Second, "Wait to read the job", func() bool { return seen.Load() > 0 })
	subj, _ := space.JobEvents("big")
	ev, _ := json.Marshal(api.Event{Job: "big", Kind: api.EventWorkerOnline, Worker: "w", Epoch: 1, WorkerEpoch: 1})
	before := gets.Load()
	for range burst {
		if err := stub.Publish(subj, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := stub.Flush(); err != nil {
		t.Fatal(err)
	}
	finished.Store(true)
	if err := stub.Publish(subj, ev); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Wait: %v", err)
	}
	select {
	case err := <-asyncErrs:
		t.Fatalf("the connection reported %v during the burst", err)
	default:
	}
	// Each wake-up is one read; the burst may wake Wait a few times while it
	// reads, never once per event.
	if n := gets.Load() - before; n > burst/10 {
		t.Fatalf("Wait read the job %d times for %d events", n, burst)
	}
}
