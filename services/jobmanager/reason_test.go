package jobmanager

import (
	"testing"
	"time"

	"github.com/drover-run/drover/pkg/api"
)

// TestTransitionReasonTellsEveryTransitionApart pins the reasons of state
// events (docs/operations.md lists them): each transition the job manager
// makes is named from the records alone.
func TestTransitionReasonTellsEveryTransitionApart(t *testing.T) {
	later := time.Now()
	job := func(s api.State, epoch uint64, next *time.Time) *api.Job {
		return &api.Job{State: s, Epoch: epoch, NextAttemptAt: next}
	}
	tests := []struct {
		name          string
		before, after *api.Job
		want          string
	}{
		{"submitted", &api.Job{}, job(api.StateCreated, 0, nil), ReasonSubmitted},
		{"first assignment", job(api.StateCreated, 0, nil), job(api.StateRunning, 1, nil), ReasonAssigned},
		{"assigned once a node has room", job(api.StatePending, 1, nil), job(api.StateRunning, 2, nil), ReasonAssigned},
		{"restart after backoff", job(api.StatePending, 1, &later), job(api.StateRunning, 2, nil), ReasonRestart},
		{"no node can take it", job(api.StateRunning, 1, nil), job(api.StatePending, 1, nil), ReasonNoCapacity},
		{"failed, will restart", job(api.StateRunning, 1, nil), job(api.StatePending, 1, &later), ReasonMasterFailed},
		{"failed for good", job(api.StateRunning, 3, nil), job(api.StateFailed, 3, nil), ReasonMasterFailed},
		{"finished", job(api.StateRunning, 1, nil), job(api.StateFinished, 1, nil), ReasonMasterFinished},
		{"cancel asked of the master", job(api.StateRunning, 1, nil), job(api.StateCanceling, 1, nil), ReasonCancelRequested},
		{"canceled with no master", job(api.StatePending, 1, &later), job(api.StateCanceled, 1, nil), ReasonCancelRequested},
		{"canceled before any start", job(api.StateCreated, 0, nil), job(api.StateCanceled, 0, nil), ReasonCancelRequested},
		{"master canceled", job(api.StateCanceling, 1, nil), job(api.StateCanceled, 1, nil), ReasonMasterCanceled},
		{"master exited canceled on its own", job(api.StateRunning, 1, nil), job(api.StateCanceled, 1, nil), ReasonMasterCanceled},
		{"forced cancel", job(api.StateCanceling, 1, nil), job(api.StateCanceled, 2, nil), ReasonForced},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := transitionReason(tt.before, tt.after); got != tt.want {
				t.Fatalf("%s → %s: reason %q, want %q", tt.before.State, tt.after.State, got, tt.want)
			}
		})
	}
}
