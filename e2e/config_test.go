package e2e

import (
	"bytes"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTimingInvariantsRefused: a timing schedule that could run two live
// copies of a worker, or stop healthy workers on a master failover, is
// refused at start-up by every binary with exit code 2 and a message
// naming the broken rule; the same binary with a valid schedule starts.
func TestTimingInvariantsRefused(t *testing.T) {
	valid := FastTiming().env()
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"self fence after worker timeout: two live copies",
			map[string]string{"DROVER_WORKER_SELF_FENCE": "5s", "DROVER_WORKER_TIMEOUT": "4s"},
			"DROVER_WORKER_SELF_FENCE (5s) must be shorter than DROVER_WORKER_TIMEOUT (4s)"},
		{"self fence equal to worker timeout",
			map[string]string{"DROVER_WORKER_SELF_FENCE": "4s", "DROVER_WORKER_TIMEOUT": "4s"},
			"must be shorter than DROVER_WORKER_TIMEOUT"},
		{"self fence within a master failover: healthy workers stopped",
			map[string]string{"DROVER_WORKER_SELF_FENCE": "2s"},
			"must be longer than a master failover"},
		{"master timeout of one heartbeat",
			map[string]string{"DROVER_MASTER_TIMEOUT": "200ms"},
			"DROVER_MASTER_TIMEOUT (200ms) must be at least two heartbeats"},
	}
	for _, kind := range []Kind{JobManager, JobMaster, Worker} {
		for _, tc := range cases {
			t.Run(string(kind)+"/"+tc.name, func(t *testing.T) {
				env := map[string]string{}
				for k, v := range valid {
					env[k] = v
				}
				for k, v := range tc.env {
					env[k] = v
				}
				code, out := runBinary(t, kind, env, 10*time.Second)
				if code != 2 {
					t.Fatalf("exit code %d, want 2; output:\n%s", code, out)
				}
				if !strings.Contains(out, tc.want) || !strings.Contains(out, "invalid configuration") {
					t.Fatalf("output does not say %q:\n%s", tc.want, out)
				}
			})
		}
		t.Run(string(kind)+"/valid schedule starts", func(t *testing.T) {
			// No NATS listens there: a valid process keeps trying, it does not exit.
			env := map[string]string{"DROVER_NATS_URL": "nats://127.0.0.1:1"}
			for k, v := range valid {
				env[k] = v
			}
			if code, out := runBinary(t, kind, env, time.Second); code != -1 {
				t.Fatalf("a valid schedule exited %d:\n%s", code, out)
			}
		})
	}
}

// runBinary runs a service binary with env and returns its exit code and
// output, or -1 if it was still running after within (it is then killed).
func runBinary(t *testing.T, kind Kind, env map[string]string, within time.Duration) (int, string) {
	t.Helper()
	cmd := exec.Command(Bin(kind))
	cmd.Env = []string{"DROVER_HTTP_ADDR=127.0.0.1:0", "DROVER_LOG_FORMAT=json"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode(), out.String()
	case <-time.After(within):
		_ = cmd.Process.Kill()
		<-done
		return -1, out.String()
	}
}
