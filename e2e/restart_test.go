package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover-run/drover/jobs/testjobs"
	"github.com/drover-run/drover/pkg/api"
)

// TestRestartPolicy drives flaky jobs, whose master fails a given number of
// attempts (counted in business KV) before one runs: retryable failures
// are restarted with exponential backoff up to the maximum, a permanent
// one fails the job at once, a job's own restart policy overrides the
// deployment's, and a later attempt that runs clears the earlier error.
func TestRestartPolicy(t *testing.T) {
	c := NewCluster(t, Options{Env: map[string]string{
		"DROVER_MAX_RESTARTS":        "2",
		"DROVER_RESTART_BACKOFF":     "100ms",
		"DROVER_RESTART_MAX_BACKOFF": "400ms",
	}})
	c.Start(JobManager, "mgr-1")
	c.Start(JobMaster, "jm-1")
	c.WaitNodes(api.NodeJobMaster, "jm-1")

	flaky := func(id string, failTimes int, permanent bool, runMS int, restart *api.RestartPolicy) {
		cfg := fmt.Sprintf(`{"fail_times":%d,"permanent":%v,"run_ms":%d}`, failTimes, permanent, runMS)
		c.Submit(api.Spec{ID: id, Type: testjobs.Flaky, Config: json.RawMessage(cfg), Restart: restart})
	}
	attempts := func(id string) int {
		n, _ := strconv.Atoi(string(c.business(id, testjobs.AttemptsKey)))
		return n
	}
	intp := func(n int) *int { return &n }

	t.Run("retryable failures then a run clears the error", func(t *testing.T) {
		t.Parallel()
		flaky("retry", 2, false, 1500, nil)
		// While the third attempt runs, the job shows no error any more.
		j := c.WaitJob("retry", 20*time.Second, "running its third attempt without error", func(j *api.Job) bool {
			return j.State == api.StateRunning && j.Restarts == 2 && j.Error == nil && attempts("retry") == 3
		})
		if j.State != api.StateRunning {
			t.Fatalf("job %s", j.State)
		}
		var sawError bool
		for _, ev := range c.Events("retry") {
			if ev.State == api.StatePending && ev.Error != nil && strings.Contains(ev.Error.Message, "fails on purpose") {
				sawError = true
			}
		}
		if !sawError {
			t.Error("no pending event carried the failed attempt's error")
		}
		final := c.WaitTerminal("retry", 20*time.Second)
		if final.State != api.StateFinished || final.Restarts != 2 || final.Error != nil || attempts("retry") != 3 {
			t.Fatalf("ended %s, %d restarts, error %v, %d attempts; want finished, 2, none, 3", final.State, final.Restarts, final.Error, attempts("retry"))
		}
	})
	t.Run("max restarts then failed", func(t *testing.T) {
		t.Parallel()
		flaky("exhaust", 10, false, 0, nil)
		final := c.WaitTerminal("exhaust", 20*time.Second)
		if final.State != api.StateFailed || final.Restarts != 2 || final.Error == nil ||
			!strings.Contains(final.Error.Message, "attempt 3 of 10 fails on purpose") {
			t.Fatalf("ended %s after %d restarts with %v; want failed after 2 with attempt 3's error", final.State, final.Restarts, final.Error)
		}
		// No fourth attempt comes later.
		time.Sleep(c.Timing.Settle() + 400*time.Millisecond) // + the maximum restart backoff
		if n := attempts("exhaust"); n != 3 {
			t.Fatalf("%d attempts, want 3", n)
		}
	})
	t.Run("permanent failure fails at once", func(t *testing.T) {
		t.Parallel()
		flaky("permanent", 1, true, 0, nil)
		final := c.WaitTerminal("permanent", 20*time.Second)
		if final.State != api.StateFailed || final.Restarts != 0 || final.Error == nil {
			t.Fatalf("ended %s after %d restarts with %v; want failed at once", final.State, final.Restarts, final.Error)
		}
		time.Sleep(c.Timing.Settle() + 400*time.Millisecond) // + the maximum restart backoff
		if n := attempts("permanent"); n != 1 {
			t.Fatalf("%d attempts, want 1", n)
		}
	})
	t.Run("per-job override", func(t *testing.T) {
		t.Parallel()
		// Four failures: the deployment allows two restarts, the job five.
		flaky("override", 4, false, 0, &api.RestartPolicy{MaxRestarts: intp(5), InitialBackoff: 50, MaxBackoff: 200})
		flaky("no-override", 4, false, 0, nil)
		if j := c.WaitTerminal("override", 30*time.Second); j.State != api.StateFinished || j.Restarts != 4 {
			t.Errorf("with override: %s after %d restarts, want finished after 4", j.State, j.Restarts)
		}
		if j := c.WaitTerminal("no-override", 30*time.Second); j.State != api.StateFailed || j.Restarts != 2 {
			t.Errorf("without override: %s after %d restarts, want failed after 2", j.State, j.Restarts)
		}
	})
	t.Run("exponential backoff", func(t *testing.T) {
		t.Parallel()
		const initial = 300 * time.Millisecond
		flaky("backoff", 3, false, 0, &api.RestartPolicy{MaxRestarts: intp(3), InitialBackoff: initial.Milliseconds(), MaxBackoff: 5000})
		if j := c.WaitTerminal("backoff", 30*time.Second); j.State != api.StateFinished {
			t.Fatalf("ended %s", j.State)
		}
		// Lower bounds only: attempt n+1 starts no sooner than initial·2^(n-1)
		// after attempt n (which failed at once).
		var starts []time.Time
		for n := 1; n <= 4; n++ {
			ms, err := strconv.ParseInt(string(c.business("backoff", testjobs.AttemptKey(n))), 10, 64)
			if err != nil {
				t.Fatalf("attempt %d start: %v", n, err)
			}
			starts = append(starts, time.UnixMilli(ms))
		}
		for n := 1; n < len(starts); n++ {
			gap, want := starts[n].Sub(starts[n-1]), initial<<(n-1)
			t.Logf("attempt %d → %d: %s (backoff %s)", n, n+1, gap, want)
			if gap < want {
				t.Errorf("attempt %d started %s after attempt %d, backoff is %s", n+1, gap, n, want)
			}
		}
	})
}

// business reads one business key of a job ("" if absent).
func (c *Cluster) business(job, key string) []byte {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	v, _, err := c.Store.Business(job, nil, nil).Get(ctx, key)
	if err != nil {
		return nil
	}
	return v
}
