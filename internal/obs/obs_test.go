package obs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/drover-run/drover/internal/buildinfo"
)

func TestJSONLogsAreOneObjectPerLineWithTheJobFields(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger("json", "info", zapcore.AddSync(&buf))
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hidden at info")
	log.With(zap.String("node", "m1")).Info("master assigned", zap.String("job_id", "j1"), zap.Uint64("epoch", 2))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d lines at level info, want 1 (debug hidden): %q", len(lines), buf.String())
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
		t.Fatalf("not JSON: %q: %v", lines[0], err)
	}
	for k, want := range map[string]any{"level": "info", "msg": "master assigned", "job_id": "j1", "epoch": 2.0, "node": "m1"} {
		if line[k] != want {
			t.Errorf("%s = %v, want %v (line %s)", k, line[k], want, lines[0])
		}
	}
	for _, k := range []string{"time", "caller"} {
		if _, ok := line[k]; !ok {
			t.Errorf("no %s in %s", k, lines[0])
		}
	}
}

func TestConsoleLogsAreForPeople(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger("console", "debug", zapcore.AddSync(&buf))
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("worker follows new master", zap.String("job_id", "j1"))
	out := buf.String()
	if !strings.Contains(out, "DEBUG") || !strings.Contains(out, "worker follows new master") ||
		!strings.Contains(out, `{"job_id": "j1"}`) || strings.HasPrefix(out, "{") {
		t.Fatalf("console line %q", out)
	}
}

func TestLoggerRefusesBadLevelOrFormat(t *testing.T) {
	if _, err := NewLogger("json", "loud"); err == nil {
		t.Error("level loud accepted")
	}
	if _, err := NewLogger("xml", "info"); err == nil {
		t.Error("format xml accepted")
	}
}

func get(t *testing.T, h http.Handler, path string) (int, map[string]any, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	body, _ := io.ReadAll(rec.Body)
	var out map[string]any
	_ = json.Unmarshal(body, &out)
	return rec.Code, out, string(body)
}

func TestHealthReadinessAndMetrics(t *testing.T) {
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "drover", Subsystem: "test", Name: "things_total", Help: "Things."})
	reg.MustRegister(c)
	c.Add(3)
	natsUp := true
	srv := NewServer(reg, map[string]Check{
		"nats": func(context.Context) error {
			if !natsUp {
				return errors.New("not connected to NATS")
			}
			return nil
		},
		"state": func(context.Context) error { return nil },
	}, func() map[string]any { return map[string]any{"leader": true} })

	if code, out, body := get(t, srv.Mux, "/healthz"); code != 200 || out["status"] != "ok" {
		t.Errorf("/healthz = %d %s", code, body)
	}
	if code, out, body := get(t, srv.Mux, "/readyz"); code != 200 || out["status"] != "ready" || out["leader"] != true {
		t.Errorf("/readyz = %d %s", code, body)
	}
	natsUp = false
	code, out, body := get(t, srv.Mux, "/readyz")
	failed, _ := out["failed"].(map[string]any)
	if code != 503 || out["status"] != "not ready" || failed["nats"] != "not connected to NATS" || failed["state"] != nil {
		t.Errorf("/readyz without NATS = %d %s", code, body)
	}
	if code, _, _ := get(t, srv.Mux, "/healthz"); code != 200 {
		t.Errorf("/healthz without NATS = %d: the process is alive", code)
	}
	code, _, body = get(t, srv.Mux, "/metrics")
	if code != 200 || !strings.Contains(body, "drover_test_things_total 3") || !strings.Contains(body, "go_goroutines") ||
		!strings.Contains(body, `drover_build_info{goversion="go`) || !strings.Contains(body, `version="`+buildinfo.Version()+`"} 1`) {
		t.Errorf("/metrics = %d %.300s", code, body)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
