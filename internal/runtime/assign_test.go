package runtime_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/internal/wire"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"
	"github.com/drover-run/drover/pkg/topics"
)

// TestAssignmentsAreCheckedOneByOne sends a job-master node forged
// assignment requests, as the job manager's identity could: each
// assignment of a request is checked against the records on its own (an
// epoch the master record does not hold, a job without records and an
// invalid id are each refused with their code), a request of none or of
// more than a node takes is refused whole, and the running master is
// untouched.
func TestAssignmentsAreCheckedOneByOne(t *testing.T) {
	sys := oneOfEach(t)
	submitCounter(t, sys, "held", 1)
	st := openStore(t, sys)
	var rec *kvstate.MasterRecord
	var rev uint64
	natstest.Eventually(t, 20*time.Second, "the master running on m1", func() bool {
		var err error
		rec, rev, err = st.GetMaster(context.Background(), "held")
		return err == nil && rec.Epoch == 1 && rec.Node == "m1" && rec.State == kvstate.MasterRunning
	})
	nc, _ := natstest.Connect(t, sys.Server)
	subj, _ := topics.MustNew(topics.DefaultPrefix).NodeControl(topics.KindJobMaster, "m1")
	ask := func(as []wire.Assign) wire.AssignReplies {
		t.Helper()
		resp, err := nc.RequestMsg(wire.NewMsg(subj, wire.KindAssign, 0, wire.Marshal(wire.Assignments{Assign: as})), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var rep wire.AssignReplies
		if err := json.Unmarshal(resp.Data, &rep); err != nil {
			t.Fatalf("reply %q: %v", resp.Data, err)
		}
		return rep
	}

	rep := ask([]wire.Assign{
		{Job: "held", Epoch: rec.Epoch + 1, Rev: rev}, // the record holds epoch 1
		{Job: "held", Epoch: rec.Epoch, Rev: rev + 1}, // nor this revision
		{Job: "nojob", Epoch: 1, Rev: 1},
		{Job: "bad id", Epoch: 1, Rev: 1},
	})
	want := []api.Code{api.CodeFailedPrecondition, api.CodeFailedPrecondition, api.CodeFailedPrecondition, api.CodeInvalidArgument}
	if rep.Error != nil || len(rep.Results) != len(want) {
		t.Fatalf("reply %+v, want %d results", rep, len(want))
	}
	for i, r := range rep.Results {
		if r.OK || r.Error == nil || r.Error.Code != want[i] {
			t.Errorf("assignment %d: %+v, want refused with %s", i, r, want[i])
		}
	}
	for what, as := range map[string][]wire.Assign{
		"no assignment": nil,
		"one too many":  slices.Repeat([]wire.Assign{{Job: "held", Epoch: rec.Epoch, Rev: rev}}, wire.MaxAssignments+1),
	} {
		if rep := ask(as); rep.Error == nil || rep.Error.Code != api.CodeInvalidArgument || len(rep.Results) != 0 {
			t.Errorf("%s: reply %+v, want invalid_argument for the request", what, rep)
		}
	}
	if now, nrev, err := st.GetMaster(context.Background(), "held"); err != nil || now.Epoch != 1 || nrev != rev {
		t.Errorf("master record after the forged assignments: %+v rev %d (%v), want epoch 1 rev %d", now, nrev, err, rev)
	}
	j, err := sys.Client.Get(context.Background(), "held")
	if err != nil || j.State != api.StateRunning || j.Epoch != 1 {
		t.Errorf("job after the forged assignments: %+v (%v), want running at epoch 1", j, err)
	}
}
