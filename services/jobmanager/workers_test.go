package jobmanager_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/jobs/builtin"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/client"
	"github.com/drover-run/drover/pkg/kvstate"
	"github.com/drover-run/drover/pkg/topics"
)

// workersAll follows next through every page of a job's workers, checking
// each reply's size and total.
func workersAll(t *testing.T, nc *nats.Conn, subject string, req api.WorkersRequest, total int) (ids []string, pages int) {
	t.Helper()
	for {
		body, _ := json.Marshal(req)
		msg, err := nc.Request(subject, body, client.DefaultTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(msg.Data)) > nc.MaxPayload() {
			t.Fatalf("reply of %d bytes, over max_payload %d", len(msg.Data), nc.MaxPayload())
		}
		var rep api.WorkersReply
		var e api.Reply
		if err := json.Unmarshal(msg.Data, &e); err != nil || e.Error != nil {
			t.Fatalf("workers: %v %v", e.Error, err)
		}
		_ = json.Unmarshal(msg.Data, &rep)
		if rep.Total != total {
			t.Fatalf("total %d, want %d", rep.Total, total)
		}
		pages++
		for _, w := range rep.Workers {
			if req.State != "" && w.State != req.State {
				t.Fatalf("worker %s in state %s listed for state %s", w.ID, w.State, req.State)
			}
			ids = append(ids, w.ID)
		}
		if rep.Next == "" {
			return ids, pages
		}
		if rep.Next <= req.After {
			t.Fatalf("cursor %q did not move past %q", rep.Next, req.After)
		}
		req.After = rep.Next
		if pages > 1000 {
			t.Fatal("paging does not end")
		}
	}
}

// TestWorkersArePagedBelowThePayloadLimit: a job of 2,500 worker records,
// some with a 300 KB status, is listed page by page: every worker exactly
// once in id order, each reply under max_payload, a page reads O(limit)
// records, a state filter lists just its workers, and bad requests are
// refused with invalid_argument (over NATS and HTTP).
func TestWorkersArePagedBelowThePayloadLimit(t *testing.T) {
	sys := testsys.Start(t, builtin.TestRegistry())
	addr := testsys.FreeAddr(t)
	sys.AddJobManagerHTTP("jm-a", addr)
	sys.WaitReady(0, 0)
	ctx := context.Background()
	if _, err := sys.Client.Submit(ctx, api.Spec{ID: "many", Type: "counter"}); err != nil {
		t.Fatal(err)
	}

	// Write the worker records as a master would.
	_, js := natstest.Connect(t, sys.Server)
	st, err := kvstate.Open(ctx, js, topics.MustNew(topics.DefaultPrefix), kvstate.Options{OpenOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	_, fence, err := st.AdvanceEpoch(ctx, "many", func(*kvstate.MasterRecord) {})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2500
	big, _ := json.Marshal(map[string]string{"pad": strings.Repeat("s", 300<<10)})
	var want []string
	failed := map[string]bool{}
	for i := range n {
		rec := &kvstate.WorkerRecord{ID: fmt.Sprintf("w%05d", i), Job: "many", Type: "counter", Epoch: 1, State: kvstate.WorkerOnline}
		if i%250 == 7 {
			rec.Status = big
		}
		if i%100 == 3 {
			rec.State = kvstate.WorkerFailed
			failed[rec.ID] = true
		}
		if _, err := st.PutWorkerAsMaster(ctx, fence, rec); err != nil {
			t.Fatal(err)
		}
		want = append(want, rec.ID)
	}

	nc, _ := natstest.Connect(t, sys.Server)
	subject := sys.Client.Space().APIWorkers()
	t0 := time.Now()
	ids, pages := workersAll(t, nc, subject, api.WorkersRequest{ID: "many", Limit: 1000}, n)
	if strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Fatalf("%d pages listed %d workers, want %d once each in id order", pages, len(ids), n)
	}
	t.Logf("%d workers in %d pages: %v", n, pages, time.Since(t0))
	if pages < 4 {
		t.Fatalf("%d pages: the 300 KB statuses should have cut pages of 1000", pages)
	}
	ids, _ = workersAll(t, nc, subject, api.WorkersRequest{ID: "many", State: "failed", Limit: 7}, n)
	if len(ids) != len(failed) {
		t.Fatalf("state filter listed %d workers, want %d", len(ids), len(failed))
	}

	// A page costs reads of its own records, not of all 2,500. A
	// channel subscription drained after a flush sees every read the
	// service asked of the state stream before the flush.
	msgs := make(chan *nats.Msg, 4096)
	stream := "KV_" + sys.Client.Space().StateBucket()
	sub, err := nc.ChanSubscribe("$JS.API.>", msgs)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	rep, err := sys.Client.WorkersPage(ctx, api.WorkersRequest{ID: "many", Limit: 5, After: "w01000"})
	if err != nil || len(rep.Workers) != 5 || rep.Workers[0].ID != "w01001" || rep.Next != "w01005" || rep.Total != n {
		t.Fatalf("page of 5 after w01000: %+v %v", rep, err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	reads := 0
	for more := true; more; {
		select {
		case m := <-msgs:
			if strings.Contains(m.Subject, "GET."+stream) || strings.Contains(m.Subject, "CONSUMER.CREATE."+stream) {
				reads++
			}
		default:
			more = false
		}
	}
	if reads < 5 || reads > 5+2 {
		t.Fatalf("a page of 5 made %d reads of the state bucket, want 5 (and a couple of the leader's)", reads)
	}
	all, err := sys.Client.Workers(ctx, "many")
	if err != nil || len(all) != n {
		t.Fatalf("client.Workers: %d workers, %v", len(all), err)
	}

	before, err := sys.Client.Get(ctx, "many")
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []api.WorkersRequest{
		{ID: "many", Limit: -1}, {ID: "many", Limit: 1001}, {ID: "many", After: "not.an.id"},
		{ID: "many", State: "bogus"}, {ID: "bad id"},
	} {
		if _, err := sys.Client.WorkersPage(ctx, req); api.ErrorCode(err) != api.CodeInvalidArgument {
			t.Errorf("%+v: %v, want invalid_argument", req, err)
		}
	}
	if _, err := sys.Client.WorkersPage(ctx, api.WorkersRequest{ID: "nojob"}); api.ErrorCode(err) != api.CodeNotFound {
		t.Errorf("workers of a missing job: %v, want not_found", err)
	}
	base := "http://" + addr + "/api/v1/jobs/many/workers"
	for _, q := range []string{"?limit=x", "?limit=0x", "?limit=1001", "?after=a.b", "?state=bogus"} {
		if a := do(t, "GET", base+q, ""); a.status != 400 || a.code() != api.CodeInvalidArgument {
			t.Errorf("GET %s: %d %s", q, a.status, a.body)
		}
	}
	a := do(t, "GET", base+"?limit=3&after=w00100&state=online", "")
	var page api.WorkersReply
	if err := json.Unmarshal(a.body, &page); a.status != 200 || err != nil || len(page.Workers) != 3 || page.Workers[0].ID != "w00101" || page.Next != "w00104" {
		t.Fatalf("GET ?limit=3&after=w00100&state=online: %d %s", a.status, a.body)
	}
	if got, err := sys.Client.Get(ctx, "many"); err != nil || got.State != before.State || !got.UpdatedAt.Equal(before.UpdatedAt) {
		t.Fatalf("the job changed: %+v %v", got, err)
	}
}
