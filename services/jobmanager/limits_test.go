package jobmanager_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/jobs/builtin"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/services/jobmanager"
)

// TestFullStoresAnswerCodedErrors: a submit beyond the jobs bucket's bound
// is unavailable with a message that says what to do, and every job
// acknowledged before is still there; a durable request beyond the
// requests stream's bound is refused at once with unavailable.
func TestFullStoresAnswerCodedErrors(t *testing.T) {
	sys := testsys.Start(t, builtin.TestRegistry())
	jm := sys.AddJobManagerWith("jm-small", func(c *jobmanager.Config) {
		c.JobsMaxBytes, c.RequestsMaxMsgs = 16<<10, 2
	})
	sys.WaitReady(0, 0)
	ctx := context.Background()
	var stored []string
	for i := range 200 {
		id := fmt.Sprintf("f%d", i)
		_, err := sys.Client.Submit(ctx, api.Spec{ID: id, Type: "counter"})
		if err != nil {
			if api.ErrorCode(err) != api.CodeUnavailable || !strings.Contains(err.Error(), "full") {
				t.Fatalf("submit %s: %v, want unavailable: full", id, err)
			}
			break
		}
		stored = append(stored, id)
	}
	if len(stored) == 0 || len(stored) == 200 {
		t.Fatalf("%d jobs stored under 16 KiB", len(stored))
	}
	for _, id := range stored {
		if _, err := sys.Client.Get(ctx, id); err != nil {
			t.Fatalf("acknowledged job %s: %v", id, err)
		}
	}
	sys.Stop(jm.ID) // nobody takes requests any more
	var err error
	for i := range 3 {
		if err = sys.Client.SubmitDurable(ctx, api.Spec{ID: fmt.Sprintf("d%d", i), Type: "counter"}); err != nil {
			break
		}
	}
	if api.ErrorCode(err) != api.CodeUnavailable || !strings.Contains(err.Error(), "full") {
		t.Fatalf("third durable request: %v, want unavailable: full", err)
	}
}
