package jobmanager_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/jobs/builtin"
	"github.com/drover-run/drover/pkg/api"
)

type httpAnswer struct {
	status int
	header http.Header
	body   []byte
	reply  api.Reply
}

func do(t *testing.T, method, url, body string) httpAnswer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := httpAnswer{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &a.reply)
	return a
}

// code is the error code of an answer, "" if it is not an API error.
func (a httpAnswer) code() api.Code {
	if a.reply.Error == nil {
		return ""
	}
	return a.reply.Error.Code
}

// TestHTTPErrorsAndForwarding drives the HTTP API over a real system: each
// error code with its status, hostile ids and oversized bodies, and the
// edge cases of forwarding /api/v1/jobs/{id}/... to a job's master.
func TestHTTPErrorsAndForwarding(t *testing.T) {
	sys := testsys.Start(t, builtin.TestRegistry())
	addr := testsys.FreeAddr(t)
	sys.AddJobManagerHTTP("jm", addr)
	sys.AddJobMaster("m0")
	sys.AddWorker("w0")
	sys.WaitReady(1, 1)
	base := "http://" + addr
	ctx := context.Background()

	// A running job, a job no node can take, a finished job.
	if a := do(t, "POST", base+"/api/v1/jobs", `{"id":"run1","type":"counter","config":{"workers":1,"target":1000000,"interval_ms":5}}`); a.status != 200 {
		t.Fatalf("submit: %d %s", a.status, a.body)
	}
	if a := do(t, "POST", base+"/api/v1/jobs", `{"id":"stuck1","type":"counter","selectors":{"zone":"nowhere"}}`); a.status != 200 {
		t.Fatalf("submit: %d %s", a.status, a.body)
	}
	if a := do(t, "POST", base+"/api/v1/jobs", `{"id":"done1","type":"counter","config":{"workers":1,"target":1}}`); a.status != 200 {
		t.Fatalf("submit: %d %s", a.status, a.body)
	}
	if j, err := sys.WaitJob("done1", 20*time.Second); err != nil || j.State != api.StateFinished {
		t.Fatalf("done1: %+v %v", j, err)
	}
	natstest.Eventually(t, 10*time.Second, "run1 serves /status", func() bool {
		return do(t, "GET", base+"/api/v1/jobs/run1/status", "").status == 200
	})

	big := `{"type":"counter","config":{"pad":"` + strings.Repeat("x", api.MaxPayload) + `"}}`
	long := strings.Repeat("a", 65)
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     api.Code
	}{
		// The NATS API's codes, mapped to statuses.
		{"submit again, same spec", "POST", "/api/v1/jobs", `{"id":"done1","type":"counter","config":{"workers":1,"target":1}}`, 200, ""},
		{"same id, other spec", "POST", "/api/v1/jobs", `{"id":"done1","type":"counter"}`, 409, api.CodeAlreadyExists},
		{"unknown type", "POST", "/api/v1/jobs", `{"type":"nope"}`, 422, api.CodeUnknownType},
		{"malformed body", "POST", "/api/v1/jobs", `{"type":`, 400, api.CodeInvalidArgument},
		{"oversized body", "POST", "/api/v1/jobs", big, 413, api.CodeTooLarge},
		{"missing job", "GET", "/api/v1/jobs/missing", "", 404, api.CodeNotFound},
		{"bad state filter", "GET", "/api/v1/jobs?state=sleeping", "", 400, api.CodeInvalidArgument},
		{"bad limit", "GET", "/api/v1/jobs?limit=x", "", 400, api.CodeInvalidArgument},
		{"list", "GET", "/api/v1/jobs?state=finished&limit=10", "", 200, ""},
		{"workers", "GET", "/api/v1/jobs/run1/workers", "", 200, ""},
		{"workers of a missing job", "GET", "/api/v1/jobs/missing/workers", "", 404, api.CodeNotFound},
		{"cancel a missing job", "POST", "/api/v1/jobs/missing/cancel", "", 404, api.CodeNotFound},
		{"nodes", "GET", "/api/v1/nodes", "", 200, ""},
		// Hostile ids never reach a subject or a key.
		{"id with a dot", "GET", "/api/v1/jobs/a.b", "", 400, api.CodeInvalidArgument},
		{"id star", "GET", "/api/v1/jobs/%2A", "", 400, api.CodeInvalidArgument},
		{"id gt", "GET", "/api/v1/jobs/%3E", "", 400, api.CodeInvalidArgument},
		{"id with a space", "GET", "/api/v1/jobs/a%20b", "", 400, api.CodeInvalidArgument},
		{"id of 65 characters", "GET", "/api/v1/jobs/" + long, "", 400, api.CodeInvalidArgument},
		{"cancel a hostile id", "POST", "/api/v1/jobs/a.b/cancel", "", 400, api.CodeInvalidArgument},
		{"forward to a hostile id", "GET", "/api/v1/jobs/%2A/status", "", 400, api.CodeInvalidArgument},
		{"forward to a wildcard id", "GET", "/api/v1/jobs/%3E/status", "", 400, api.CodeInvalidArgument},
		// Routes the job manager does not have.
		{"unknown API path", "GET", "/api/v1/things", "", 404, api.CodeNotFound},
		{"unknown version", "GET", "/api/v2/jobs", "", 404, api.CodeNotFound},
		{"wrong method on jobs", "PUT", "/api/v1/jobs", "{}", 405, api.CodeInvalidArgument},
		{"wrong method on a job", "PUT", "/api/v1/jobs/run1", "", 405, api.CodeInvalidArgument},
		{"delete a running job", "DELETE", "/api/v1/jobs/run1", "", 412, api.CodeFailedPrecondition},
		{"wrong method on cancel", "GET", "/api/v1/jobs/run1/cancel", "", 405, api.CodeInvalidArgument},
		{"wrong method on workers", "POST", "/api/v1/jobs/run1/workers", "", 405, api.CodeInvalidArgument},
		// Forwarding to the job's master.
		{"a master route", "GET", "/api/v1/jobs/run1/status", "", 200, ""},
		{"a route the master lacks", "GET", "/api/v1/jobs/run1/nope", "", 404, api.CodeNotFound},
		{"a method the master's route lacks", "POST", "/api/v1/jobs/run1/status", "", 405, api.CodeInvalidArgument},
		{"an oversized forwarded body", "POST", "/api/v1/jobs/run1/status", big, 413, api.CodeTooLarge},
		{"a job of no master yet", "GET", "/api/v1/jobs/stuck1/status", "", 412, api.CodeFailedPrecondition},
		{"a finished job", "GET", "/api/v1/jobs/done1/status", "", 412, api.CodeFailedPrecondition},
		{"a missing job's route", "GET", "/api/v1/jobs/missing/status", "", 404, api.CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, tt.method, base+tt.path, tt.body)
			if a.status != tt.status || a.code() != tt.code {
				t.Fatalf("%s %s = %d %q, want %d %q; body %.200s", tt.method, tt.path, a.status, a.code(), tt.status, tt.code, a.body)
			}
			if tt.code != "" && a.code().HTTPStatus() != a.status && a.status != http.StatusMethodNotAllowed {
				t.Errorf("code %s answered with %d, its mapping says %d", a.code(), a.status, a.code().HTTPStatus())
			}
			if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q, want JSON", ct)
			}
		})
	}
	if a := do(t, "PUT", base+"/api/v1/jobs", "{}"); a.header.Get("Allow") != "GET, POST" {
		t.Errorf("405 on /api/v1/jobs: Allow %q, want \"GET, POST\"", a.header.Get("Allow"))
	}
	if a := do(t, "GET", base+"/api/v1/jobs/run1/nope", ""); !strings.Contains(a.reply.Error.Message, "run1 has no route") {
		t.Errorf("a route the master lacks: the 404 should come from the master, got %q", a.reply.Error.Message)
	}

	// The master's node dies: until the leader notices, the job is still
	// running but nobody answers (503); then it waits for a node (412).
	sys.Crash("m0")
	if a := do(t, "GET", base+"/api/v1/jobs/run1/status", ""); a.status != 503 || a.code() != api.CodeUnavailable ||
		strings.Contains(a.reply.Error.Message, "nats") {
		t.Fatalf("forward to a dead master (a coded message, no internal text): %d %s", a.status, a.body)
	}
	natstest.Eventually(t, 10*time.Second, "412 once the job waits for a node", func() bool {
		return do(t, "GET", base+"/api/v1/jobs/run1/status", "").status == 412
	})
	if j, _ := sys.Client.Get(ctx, "run1"); j == nil || j.State != api.StatePending {
		t.Fatalf("run1 after its node died: %+v", j)
	}
}
