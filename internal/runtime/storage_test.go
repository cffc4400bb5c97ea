package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/internal/runtime"
	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
	"github.com/drover-run/drover/pkg/objstore"
	"github.com/drover-run/drover/pkg/topics"
)

// storeConfig drives the storage probe job.
type storeConfig struct {
	Keep bool `json:"keep"`
	// FailFirst makes the first attempt exit failed (retryable) once its
	// scratch is written, so the next attempt must find it.
	FailFirst bool `json:"fail_first"`
}

// storeMaster writes a scratch object, has one worker write another and an
// output, then lists its scratch space as the job's detail.
type storeMaster struct {
	framework.BaseJobMaster
	cfg storeConfig
}

func (m *storeMaster) start(ctx context.Context, recovered bool) error {
	st, ok := m.H.Storage()
	if !ok {
		return framework.Permanent(errors.New("no storage"))
	}
	st.KeepScratch(m.cfg.Keep)
	scratch, err := st.Scratch(ctx)
	if err != nil {
		return err
	}
	if recovered && m.cfg.FailFirst {
		// The failed attempt's scratch object must still be there.
		if _, err := scratch.Info(ctx, "master"); err != nil {
			return framework.Permanent(fmt.Errorf("scratch lost across a retry: %w", err))
		}
	}
	if _, err := scratch.PutBytes(ctx, "master", []byte(m.H.JobID())); err != nil {
		return err
	}
	if m.cfg.FailFirst && !recovered {
		m.H.Exit(framework.ExitFailed, errors.New("first attempt fails"), nil)
		return nil
	}
	_, err = m.H.CreateWorker(ctx, "store-worker", nil, framework.WithWorkerID("w0"))
	return err
}

func (m *storeMaster) Init(ctx context.Context) error { return m.start(ctx, false) }

func (m *storeMaster) OnMasterRecovered(ctx context.Context) error {
	if w, ok := m.H.Worker("w0"); ok && w.State == "finished" {
		return m.finish(ctx)
	}
	return m.start(ctx, true)
}

func (m *storeMaster) OnWorkerOffline(w framework.WorkerInfo, reason string) error {
	if reason != "finished" {
		m.H.Exit(framework.ExitFailed, fmt.Errorf("worker %s: %s", w.ID, reason), nil)
		return nil
	}
	return m.finish(context.Background())
}

func (m *storeMaster) finish(ctx context.Context) error {
	st, _ := m.H.Storage()
	scratch, err := st.Scratch(ctx)
	if err != nil {
		return err
	}
	objs, err := scratch.List(ctx, "")
	if err != nil {
		return err
	}
	var names []string
	for _, o := range objs {
		names = append(names, o.Name)
	}
	sort.Strings(names)
	m.H.Exit(framework.ExitFinished, nil, map[string]any{"scratch": names})
	return nil
}

type storeWorker struct{ framework.BaseWorker }

func (w *storeWorker) Tick(ctx context.Context) error {
	st, ok := w.H.Storage()
	if !ok {
		return framework.Permanent(errors.New("no storage"))
	}
	scratch, err := st.Scratch(ctx)
	if err != nil {
		return err
	}
	if _, err := scratch.PutBytes(ctx, "w/"+w.H.WorkerID(), []byte("w")); err != nil {
		return err
	}
	out, err := st.CreateBucket(ctx, "out")
	if err != nil {
		return err
	}
	if _, err := out.PutBytes(ctx, w.H.JobID()+".result", []byte("42")); err != nil {
		return err
	}
	if _, err := st.Bucket(ctx, "never-created"); !errors.Is(err, framework.ErrBucketNotFound) {
		return framework.Permanent(fmt.Errorf("missing bucket: %v", err))
	}
	w.H.Exit(framework.ExitFinished, nil, nil)
	return nil
}

func storeRegistry() *framework.Registry {
	r := framework.NewRegistry()
	r.MustRegister(framework.JobType{
		Name: "store-probe",
		NewMaster: func(h framework.MasterHandle) (framework.JobMaster, error) {
			m := &storeMaster{BaseJobMaster: framework.BaseJobMaster{H: h}}
			if len(h.Config()) > 0 {
				if err := json.Unmarshal(h.Config(), &m.cfg); err != nil {
					return nil, err
				}
			}
			return m, nil
		},
		Workers: map[string]func(framework.WorkerHandle) (framework.Worker, error){
			"store-worker": func(h framework.WorkerHandle) (framework.Worker, error) {
				return &storeWorker{BaseWorker: framework.BaseWorker{H: h}}, nil
			},
		},
	})
	return r
}

// TestStorage: master and workers share the job's scratch space and named
// buckets; the scratch space is deleted when the job ends unless kept, and
// survives a retryable failure so the next attempt finds it.
func TestStorage(t *testing.T) {
	sys := testsys.Start(t, storeRegistry())
	sys.AddJobManager("mgr")
	sys.AddJobMaster("jm")
	sys.AddWorker("wk")
	sys.WaitReady(1, 1)
	_, js := natstest.Connect(t, sys.Server)
	objs := objstore.New(js, topics.MustNew(topics.DefaultPrefix), objstore.Options{})

	scratchOf := func(job string) []string {
		b, err := objs.OpenBucket(context.Background(), runtime.DefaultWorkBucket)
		if err != nil {
			t.Fatal(err)
		}
		list, err := b.List(context.Background(), runtime.ScratchPrefix(job))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, o := range list {
			names = append(names, o.Name)
		}
		return names
	}
	for _, tc := range []struct {
		name, job, config string
		kept              bool
	}{
		{"deleted", "s1", `{}`, false},
		{"kept", "s2", `{"keep":true}`, true},
		{"retry keeps it", "s3", `{"fail_first":true}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := sys.Client.Submit(ctx, api.Spec{ID: tc.job, Type: "store-probe", Config: json.RawMessage(tc.config)}); err != nil {
				t.Fatal(err)
			}
			j, err := sys.WaitJob(tc.job, 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if j.State != api.StateFinished {
				t.Fatalf("job %s ended %s: %v", tc.job, j.State, j.Error)
			}
			if tc.job == "s3" && j.Restarts != 1 {
				t.Fatalf("s3 restarts %d, want 1", j.Restarts)
			}
			var d struct{ Scratch []string }
			if err := json.Unmarshal(j.Detail, &d); err != nil || fmt.Sprint(d.Scratch) != "[master w/w0]" {
				t.Fatalf("scratch seen by the master: %s (%v)", j.Detail, err)
			}
			out, err := objs.OpenBucket(ctx, "out")
			if err != nil {
				t.Fatal(err)
			}
			if b, err := out.GetBytes(ctx, tc.job+".result"); err != nil || string(b) != "42" {
				t.Fatalf("output: %q %v", b, err)
			}
			if tc.kept {
				// The cleanup would run right after the exit: give it time to be wrong.
				time.Sleep(300 * time.Millisecond)
				if got := scratchOf(tc.job); len(got) != 2 {
					t.Fatalf("kept scratch: %v", got)
				}
				return
			}
			natstest.Eventually(t, 10*time.Second, "scratch deleted", func() bool { return len(scratchOf(tc.job)) == 0 })
		})
	}
	// Other jobs' scratch is untouched, and tombstones do not pile up.
	if got := scratchOf("s2"); len(got) != 2 {
		t.Fatalf("s2 scratch: %v", got)
	}
	name, _ := topics.MustNew(topics.DefaultPrefix).ObjectBucket(runtime.DefaultWorkBucket)
	st, err := js.Stream(context.Background(), "OBJ_"+name)
	if err != nil {
		t.Fatal(err)
	}
	// The last job's tombstones are purged just after its scratch is gone.
	metaSubjects := func() int {
		info, err := st.Info(context.Background(), jetstream.WithSubjectFilter("$O."+name+".M.>"))
		if err != nil {
			t.Fatal(err)
		}
		return len(info.State.Subjects)
	}
	deadline := time.Now().Add(10 * time.Second)
	for n := metaSubjects(); n != 2; n = metaSubjects() {
		if time.Now().After(deadline) {
			t.Fatalf("meta subjects left in the work bucket: %d, want 2 (s2's)", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
