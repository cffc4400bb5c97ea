package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-run/drover/jobs/testjobs"
	"github.com/drover-run/drover/pkg/api"
)

func crashSpec(id, at, how string) api.Spec {
	noRestart := 0
	return api.Spec{ID: id, Type: testjobs.Crash, Config: json.RawMessage(fmt.Sprintf(`{"at":%q,"how":%q}`, at, how)),
		Restart: &api.RestartPolicy{MaxRestarts: &noRestart}}
}

// TestCrashPanicOrHangIsolated runs, on real processes, a crash job for
// every place its code can panic or hang, beside counter jobs on the same
// nodes: each crash job fails with the code of what its code did, no
// process dies, and the counters finish at their first epoch with exact
// totals.
func TestCrashPanicOrHangIsolated(t *testing.T) {
	c := NewCluster(t, Options{Env: map[string]string{"DROVER_CALLBACK_TIMEOUT": "3s"}})
	mgr := c.Start(JobManager, "mgr-1")
	procs := []*Proc{mgr, c.Start(JobMaster, "jm-1"), c.Start(Worker, "wk-1")}
	c.WaitNodes(api.NodeJobMaster, "jm-1")
	c.WaitNodes(api.NodeWorker, "wk-1")

	const workers, target = 2, 150
	c.Counter("n1", workers, target, 20)
	c.Counter("n2", workers, target, 20)
	places := []string{testjobs.AtInit, testjobs.AtTick, testjobs.AtRoute, testjobs.AtWorkerInit, testjobs.AtWorkerTick}
	var ids []string
	for _, at := range places {
		for _, how := range []string{testjobs.HowPanic, testjobs.HowHang} {
			id := strings.ReplaceAll("crash-"+at+"-"+how, "_", "-")
			ids = append(ids, id)
			c.Submit(crashSpec(id, at, how))
		}
	}
	for _, how := range []string{testjobs.HowPanic, testjobs.HowHang} {
		id := "crash-route-" + how
		// Running means its node accepted the assignment; the master
		// serves routes by the time it announces master_ready (before
		// that the job manager answers 503).
		within := 5 * (c.Timing.AssignTimeout + c.Timing.MasterTimeout)
		c.Eventually(within, id+" master_ready at epoch 1", func() bool {
			return slices.ContainsFunc(c.Events(id), func(ev api.Event) bool {
				return ev.Kind == api.EventMasterReady && ev.Epoch == 1
			})
		})
		resp, err := http.Get("http://" + mgr.HTTPAddr() + "/api/v1/jobs/" + id + testjobs.CrashRoute)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusInternalServerError || strings.Contains(string(body), "crash job: panic") {
			t.Errorf("%s: route answered %d %s; want 500 without the panic's text", id, resp.StatusCode, body)
		}
	}
	for _, id := range ids {
		j := c.WaitTerminal(id, 30*time.Second)
		want := api.CodeJobPanic
		if strings.HasSuffix(id, "-hang") {
			want = api.CodeJobHung
		}
		if strings.Contains(id, "-worker-") {
			ws := c.Workers(id)
			if len(ws) != 1 || ws[0].Error == nil || ws[0].Error.Code != want {
				t.Errorf("%s: workers %+v; want its worker failed with %s", id, ws, want)
			}
		}
		if j.State != api.StateFailed || j.Error == nil || j.Error.Code != want {
			t.Errorf("%s ended %s with %v; want failed with %s", id, j.State, j.Error, want)
		}
	}
	for _, id := range []string{"n1", "n2"} {
		j := c.WaitTerminal(id, 60*time.Second)
		c.CheckCounter(j, workers, target)
		if j.Epoch != 1 {
			t.Errorf("neighbour %s ended at epoch %d, want 1 (untouched)", id, j.Epoch)
		}
	}
	for _, p := range procs {
		if !p.Alive() {
			t.Errorf("%s died", p.Name)
		}
	}
}

// TestCrashLoopQuarantined: a job whose master kills its node (the process
// SIGKILLs itself in Init, as a cgo crash or an out-of-memory kill would)
// is failed with crash_loop after DROVER_CRASH_LOOP_LIMIT node deaths,
// instead of taking down one node after another; the counter jobs that
// shared those nodes fail over and finish exact.
func TestCrashLoopQuarantined(t *testing.T) {
	c := NewCluster(t, Options{System: true})
	c.Start(JobManager, "mgr-1")
	jms := []*Proc{c.Start(JobMaster, "jm-1"), c.Start(JobMaster, "jm-2"), c.Start(JobMaster, "jm-3"), c.Start(JobMaster, "jm-4")}
	c.Start(Worker, "wk-1")
	c.Start(Worker, "wk-2")
	c.WaitNodes(api.NodeJobMaster, "jm-1", "jm-2", "jm-3", "jm-4")
	c.WaitNodes(api.NodeWorker, "wk-1", "wk-2")

	const workers, target = 2, 250
	var neighbours []string
	for i := range 6 {
		id := fmt.Sprintf("n%d", i)
		neighbours = append(neighbours, id)
		c.Counter(id, workers, target, 20)
	}
	for _, id := range neighbours {
		c.WaitJob(id, 20*time.Second, "running", func(j *api.Job) bool { return j.State == api.StateRunning })
	}
	c.Submit(api.Spec{ID: "killer", Type: testjobs.Crash, Config: json.RawMessage(`{"at":"init","how":"exit","workers":0}`)})
	j := c.WaitTerminal("killer", 90*time.Second)
	if j.State != api.StateFailed || j.Error == nil || j.Error.Code != api.CodeCrashLoop || j.Crashes != 3 {
		t.Fatalf("killer ended %s with %v after %d crashes; want failed with crash_loop after 3", j.State, j.Error, j.Crashes)
	}
	dead := 0
	for _, p := range jms {
		if !p.Alive() {
			dead++
		}
	}
	if dead != 3 {
		t.Errorf("%d job-master nodes died, want exactly 3 (the crash-loop limit)", dead)
	}
	for _, id := range neighbours {
		n := c.WaitTerminal(id, 90*time.Second)
		c.CheckCounter(n, workers, target)
		if n.Crashes >= 3 {
			t.Errorf("neighbour %s counted %d crashes", id, n.Crashes)
		}
	}
}
