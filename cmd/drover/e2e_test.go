package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover-run/drover/pkg/api"
)

// TestDevEndToEnd runs the real system under `drover dev` and drives it
// with the CLI: counter jobs end with the exact total, a canceled job makes
// wait exit 3, and every --json output parses. drover is alone in an empty
// directory and runs with --temp: it runs every service itself, keeps its
// data in a directory it removes, and leaves nothing where it ran.
func TestDevEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real services")
	}
	requireLinux(t)
	built := build(t, "real", "./cmd/drover", "drover")
	bin := t.TempDir()
	b, err := os.ReadFile(filepath.Join(built, "drover"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "drover"), b, 0o755); err != nil {
		t.Fatal(err)
	}

	port := freePort(t)
	d := startDev(t, bin, nil, "--port", strconv.Itoa(port), "--temp", "--monitor-port", "-1", "--http-base-port", "0")
	d.waitFor("Drover is up", 30*time.Second)
	out := d.out.String()
	monitor := regexp.MustCompile(`NATS monitoring: (http://127\.0\.0\.1:\d+)`).FindStringSubmatch(out)
	data := regexp.MustCompile(`Data: (\S+), removed on exit`).FindStringSubmatch(out)
	if monitor == nil || data == nil || !strings.Contains(out, "nats -s nats://127.0.0.1:"+strconv.Itoa(port)+" micro ls") {
		t.Fatalf("banner lacks the monitoring port, the temp data or nats micro ls:\n%s", out)
	}
	if resp, err := http.Get(monitor[1] + "/varz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("monitoring %s/varz: %v %v", monitor[1], resp, err)
	} else {
		resp.Body.Close()
	}
	env := map[string]string{"DROVER_NATS_URL": fmt.Sprintf("nats://127.0.0.1:%d", port)}
	ctx := deadline(t, 45*time.Second)
	cli := func(args ...string) result {
		t.Helper()
		return runCLI(t, ctx, env, "", args...)
	}
	decode := func(r result, v any) {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, r.stdout)
		}
	}

	const workers, target = 3, 20
	var job api.Job
	decode(cli("submit", "--json", "--type", "counter", "--config", fmt.Sprintf(`{"workers":%d,"target":%d,"interval_ms":10}`, workers, target)), &job)
	if job.ID == "" || job.Type != "counter" {
		t.Fatalf("submitted %+v", job)
	}

	var final api.Job
	decode(cli("wait", "--json", job.ID), &final)
	var detail struct {
		Total int `json:"total"`
	}
	if err := json.Unmarshal(final.Detail, &detail); err != nil || final.State != api.StateFinished || detail.Total != workers*target {
		t.Fatalf("job ended %s with detail %s (%v), want finished with total %d", final.State, final.Detail, err, workers*target)
	}

	var got api.Job
	decode(cli("get", "--json", job.ID), &got)
	if got.ID != job.ID || got.State != api.StateFinished {
		t.Fatalf("get: %+v", got)
	}
	var page jobPage
	decode(cli("list", "--json", "--all", "--type", "counter"), &page)
	if !containsJob(page.Jobs, job.ID) {
		t.Fatalf("list lacks %s: %+v", job.ID, page.Jobs)
	}
	var nodes struct{ Nodes []api.Node }
	decode(cli("nodes", "--json"), &nodes)
	kinds := map[string]int{}
	for _, n := range nodes.Nodes {
		kinds[n.Kind]++
	}
	if kinds[api.NodeJobMaster] != 1 || kinds[api.NodeWorker] != 2 {
		t.Fatalf("nodes by kind %v", kinds)
	}
	var ws struct {
		Workers  []api.Worker
		Progress progress
	}
	decode(cli("workers", "--json", job.ID), &ws)
	if p := ws.Progress; len(ws.Workers) > 0 && (p.Done != workers*target || p.Total != workers*target) {
		t.Fatalf("workers of a finished job report %+v", p)
	}

	// People's output: submit --wait shows progress and the result.
	r := cli("submit", "--type", "counter", "--config", `{"workers":2,"target":10,"interval_ms":10}`, "--wait")
	if r.code != 0 || !strings.Contains(r.stdout, " finished  20/20 100%") || !strings.Contains(r.stdout, `"total":20`) {
		t.Fatalf("submit --wait: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A canceled job: wait exits 3.
	var long api.Job
	decode(cli("submit", "--json", "--id", "long-e2e", "--type", "counter", "--config", `{"workers":2,"target":100000,"interval_ms":50}`), &long)
	if r := cli("cancel", "long-e2e"); r.code != 0 || !strings.HasPrefix(r.stdout, "long-e2e ") {
		t.Fatalf("cancel: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = cli("wait", "--wait-timeout", "25s", "long-e2e")
	if r.code != exitJobNotOK || !strings.Contains(r.stdout, "long-e2e canceled") {
		t.Fatalf("wait on a canceled job: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// As an anonymous client: the data buckets work, internal subjects
	// and the work bucket are refused by the server.
	in := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(in, []byte("hello trust"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := cli("put", "data", in); r.code != 0 {
		t.Fatalf("put into data: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := cli("get-object", "data", "in.txt"); r.code != 0 || r.stdout != "hello trust" {
		t.Fatalf("get-object: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	if r := cli("put", "work", in); r.code == 0 {
		t.Fatalf("an anonymous client wrote into the work bucket: %s", r.stdout)
	}
	anonymousRefused(t, env["DROVER_NATS_URL"], "drover.p2p.manager.hb", "$KV.drover_jobs."+job.ID,
		"$JS.API.STREAM.DELETE.KV_drover_jobs", "$JS.API.CONSUMER.CREATE.drover_events")

	if r := cli("submit", "--type", "no-such-type"); r.code != exitError || !strings.HasPrefix(r.stderr, "error: unknown_type: ") {
		t.Fatalf("unknown type: exit %d %q", r.code, r.stderr)
	}
	if r := cli("get", "a.b"); r.code != exitError || !strings.HasPrefix(r.stderr, "error: invalid_argument: ") {
		t.Fatalf("hostile id: exit %d %q", r.code, r.stderr)
	}

	// The history of a job that ended before the call.
	if r := cli("events", job.ID); r.code != 0 || !strings.Contains(r.stdout, job.ID+" state finished") {
		t.Fatalf("events: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Client and server are the same build.
	var ver struct {
		Client  struct{ Version string }
		Servers []serverVersion
	}
	decode(cli("version", "--json"), &ver)
	if ver.Client.Version == "" || len(ver.Servers) != 1 || ver.Servers[0].Version != ver.Client.Version {
		t.Fatalf("version: %+v", ver)
	}

	pids := d.pids()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.exitWithin(20 * time.Second); code != 0 {
		t.Fatalf("launcher exit %d after SIGTERM", code)
	}
	if _, err := os.Stat(data[1]); !os.IsNotExist(err) {
		t.Errorf("--temp data %s still there: %v", data[1], err)
	}
	if left, _ := os.ReadDir(d.cmd.Dir); len(left) != 0 {
		t.Errorf("drover dev left %d entries where it ran", len(left))
	}
	if left, _ := os.ReadDir(bin); len(left) != 1 {
		t.Errorf("drover dev wrote next to itself: %d entries", len(left))
	}
	for name, pid := range pids {
		if alive(pid) {
			t.Errorf("%s (pid %d) still running after the launcher stopped", name, pid)
		}
	}
}

func containsJob(jobs []api.Job, id string) bool {
	for _, j := range jobs {
		if j.ID == id {
			return true
		}
	}
	return false
}
