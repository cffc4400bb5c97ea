package kvstate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"
	"github.com/drover-run/drover/pkg/topics"
)

// TestBoundsAtTheLimit: with small bounds, the jobs bucket refuses a job
// beyond its bytes (IsFull) and keeps every job it acknowledged; the
// requests stream refuses a request beyond its count; the events stream
// keeps the newest events of a job, dropping its oldest, and leaves the
// other jobs' events alone.
func TestBoundsAtTheLimit(t *testing.T) {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	ctx := context.Background()
	space := topics.MustNew("drover")
	st, err := kvstate.Open(ctx, js, space, kvstate.Options{JobsMaxBytes: 8 << 10, RequestsMaxMsgs: 2, EventsMaxPerJob: 5})
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for i := range 100 {
		id := fmt.Sprintf("j%d", i)
		_, err := st.CreateJob(ctx, &api.Job{ID: id, Type: "t", Config: json.RawMessage(`{"a":"` + strings.Repeat("x", 500) + `"}`)})
		if err != nil {
			if !kvstate.IsFull(err) {
				t.Fatalf("create %s: %v, want the bucket full", id, err)
			}
			break
		}
		stored = append(stored, id)
	}
	if len(stored) == 0 || len(stored) == 100 {
		t.Fatalf("%d jobs stored under 8 KiB", len(stored))
	}
	for _, id := range stored {
		if _, _, err := st.GetJob(ctx, id); err != nil {
			t.Fatalf("acknowledged job %s lost: %v", id, err)
		}
	}

	for i := range 3 {
		_, err := js.Publish(ctx, space.JobRequests(), []byte(`{}`))
		if (i < 2) != (err == nil) || (err != nil && !kvstate.IsFull(err)) {
			t.Fatalf("request %d: %v", i, err)
		}
	}

	for _, job := range []string{"a", "b"} {
		subj, _ := space.JobEvents(job)
		n := 20
		if job == "b" {
			n = 2
		}
		for i := range n {
			if _, err := js.Publish(ctx, subj, []byte(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	s, err := js.Stream(ctx, space.EventsStream())
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(space.JobEventsPattern()))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := info.State.Subjects["drover.events.jobs.a"], info.State.Subjects["drover.events.jobs.b"]; a != 5 || b != 2 {
		t.Fatalf("events kept: a %d (want the newest 5), b %d (want 2)", a, b)
	}
	last, err := s.GetLastMsgForSubject(ctx, "drover.events.jobs.a")
	if err != nil || string(last.Data) != `{"i":19}` {
		t.Fatalf("newest event of a: %v %v", last, err)
	}
}
