package jobmanager_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/pkg/api"
)

// listAll follows next through every page, checking each reply's size.
// A page is bounded by the test's own deadline, not by the client's
// interactive default: pages of 400 KB records under -race on a loaded
// machine take seconds, and this test is about their content.
func listAll(t *testing.T, nc *nats.Conn, subject string, req api.ListRequest) (ids []string, pages int) {
	t.Helper()
	ctx := untilTestDeadline(t)
	for {
		body, _ := json.Marshal(req)
		msg, err := nc.RequestWithContext(ctx, subject, body)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(msg.Data)) > nc.MaxPayload() {
			t.Fatalf("reply of %d bytes, over max_payload %d", len(msg.Data), nc.MaxPayload())
		}
		var rep api.Reply
		if err := json.Unmarshal(msg.Data, &rep); err != nil || rep.Error != nil {
			t.Fatalf("list: %v %v", rep.Error, err)
		}
		pages++
		for _, j := range rep.Jobs {
			ids = append(ids, j.ID)
		}
		if rep.Next == "" {
			return ids, pages
		}
		if rep.Next == req.After {
			t.Fatalf("cursor %q did not move", rep.Next)
		}
		req.After = rep.Next
		if pages > 1000 {
			t.Fatal("paging does not end")
		}
	}
}

// untilTestDeadline is a context that ends with the test binary's
// -timeout (the client's default bound when there is none).
func untilTestDeadline(t *testing.T) context.Context {
	d, ok := t.Deadline()
	if !ok {
		return context.Background()
	}
	ctx, cancel := context.WithDeadline(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestListPageIsCutBelowThePayloadLimit: jobs of 400 KB each (their config)
// can not all go in one reply; the page is cut, next is set, and paging
// still lists every job once.
func TestListPageIsCutBelowThePayloadLimit(t *testing.T) {
	sys := startSystem(t, 0, 0)
	ctx := untilTestDeadline(t) // 2 MB of submits and pages: seconds under -race on a loaded machine
	prefix := strings.Repeat("a", 400<<10)
	for i := range 5 {
		cfg, _ := json.Marshal(map[string]string{"bucket": "in", "prefix": prefix})
		if _, err := sys.Client.Submit(ctx, api.Spec{ID: fmt.Sprintf("big%d", i), Type: "wordcount", Config: cfg}); err != nil {
			t.Fatal(err)
		}
	}
	nc, _ := natstest.Connect(t, sys.Server)
	ids, pages := listAll(t, nc, sys.Client.Space().APIList(), api.ListRequest{Limit: 10})
	ids = slices.Compact(slices.Sorted(slices.Values(ids))) // a job that changed meanwhile may show twice
	if strings.Join(ids, ",") != "big0,big1,big2,big3,big4" || pages < 3 {
		t.Fatalf("%d pages listed %v", pages, ids)
	}
}

// TestListReadsOnlyAPage: one page of two jobs out of 60 costs a handful
// of reads of the jobs bucket, not 60; a filter that skips everything
// reads a bounded number and answers an empty page with next.
func TestListReadsOnlyAPage(t *testing.T) {
	sys := startSystem(t, 0, 0)
	ctx := context.Background()
	const n = 150
	for i := range n {
		if _, err := sys.Client.Submit(ctx, api.Spec{ID: fmt.Sprintf("r%03d", i), Type: "counter"}); err != nil {
			t.Fatal(err)
		}
	}
	// A plain subscriber sees every message read the service asks of the
	// bucket's stream.
	nc, _ := natstest.Connect(t, sys.Server)
	// A channel subscription: the connection's reader puts each message in
	// the channel itself, so once a flush returns every read the service
	// made before its reply is in it (a callback may still be pending then,
	// and its count land in the next call's).
	msgs := make(chan *nats.Msg, 4096)
	sub, err := nc.ChanSubscribe("$JS.API.STREAM.MSG.GET.KV_"+sys.Client.Space().JobsBucket(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// reads counts the reads that came since the last call; list's are
	// the ones that ask for the next record (the leader's own reads of
	// one job ask for its last).
	reads := func() int {
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			select {
			case m := <-msgs:
				if strings.Contains(string(m.Data), "next_by_subj") {
					n++
				}
			default:
				return n
			}
		}
	}
	count := func(req api.ListRequest) ([]api.Job, string, int) {
		t.Helper()
		reads()
		jobs, next, err := sys.Client.List(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return jobs, next, reads()
	}
	jobs, next, r := count(api.ListRequest{Limit: 2})
	if len(jobs) != 2 || next == "" || r > 3 {
		t.Fatalf("limit 2: %d jobs, next %q, %d reads", len(jobs), next, r)
	}
	jobs, next, r = count(api.ListRequest{Limit: 1, State: api.StateFinished})
	if len(jobs) != 0 || next == "" || r > 102 {
		t.Fatalf("filter matching nothing: %d jobs, next %q, %d reads", len(jobs), next, r)
	}
	ids, _ := listAll(t, nc, sys.Client.Space().APIList(), api.ListRequest{Limit: 1, State: api.StateFinished})
	if len(ids) != 0 {
		t.Fatalf("finished jobs listed: %v", ids)
	}
	if _, _, err := sys.Client.List(ctx, api.ListRequest{After: "p3"}); api.ErrorCode(err) != api.CodeInvalidArgument {
		t.Fatalf("after that is no cursor: %v", err)
	}
}

// TestListLeavesDetailOutUnlessAsked: a finished counter job has a detail;
// list shows it only with detail: true, get always.
func TestListLeavesDetailOutUnlessAsked(t *testing.T) {
	sys := startSystem(t, 1, 1)
	ctx := context.Background()
	j, err := sys.Client.Submit(ctx, api.Spec{Type: "counter", Config: json.RawMessage(`{"workers":1,"target":3,"interval_ms":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	done, err := sys.WaitJob(j.ID, sys.Timing.MasterTimeout*30)
	if err != nil || len(done.Detail) == 0 {
		t.Fatalf("job %+v: %v", done, err)
	}
	jobs, _, err := sys.Client.List(ctx, api.ListRequest{})
	if err != nil || len(jobs) != 1 || len(jobs[0].Detail) != 0 {
		t.Fatalf("default list: %+v %v", jobs, err)
	}
	jobs, _, err = sys.Client.List(ctx, api.ListRequest{Detail: true})
	if err != nil || len(jobs) != 1 || string(jobs[0].Detail) != string(done.Detail) {
		t.Fatalf("list with detail: %+v %v", jobs, err)
	}
}
