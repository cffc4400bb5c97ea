package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/internal/wire"
	"github.com/drover-run/drover/jobs/counter"
	"github.com/drover-run/drover/jobs/testjobs"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
)

func crashRegistry() *framework.Registry {
	r := framework.NewRegistry()
	r.MustRegister(testjobs.CrashType())
	r.MustRegister(counter.Type())
	return r
}

// callRoute sends a forwarded HTTP request to a job's master, as the job
// manager does. A route handler that hangs is failed by the callback bound,
// which answers it.
func callRoute(t *testing.T, sys *testsys.System, job, path string) wire.HTTPResponse {
	t.Helper()
	subj, err := sys.Client.Space().MasterHTTP(job)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := sys.Client.Conn().Request(subj, wire.Marshal(wire.HTTPRequest{Method: http.MethodGet, Path: path}), 3*sys.CallbackTimeout)
	if err != nil {
		t.Fatalf("route %s of %s: %v", path, job, err)
	}
	var resp wire.HTTPResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestCallbackPanicOrHangFailsThatJobAlone runs, on one job-master node and
// one worker node, a crash job for every place and way its code can panic
// or hang, beside a counter job. Each crash job fails with the coded
// error of what its code did; the node survives them all, and the counter
// finishes at its first epoch with its exact total. Without the runtime's
// recover the first panic takes the test process down; without the bound
// a hung job never fails.
func TestCallbackPanicOrHangFailsThatJobAlone(t *testing.T) {
	sys := testsys.Start(t, crashRegistry())
	sys.CallbackTimeout = 3 * time.Second
	sys.AddJobManager("jm")
	sys.AddJobMaster("m1")
	sys.AddWorker("w1")
	sys.WaitReady(1, 1)
	ctx := context.Background()
	noRestart := 0

	neighbour := api.Spec{ID: "neighbour", Type: counter.Name, Config: json.RawMessage(`{"workers":3,"target":60,"interval_ms":20}`)}
	if _, err := sys.Client.Submit(ctx, neighbour); err != nil {
		t.Fatal(err)
	}
	type crashCase struct{ id, at, how string }
	var cases []crashCase
	ready := map[string]chan struct{}{} // route cases: closed at the master's master_ready
	for _, at := range []string{testjobs.AtInit, testjobs.AtTick, testjobs.AtRoute, testjobs.AtWorkerInit, testjobs.AtWorkerTick} {
		for _, how := range []string{testjobs.HowPanic, testjobs.HowHang} {
			c := crashCase{id: fmt.Sprintf("crash-%s-%s", at, how), at: at, how: how}
			c.id = sanitize(c.id)
			cases = append(cases, c)
			if at == testjobs.AtRoute {
				ready[c.id] = masterReady(t, sys, c.id)
			}
			cfg := fmt.Sprintf(`{"at":%q,"how":%q}`, at, how)
			if _, err := sys.Client.Submit(ctx, api.Spec{ID: c.id, Type: testjobs.Crash, Config: json.RawMessage(cfg),
				Restart: &api.RestartPolicy{MaxRestarts: &noRestart}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range cases {
		if c.at != testjobs.AtRoute {
			continue
		}
		// A job is running once its node accepted the assignment; its
		// master serves routes from its start on, and says so with
		// master_ready (before Init on a first start).
		select {
		case <-ready[c.id]:
		case <-time.After(startWithin(sys)):
			t.Fatalf("%s: no master_ready within %s", c.id, startWithin(sys))
		}
		if resp := callRoute(t, sys, c.id, testjobs.CrashRoute); resp.Status != http.StatusInternalServerError {
			t.Errorf("%s: route answered %d %s, want 500", c.id, resp.Status, resp.Body)
		}
	}
	for _, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			j, err := sys.WaitJob(c.id, 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if j.State != api.StateFailed || j.Error == nil {
				t.Fatalf("ended %s (%v), want failed", j.State, j.Error)
			}
			want := api.CodeJobPanic
			if c.how == testjobs.HowHang {
				want = api.CodeJobHung
			}
			if c.at == testjobs.AtWorkerInit || c.at == testjobs.AtWorkerTick {
				// The master failed the job with the error its worker's
				// exit carried to OnWorkerOffline; the worker's record
				// holds it too.
				ws, err := sys.Client.Workers(ctx, c.id)
				if err != nil || len(ws) != 1 || ws[0].Error == nil || ws[0].Error.Code != want {
					t.Fatalf("workers %+v (%v), want one failed with %s", ws, err, want)
				}
			}
			if j.Error.Code != want {
				t.Fatalf("error %v, want code %s", j.Error, want)
			}
		})
	}
	j, err := sys.WaitJob(neighbour.ID, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var d counter.Detail
	if err := json.Unmarshal(j.Detail, &d); err != nil {
		t.Fatal(err)
	}
	if j.State != api.StateFinished || j.Epoch != 1 || d.Total != 3*60 {
		t.Fatalf("neighbour ended %s at epoch %d with total %d, want finished at epoch 1 with %d", j.State, j.Epoch, d.Total, 3*60)
	}
}

// masterReady returns a channel closed when job's master announces
// master_ready at epoch 1; it subscribes before the job is submitted, so
// the event cannot be missed.
func masterReady(t *testing.T, sys *testsys.System, job string) chan struct{} {
	t.Helper()
	subj, err := sys.Client.Space().JobEvents(job)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{})
	var once sync.Once
	sub, err := sys.Client.Conn().Subscribe(subj, func(m *nats.Msg) {
		var ev api.Event
		if json.Unmarshal(m.Data, &ev) == nil && ev.Kind == api.EventMasterReady && ev.Epoch == 1 {
			once.Do(func() { close(ch) })
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := sys.Client.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	return ch
}

// startWithin bounds a first master start: an assignment answered (or
// refused and retried elsewhere) and a master loaded, each bounded by the
// configured timeouts, with room for a loaded machine.
func startWithin(sys *testsys.System) time.Duration {
	return 5 * (sys.Timing.AssignTimeout + sys.Timing.MasterTimeout)
}

func sanitize(id string) string {
	out := []byte(id)
	for i, c := range out {
		if c == '_' {
			out[i] = '-'
		}
	}
	return string(out)
}
