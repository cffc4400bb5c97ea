package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The failover phase measures the failover figures in this run: it builds
// the e2e test binary and runs its failover benchmarks (real processes,
// kill -9, default timings, a NATS server of their own): one master
// (BenchmarkFailover), a whole node's masters (BenchmarkMassFailover) and
// the leader (BenchmarkLeaderFailover), each on the heartbeat (or lease)
// path and on the $SYS disconnect path. A full run copies their files to
// bench/results/, which the table quotes when the phase is left out.

// failoverFiles are the benchmarks' result files, by name under bench/results.
var failoverFiles = []string{"failover.json", "mass_failover.json", "leader_failover.json"}

// failover runs the three benchmarks and records where their files are.
func (b *bench) failover() error {
	dir, err := os.MkdirTemp("", "drover-bench-failover-")
	if err != nil {
		return err
	}
	b.failoverDir = dir // removed by run, after the results are read
	test := filepath.Join(dir, "e2e.test")
	build := exec.Command("go", "test", "-c", "-o", test, "./e2e")
	build.Dir = b.o.root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build the e2e benchmarks: %w\n%s", err, out)
	}
	trials := fmt.Sprint(b.o.failoverTrials)
	runs := []struct {
		name string
		args []string
	}{
		{"failover.json", []string{"-test.bench", "^BenchmarkFailover$", "-test.benchtime", trials + "x",
			"-failover.trials", trials, "-failover.out"}},
		{"leader_failover.json", []string{"-test.bench", "^BenchmarkLeaderFailover$", "-test.benchtime", trials + "x",
			"-failover.trials", trials, "-leader-failover.out"}},
		{"mass_failover.json", []string{"-test.bench", "^BenchmarkMassFailover$", "-test.benchtime", "1x",
			"-mass.jobs", fmt.Sprint(b.o.massJobs), "-mass.out"}},
	}
	for _, r := range runs {
		out := filepath.Join(dir, r.name)
		args := append([]string{"-test.run", "^$", "-test.timeout", "30m"}, r.args...)
		args = append(args, out)
		t0 := time.Now()
		cmd := exec.Command(test, args...)
		cmd.Dir = filepath.Join(b.o.root, "e2e")
		log, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w\n%s", strings.Join(r.args[:2], " "), err, tail(log, 40))
		}
		if _, err := os.Stat(out); err != nil {
			return fmt.Errorf("%s wrote no figures:\n%s", r.args[1], tail(log, 40))
		}
		logf("failover: %s measured in %s", r.name, time.Since(t0).Round(time.Second))
	}
	return nil
}

// failoverPath is where a failover benchmark's file is read from: this
// run's, if the phase ran, else the one a full run left in bench/results.
func (b *bench) failoverPath(name string) string {
	if b.failoverDir != "" {
		return filepath.Join(b.failoverDir, name)
	}
	return filepath.Join(b.o.root, "bench", "results", name)
}

// keepFailover copies this run's failover files to bench/results (a full
// run only: a quick run's figures are not for the docs).
func (b *bench) keepFailover() error {
	if b.failoverDir == "" || b.o.quick {
		return nil
	}
	for _, name := range failoverFiles {
		data, err := os.ReadFile(filepath.Join(b.failoverDir, name))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(b.o.root, "bench", "results", name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// tail returns the last n lines of out that are not the processes' JSON
// log lines (the benchmark's own lines say what failed).
func tail(out []byte, n int) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "{") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
