package main

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestFloorMakesAJobsWrites checks the floor phase makes what it claims:
// a counter job's writes by stream as TestWritesPerJob (jobs/counter)
// counts Drover's, and for a submit the record (stored pending) and its
// created and pending events, the record seen by the watcher (the leader).
func TestFloorMakesAJobsWrites(t *testing.T) {
	srv, err := startServer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	b := &bench{o: &options{}, url: srv.ClientURL()}
	nc, js, err := connectJS(b.url, "floor-test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx := context.Background()
	fl, cleanup, err := b.newFloor(ctx, nc, js)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	counts := func() map[string]uint64 {
		got := map[string]uint64{}
		for name, stream := range map[string]string{"jobs": "KV_bench_floor_jobs", "state": "KV_bench_floor_state", "events": "bench_floor_events"} {
			st, err := js.Stream(ctx, stream)
			if err != nil {
				t.Fatal(err)
			}
			got[name] = st.CachedInfo().State.LastSeq // writes, whatever the history keeps
		}
		return got
	}
	waitCounts := func(want map[string]uint64) {
		t.Helper()
		var got map[string]uint64
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if got = counts(); got["jobs"] == want["jobs"] && got["state"] == want["state"] && got["events"] == want["events"] {
				return
			}
		}
		t.Fatalf("stored messages by stream: %v, want %v", got, want)
	}

	if err := fl.job(0, 0); err != nil {
		t.Fatal(err)
	}
	waitCounts(map[string]uint64{"jobs": 3, "state": 6, "events": 6})
	if len(counterJobWrites) != 15 {
		t.Fatalf("%d writes per job, want 15", len(counterJobWrites))
	}

	stop, seen, err := fl.serveSubmit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if _, err := nc.Request("bench.floor.submit", []byte("s0"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	waitCounts(map[string]uint64{"jobs": 4, "state": 6, "events": 8})
	for deadline := time.Now().Add(10 * time.Second); seen.Load() != 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the watcher took %d records, want the submitted one", seen.Load())
		}
	}
}

// TestMsgCountsAreTheDeployments checks the end-to-end phase's message
// counts: what the server received from and delivered to the deployment's
// connections, not its client's and not another deployment's.
func TestMsgCountsAreTheDeployments(t *testing.T) {
	srv, err := startServer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	b := &bench{o: &options{}, srv: srv, url: srv.ClientURL()}
	d := &deployment{prefix: "bm"}
	conn := func(name string) *nats.Conn {
		nc, err := nats.Connect(b.url, nats.Name(name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	manager, node, client, other := conn("bm-jobmanager"), conn("bm-worker-0"), conn("bm-client"), conn("bmx-jobmanager")
	got := make(chan struct{}, 100)
	if _, err := node.Subscribe("x", func(*nats.Msg) { got <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if err := node.Flush(); err != nil {
		t.Fatal(err)
	}
	sent0, received0, err := b.msgCounts(d)
	if err != nil {
		t.Fatal(err)
	}
	for nc, n := range map[*nats.Conn]int{manager: 3, client: 2, other: 4} {
		for range n {
			if err := nc.Publish("x", nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	for range 9 {
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("the subscriber did not get the 9 messages")
		}
	}
	sent, received, err := b.msgCounts(d)
	if err != nil {
		t.Fatal(err)
	}
	if sent-sent0 != 3 || received-received0 != 9 {
		t.Fatalf("the deployment sent %d and received %d, want 3 (its job manager's) and 9 (its node's)", sent-sent0, received-received0)
	}
}
