package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/jobs/builtin"
	"github.com/drover-run/drover/pkg/api"
)

var seqRE = regexp.MustCompile(` seq=(\d+)$`)

// seqsOf returns the seq= of each event line, failing on a repeat or a
// sequence out of order.
func seqsOf(t *testing.T, out string) []uint64 {
	t.Helper()
	var seqs []uint64
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		m := seqRE.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line without seq: %q", l)
		}
		n, _ := strconv.ParseUint(m[1], 10, 64)
		if len(seqs) > 0 && n <= seqs[len(seqs)-1] {
			t.Fatalf("seq %d after %d:\n%s", n, seqs[len(seqs)-1], out)
		}
		seqs = append(seqs, n)
	}
	return seqs
}

// TestEventsOfARealJob runs the real services in-process and reads the
// history of a job that ended before the call, from a point in it, as
// JSON, and follows a running job until it ends.
func TestEventsOfARealJob(t *testing.T) {
	sys := testsys.Start(t, builtin.TestRegistry())
	sys.AddJobManager("jm")
	sys.AddJobMaster("m0")
	sys.AddWorker("w0")
	sys.WaitReady(1, 1)
	env := map[string]string{"NATS_URL": sys.Server.ClientURL(), "HOME": t.TempDir()}
	ctx := deadline(t, 60*time.Second)
	cli := func(args ...string) result { t.Helper(); return runCLI(t, ctx, env, "", args...) }

	if _, err := sys.Client.Submit(ctx, api.Spec{ID: "done1", Type: "counter",
		Config: json.RawMessage(`{"workers":2,"target":3,"interval_ms":1}`)}); err != nil {
		t.Fatal(err)
	}
	if j, err := sys.WaitJob("done1", 30*time.Second); err != nil || j.State != api.StateFinished {
		t.Fatalf("%v %v", j, err)
	}
	var r result
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		r = cli("events", "done1")
		if r.code == 0 && strings.Contains(r.stdout, "done1 state finished") {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("events: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	}
	if !strings.Contains(strings.Split(r.stdout, "\n")[0], "done1 state created epoch=0 reason=submitted") {
		t.Fatalf("first line: %s", r.stdout)
	}
	seqs := seqsOf(t, r.stdout)
	if len(seqs) < 4 {
		t.Fatalf("only %d events:\n%s", len(seqs), r.stdout)
	}
	// From a sequence on: the same tail.
	mid := seqs[len(seqs)/2]
	tail := cli("events", "done1", "--since", fmt.Sprint(mid))
	if got := seqsOf(t, tail.stdout); fmt.Sprint(got) != fmt.Sprint(seqs[len(seqs)/2:]) {
		t.Fatalf("--since %d gave %v, want %v", mid, got, seqs[len(seqs)/2:])
	}
	if r := cli("events", "done1", "--since", "1h"); r.code != 0 || len(seqsOf(t, r.stdout)) != len(seqs) {
		t.Fatalf("--since 1h: %d %s", r.code, r.stdout)
	}
	if r := cli("events", "done1", "--since", time.Now().Add(time.Minute).Format(time.RFC3339)); r.code != 0 || r.stdout != "" {
		t.Fatalf("--since the future: %d %q", r.code, r.stdout)
	}
	js := cli("--json", "events", "done1")
	lines := strings.Split(strings.TrimSpace(js.stdout), "\n")
	if len(lines) != len(seqs) {
		t.Fatalf("--json gave %d lines, want %d", len(lines), len(seqs))
	}
	for i, l := range lines {
		var obj struct{ Event api.StreamEvent }
		if err := json.Unmarshal([]byte(l), &obj); err != nil || obj.Event.Seq != seqs[i] || obj.Event.Job != "done1" {
			t.Fatalf("line %q: %v", l, err)
		}
	}
	for _, bad := range [][]string{{"events"}, {"events", "a", "b"}, {"events", "a", "--since", "soon"}} {
		if r := cli(bad...); r.code != exitUsage {
			t.Errorf("%v: exit %d, want usage", bad, r.code)
		}
	}
	if r := cli("events", "a.b"); r.code != exitError || !strings.Contains(r.stderr, "invalid_argument") {
		t.Errorf("dotted id: exit %d %q", r.code, r.stderr)
	}

	// --follow prints the history, then new events, and ends with the job.
	if _, err := sys.Client.Submit(ctx, api.Spec{ID: "run1", Type: "counter",
		Config: json.RawMessage(`{"workers":1,"target":100000,"interval_ms":5}`)}); err != nil {
		t.Fatal(err)
	}
	done := make(chan result, 1)
	go func() { done <- cli("events", "run1", "--follow") }()
	deadlineAt := time.Now().Add(20 * time.Second)
	for j, _ := sys.Client.Get(ctx, "run1"); j == nil || j.State != api.StateRunning; j, _ = sys.Client.Get(ctx, "run1") {
		if time.Now().After(deadlineAt) {
			t.Fatal("run1 never ran")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := sys.Client.Cancel(ctx, "run1"); err != nil {
		t.Fatal(err)
	}
	r = <-done
	if r.code != 0 || !strings.Contains(r.stdout, "run1 state created") || !strings.Contains(r.stdout, "run1 state canceled") {
		t.Fatalf("follow: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	all := cli("events", "run1")
	if got, want := seqsOf(t, r.stdout), seqsOf(t, all.stdout); fmt.Sprint(got) != fmt.Sprint(want[:len(got)]) {
		t.Fatalf("follow printed %v, history %v", got, want)
	}
}
