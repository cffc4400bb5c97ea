package hello_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drover-run/drover/examples/hello"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/client"
	"github.com/drover-run/drover/pkg/drovertest"
	"github.com/drover-run/drover/pkg/objstore"
	"github.com/drover-run/drover/pkg/topics"
)

func checkDetail(t *testing.T, j *api.Job, workers int) {
	t.Helper()
	if j.State != api.StateFinished {
		t.Fatalf("job ended %s: %v", j.State, j.Error)
	}
	var d struct{ Greetings []string }
	if err := json.Unmarshal(j.Detail, &d); err != nil || len(d.Greetings) != workers ||
		d.Greetings[0] != "hi from greeter-0" {
		t.Fatalf("detail %s (%v)", j.Detail, err)
	}
}

// TestInProcess runs the example job on an in-process system.
func TestInProcess(t *testing.T) {
	sys := drovertest.Start(t, hello.Registry())
	sys.AddJobManager("mgr")
	sys.AddJobMaster("jm")
	sys.AddWorker("wk")
	sys.WaitReady(1, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := sys.Client.Submit(ctx, api.Spec{ID: "h1", Type: hello.Name, Config: json.RawMessage(`{"workers":3,"greeting":"hi"}`)}); err != nil {
		t.Fatal(err)
	}
	j, err := sys.WaitJob("h1", 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkDetail(t, j, 3)
	_, js := drovertest.Connect(t, sys.Server)
	b, err := objstore.New(js, topics.MustNew(topics.DefaultPrefix), objstore.Options{}).OpenBucket(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.GetBytes(ctx, "h1/greeter-2.txt"); err != nil || string(got) != "hi from greeter-2\n" {
		t.Fatalf("greeting object: %q %v", got, err)
	}
}

// TestBinaries builds the example's own job-master and worker binaries and
// the stock job manager, runs them as processes, and runs a job: what
// docs/writing-jobs.md tells a job author to do.
func TestBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries")
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+string(os.PathSeparator),
		"github.com/drover-run/drover/cmd/jobmanager",
		"github.com/drover-run/drover/examples/hello/cmd/hello-jobmaster",
		"github.com/drover-run/drover/examples/hello/cmd/hello-worker")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	srv := drovertest.RunServer(t)
	for _, bin := range []string{"jobmanager", "hello-jobmaster", "hello-worker"} {
		cmd := exec.Command(filepath.Join(dir, bin))
		cmd.Env = []string{"DROVER_NATS_URL=" + srv.ClientURL(), "DROVER_HTTP_ADDR=127.0.0.1:0",
			"DROVER_NODE_ID=" + bin, "DROVER_LOG_LEVEL=warn", "PATH=" + os.Getenv("PATH")}
		var logs strings.Builder
		cmd.Stdout, cmd.Stderr = &logs, &logs
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			if t.Failed() {
				t.Logf("%s:\n%s", bin, logs.String())
			}
		})
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cl := client.New(nc, topics.MustNew(topics.DefaultPrefix))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	spec := api.Spec{ID: "h2", Type: hello.Name, Config: json.RawMessage(`{"workers":2,"greeting":"hi"}`)}
	// The job manager accepts the type once the job-master node announced it.
	var serr error
	drovertest.Eventually(t, 30*time.Second, "submit accepted", func() bool {
		_, serr = cl.Submit(ctx, spec)
		return serr == nil
	})
	j, err := cl.Wait(ctx, "h2", nil)
	if err != nil {
		t.Fatal(fmt.Errorf("wait: %w", err))
	}
	checkDetail(t, j, 2)
}
