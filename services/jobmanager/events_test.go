package jobmanager_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/jobs/builtin"
	"github.com/drover-run/drover/pkg/api"
)

// allEvents pages through a job's history with the given page size.
func allEvents(t *testing.T, sys *testsys.System, id string, limit int) ([]api.StreamEvent, uint64) {
	t.Helper()
	var out []api.StreamEvent
	since := uint64(0)
	for range 1000 {
		evs, next, err := sys.Client.Events(context.Background(), api.EventsRequest{ID: id, SinceSeq: since, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		if next < since {
			t.Fatalf("next %d went back from %d", next, since)
		}
		out = append(out, evs...)
		if len(evs) == 0 {
			return out, next
		}
		since = next
	}
	t.Fatal("history never ended")
	return nil, 0
}

// TestEventsHistoryReplaysAnEndedJob reads the events of a job that ended
// before the call, in pages of every size, and checks that they are the
// job's own, in stream order, with none missed or repeated.
func TestEventsHistoryReplaysAnEndedJob(t *testing.T) {
	sys := startSystem(t, 1, 1)
	ctx := context.Background()
	for _, id := range []string{"hist", "other"} {
		if _, err := sys.Client.Submit(ctx, api.Spec{ID: id, Type: "counter",
			Config: json.RawMessage(`{"workers":2,"target":5,"interval_ms":1}`)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"hist", "other"} {
		if j, err := sys.WaitJob(id, 30*time.Second); err != nil || j.State != api.StateFinished {
			t.Fatalf("job %s: %v %v", id, j, err)
		}
	}
	// The finished event is published after the job record is written.
	var full []api.StreamEvent
	var end uint64
	deadline := time.Now().Add(10 * time.Second)
	for {
		full, end = allEvents(t, sys, "hist", 0)
		if n := len(full); n > 0 && full[n-1].Kind == api.EventState && full[n-1].State == api.StateFinished {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no finished event in %+v", full)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if full[0].State != api.StateCreated || full[0].Reason != "submitted" {
		t.Fatalf("first event %+v, want created/submitted", full[0])
	}
	for i, ev := range full {
		if ev.Job != "hist" {
			t.Fatalf("event %d belongs to %s", i, ev.Job)
		}
		if i > 0 && ev.Seq <= full[i-1].Seq {
			t.Fatalf("event %d seq %d after %d", i, ev.Seq, full[i-1].Seq)
		}
	}
	if end <= full[len(full)-1].Seq {
		t.Fatalf("next %d does not move past the last event %d", end, full[len(full)-1].Seq)
	}
	for _, limit := range []int{1, 2, 3} {
		paged, _ := allEvents(t, sys, "hist", limit)
		if fmt.Sprint(seqs(paged)) != fmt.Sprint(seqs(full)) {
			t.Fatalf("pages of %d gave %v, want %v", limit, seqs(paged), seqs(full))
		}
	}
	// From a time: only what was stored at or after it.
	mid := full[len(full)/2]
	evs, _, err := sys.Client.Events(ctx, api.EventsRequest{ID: "hist", SinceTime: &mid.Time, Limit: 1000})
	if err != nil || len(evs) == 0 || evs[0].Seq > mid.Seq || evs[len(evs)-1].Seq != full[len(full)-1].Seq {
		t.Fatalf("since %v: %v %v", mid.Time, seqs(evs), err)
	}
	future := time.Now().Add(time.Hour)
	evs, next, err := sys.Client.Events(ctx, api.EventsRequest{ID: "hist", SinceTime: &future})
	if err != nil || len(evs) != 0 || next < end {
		t.Fatalf("since the future: %v next %d (end %d) %v", evs, next, end, err)
	}
	// A job with no events has an empty history (the array is present).
	raw, err := sys.Client.Conn().Request(sys.Client.Space().APIEvents(), []byte(`{"id":"never"}`), 5*time.Second)
	if err != nil || !strings.Contains(string(raw.Data), `"events":[]`) {
		t.Fatalf("no events: %s %v", raw.Data, err)
	}
}

func seqs(evs []api.StreamEvent) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}

// TestEventsHistoryRefusesBadRequests sends hostile and malformed requests.
func TestEventsHistoryRefusesBadRequests(t *testing.T) {
	sys := startSystem(t, 0, 0)
	subj := sys.Client.Space().APIEvents()
	for name, body := range map[string]string{
		"no id":         `{}`,
		"wildcard id":   `{"id":">"}`,
		"dotted id":     `{"id":"a.b"}`,
		"negative":      `{"id":"a","limit":-1}`,
		"over limit":    `{"id":"a","limit":1001}`,
		"both since":    `{"id":"a","since_seq":3,"since_time":"2026-01-01T00:00:00Z"}`,
		"bad time":      `{"id":"a","since_time":"yesterday"}`,
		"negative seq":  `{"id":"a","since_seq":-1}`,
		"unknown field": `{"id":"a","follow":true}`,
		"not json":      `{"id":`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := sys.Client.Call(context.Background(), subj, []byte(body))
			if api.ErrorCode(err) != api.CodeInvalidArgument {
				t.Fatalf("%s: %v, want invalid_argument", body, err)
			}
		})
	}
}

// TestEventsHistoryStaysUnderThePayloadLimit fills a job's history with
// events too large for one reply (as a buggy or hostile publisher on the
// events subject could) and checks that every reply fits and paging still
// moves forward through all of them.
func TestEventsHistoryStaysUnderThePayloadLimit(t *testing.T) {
	sys := startSystem(t, 0, 0)
	subj, _ := sys.Client.Space().JobEvents("big")
	detail := func(n int) json.RawMessage { return json.RawMessage(`{"pad":"` + strings.Repeat("x", n) + `"}`) }
	sizes := []int{200 << 10, 200 << 10, 200 << 10, 700 << 10, 10}
	for _, n := range sizes {
		b, _ := json.Marshal(api.Event{Job: "big", Kind: api.EventState, Detail: detail(n), Time: time.Now()})
		if err := sys.Client.Conn().Publish(subj, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := sys.Client.Conn().Publish(subj, []byte("not json")); err != nil {
		t.Fatal(err)
	}
	_ = sys.Client.Conn().Flush()
	var got []api.StreamEvent
	since := uint64(0)
	for range 20 {
		msg, err := sys.Client.Conn().Request(sys.Client.Space().APIEvents(),
			[]byte(fmt.Sprintf(`{"id":"big","since_seq":%d,"limit":1000}`, since)), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(msg.Data) >= api.MaxPayload {
			t.Fatalf("reply of %d bytes, limit %d", len(msg.Data), api.MaxPayload)
		}
		var rep api.EventsReply
		if err := json.Unmarshal(msg.Data, &rep); err != nil {
			t.Fatalf("%.200s: %v", msg.Data, err)
		}
		got = append(got, rep.Events...)
		if len(rep.Events) == 0 && len(got) >= len(sizes) {
			break
		}
		since = rep.Next
	}
	if len(got) != len(sizes) {
		t.Fatalf("got %d events, want %d", len(got), len(sizes))
	}
	for i, ev := range got {
		if wantCut := sizes[i] > api.MaxPayload; ev.Truncated != wantCut || (len(ev.Detail) == 0) != wantCut {
			t.Errorf("event %d of %d bytes: truncated %v, detail %d bytes", i, sizes[i], ev.Truncated, len(ev.Detail))
		}
	}
}

// TestEventsOverHTTP reads the history over the HTTP mirror.
func TestEventsOverHTTP(t *testing.T) {
	sys := testsys.Start(t, builtin.TestRegistry())
	addr := testsys.FreeAddr(t)
	sys.AddJobManagerHTTP("jm", addr)
	sys.WaitReady(0, 0)
	base := "http://" + addr + "/api/v1/jobs/"
	if _, err := sys.Client.Submit(context.Background(), api.Spec{ID: "h1", Type: "counter"}); err != nil {
		t.Fatal(err)
	}
	var rep api.EventsReply
	// until reads the history until cond holds for it.
	until := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			a := do(t, "GET", base+"h1/events", "")
			if a.status != 200 {
				t.Fatalf("events: %d %s", a.status, a.body)
			}
			rep = api.EventsReply{}
			if err := json.Unmarshal(a.body, &rep); err != nil {
				t.Fatal(err)
			}
			if cond() {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: events %s", what, a.body)
			}
		}
	}
	// created, then pending (no job-master node): both stored before mark.
	until("pending", func() bool { return len(rep.Events) == 2 && rep.Events[1].State == api.StatePending })
	mark := time.Now()
	if _, err := sys.Client.Cancel(context.Background(), "h1"); err != nil {
		t.Fatal(err)
	}
	until("canceled", func() bool { n := len(rep.Events); return n > 2 && rep.Events[n-1].State == api.StateCanceled })
	last := rep.Events[len(rep.Events)-1]
	a := do(t, "GET", base+"h1/events?limit=1&since="+fmt.Sprint(last.Seq), "")
	var one api.EventsReply
	if err := json.Unmarshal(a.body, &one); err != nil || a.status != 200 || len(one.Events) != 1 ||
		one.Events[0].State != api.StateCanceled || one.Next != last.Seq+1 {
		t.Fatalf("since seq: %d %s", a.status, a.body)
	}
	// A time: what was stored from then on, the cancel only.
	a = do(t, "GET", base+"h1/events?since="+url.QueryEscape(mark.Format(time.RFC3339Nano)), "")
	one = api.EventsReply{}
	if err := json.Unmarshal(a.body, &one); err != nil || a.status != 200 || len(one.Events) != 1 || one.Events[0].Seq != last.Seq {
		t.Fatalf("since time: %d %s", a.status, a.body)
	}
	for q, want := range map[string]int{"?since=yesterday": 400, "?limit=x": 400, "?limit=5000": 400} {
		if a := do(t, "GET", base+"h1/events"+q, ""); a.status != want || a.code() != api.CodeInvalidArgument {
			t.Errorf("%s: %d %s", q, a.status, a.body)
		}
	}
	if a := do(t, "GET", base+"a%2Eb/events", ""); a.status != 400 {
		t.Errorf("dotted id: %d %s", a.status, a.body)
	}
}
