package jobmanager_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/internal/runtime"
	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/jobs/builtin"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/services/jobmanager"
)

// leftovers plants what a job using scratch leaves behind: its scratch
// mark and one scratch object in the work bucket; it returns a check that
// reports what of the job remains anywhere (records, events, scratch).
func leftovers(t *testing.T, sys *testsys.System, job string) func() []string {
	t.Helper()
	ctx := context.Background()
	_, js := natstest.Connect(t, sys.Server)
	space := sys.Client.Space()
	state, err := js.KeyValue(ctx, space.StateBucket())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := state.Put(ctx, "b."+job+"."+runtime.ScratchKey, []byte("keep")); err != nil {
		t.Fatal(err)
	}
	obs, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: space.Prefix() + "_obj_work"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := obs.Put(ctx, jetstream.ObjectMeta{Name: runtime.ScratchPrefix(job) + "part-0"}, bytes.NewReader([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	return func() []string {
		var left []string
		if _, err := sys.Client.Get(ctx, job); api.ErrorCode(err) != api.CodeNotFound {
			left = append(left, "job record")
		}
		for _, pattern := range []string{"m." + job, "w." + job + ".*", "b." + job + ".>"} {
			if l, err := state.ListKeysFiltered(ctx, pattern); err == nil {
				for k := range l.Keys() {
					left = append(left, "state "+k)
				}
			}
		}
		if s, err := js.Stream(ctx, space.EventsStream()); err == nil {
			subj, _ := space.JobEvents(job)
			if info, err := s.Info(ctx, jetstream.WithSubjectFilter(subj)); err == nil && info.State.Subjects[subj] > 0 {
				left = append(left, "events")
			}
		}
		if _, err := obs.GetInfo(ctx, runtime.ScratchPrefix(job)+"part-0"); err == nil {
			left = append(left, "scratch object")
		}
		return left
	}
}

// runningWithLeftovers starts a system with a long counter job id running
// and what leftovers plants for it.
func runningWithLeftovers(t *testing.T, id string) (*testsys.System, *api.Job, func() []string) {
	t.Helper()
	sys := startSystem(t, 1, 1)
	ctx := context.Background()
	j, err := sys.Client.Submit(ctx, api.Spec{ID: id, Type: "counter", Config: json.RawMessage(`{"workers":2,"target":100000,"interval_ms":5}`)})
	if err != nil {
		t.Fatal(err)
	}
	left := leftovers(t, sys, j.ID)
	natstest.Eventually(t, 10*sys.Timing.AssignTimeout, "job running", func() bool {
		g, err := sys.Client.Get(ctx, j.ID)
		return err == nil && g.State == api.StateRunning
	})
	return sys, j, left
}

// TestDeleteRemovesEverythingOfAnEndedJob: delete refuses a job that has
// not ended and a missing one, and removes an ended job's record, master,
// worker and business records, events and scratch (even kept scratch).
func TestDeleteRemovesEverythingOfAnEndedJob(t *testing.T) {
	sys, j, left := runningWithLeftovers(t, "del1")
	ctx := context.Background()
	if _, err := sys.Client.Delete(ctx, j.ID); api.ErrorCode(err) != api.CodeFailedPrecondition {
		t.Fatalf("delete a running job: %v, want failed_precondition", err)
	}
	if _, err := sys.Client.Cancel(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := sys.WaitJob(j.ID, 3*sys.Timing.CancelTimeout); err != nil {
		t.Fatal(err)
	}
	d, err := sys.Client.Delete(ctx, j.ID)
	if err != nil || d.ID != j.ID || d.State != api.StateCanceled {
		t.Fatalf("delete: %+v %v", d, err)
	}
	if l := left(); len(l) != 0 {
		t.Fatalf("left after delete: %v", l)
	}
	if _, err := sys.Client.Delete(ctx, j.ID); api.ErrorCode(err) != api.CodeNotFound {
		t.Fatalf("delete again: %v, want not_found", err)
	}
	if _, err := sys.Client.Delete(ctx, "../x"); api.ErrorCode(err) != api.CodeInvalidArgument {
		t.Fatalf("delete a bad id: %v, want invalid_argument", err)
	}
}

// TestRetentionRemovesEndedJobsOnly: with a short retention the leader
// removes an ended job with everything it left, and keeps a job that has
// not ended however old.
func TestRetentionRemovesEndedJobsOnly(t *testing.T) {
	sys := testsys.Start(t, builtin.TestRegistry())
	const retention = 500 * time.Millisecond
	sys.AddJobManagerWith("jm-r", func(c *jobmanager.Config) { c.Retention = retention })
	sys.WaitReady(0, 0)
	ctx := context.Background()
	for _, id := range []string{"old-ended", "old-waiting"} {
		if _, err := sys.Client.Submit(ctx, api.Spec{ID: id, Type: "counter"}); err != nil {
			t.Fatal(err)
		}
	}
	left := leftovers(t, sys, "old-ended")
	if _, err := sys.Client.Cancel(ctx, "old-ended"); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 20*retention+10*time.Second, "ended job removed", func() bool { return len(left()) == 0 })
	time.Sleep(2 * retention) // a few more sweeps
	if g, err := sys.Client.Get(ctx, "old-waiting"); err != nil || g.State.Terminal() {
		t.Fatalf("waiting job: %+v %v", g, err)
	}
}

// TestScratchIsCleanedWhenAJobEndsWithoutItsMaster: a job canceled while
// it waited (no master runs to clean) loses its scratch objects, unless it
// asked to keep them.
func TestScratchIsCleanedWhenAJobEndsWithoutItsMaster(t *testing.T) {
	sys := startSystem(t, 0, 0)
	ctx := context.Background()
	_, js := natstest.Connect(t, sys.Server)
	state, err := js.KeyValue(ctx, sys.Client.Space().StateBucket())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"used", "kept"} {
		if _, err := sys.Client.Submit(ctx, api.Spec{ID: id, Type: "counter"}); err != nil {
			t.Fatal(err)
		}
	}
	used, kept := leftovers(t, sys, "used"), leftovers(t, sys, "kept")
	if _, err := state.Put(ctx, "b.used."+runtime.ScratchKey, []byte("1")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"used", "kept"} {
		if _, err := sys.Client.Cancel(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	has := func(l []string, what string) bool {
		for _, s := range l {
			if s == what {
				return true
			}
		}
		return false
	}
	natstest.Eventually(t, 10*time.Second, "scratch of the canceled job deleted", func() bool { return !has(used(), "scratch object") })
	if !has(kept(), "scratch object") {
		t.Fatal("scratch the job asked to keep was deleted")
	}
}

// TestDeleteRightAfterTheEndLeavesNoEvent: a delete that comes as soon as
// the record says the job ended, while its terminal event is still on its
// way to the events stream (held back here), waits for that event and
// removes it with the rest; it used to purge the events first and leave
// the terminal one behind, alone, for a later job of the same ID.
func TestDeleteRightAfterTheEndLeavesNoEvent(t *testing.T) {
	sys, j, left := runningWithLeftovers(t, "del2")
	ctx := context.Background()
	hold := jobmanager.TerminalEventWait / 4
	defer jobmanager.DelayTerminalEvents(hold)()
	if _, err := sys.Client.Cancel(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 3*sys.Timing.CancelTimeout, "the record canceled", func() bool {
		g, err := sys.Client.Get(ctx, j.ID)
		return err == nil && g.State == api.StateCanceled
	})
	if _, err := sys.Client.Delete(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	// Had the delete not waited, the held event would come after it: wait
	// until it was sent, then until the stream stored it (a later write to
	// the stream, acknowledged, is stored after it).
	natstest.Eventually(t, 10*jobmanager.TerminalEventWait, "the held terminal event sent", func() bool {
		return jobmanager.HeldTerminalEvents() > 0
	})
	_, js := natstest.Connect(t, sys.Server)
	barrier, err := sys.Client.Space().JobEvents(j.ID + "-barrier")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, barrier, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if l := left(); len(l) != 0 {
		t.Fatalf("left after delete: %v", l)
	}
}
