package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-run/drover/pkg/api"
)

// syncBuffer is a bytes.Buffer safe to read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// result is one CLI run.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the CLI in-process with env as its whole environment.
func runCLI(t *testing.T, ctx context.Context, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errb syncBuffer
	home := t.TempDir() // no nats context of the machine's user
	c := newCLI(strings.NewReader(stdin), &out, &errb, func(k string) string {
		if v, ok := env[k]; ok || k != "HOME" {
			return v
		}
		return home
	})
	code := c.run(ctx, args)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		args     []string
		wantPos  []string
		wantJSON bool
		wantN    int
	}{
		{[]string{"ID"}, []string{"ID"}, false, 0},
		{[]string{"ID", "--json"}, []string{"ID"}, true, 0},
		{[]string{"--json", "a", "-n", "3", "b"}, []string{"a", "b"}, true, 3},
		{[]string{"a", "--", "--json"}, []string{"a", "--json"}, false, 0},
		{[]string{"--n=2", "--", "-x"}, []string{"-x"}, false, 2},
		{nil, nil, false, 0},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			j := fs.Bool("json", false, "")
			n := fs.Int("n", 0, "")
			pos, err := parseInterspersed(fs, tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(pos) != fmt.Sprint(tt.wantPos) || *j != tt.wantJSON || *n != tt.wantN {
				t.Fatalf("got pos=%q json=%v n=%d, want %q %v %d", pos, *j, *n, tt.wantPos, tt.wantJSON, tt.wantN)
			}
		})
	}
}

func TestGlobalFlags(t *testing.T) {
	env := map[string]string{"DROVER_NATS_URL": "nats://env:1", "DROVER_PREFIX": "envp"}
	tests := []struct {
		name   string
		env    map[string]string
		args   []string
		url    string
		prefix string
		json   bool
	}{
		{"defaults", nil, []string{"list"}, defaultNATSURL, "drover", false},
		{"env", env, []string{"list"}, "nats://env:1", "envp", false},
		{"before command", env, []string{"--nats-url", "nats://a:2", "--json", "list"}, "nats://a:2", "envp", true},
		{"after command", env, []string{"list", "--prefix", "p2", "--nats-url=nats://b:3"}, "nats://b:3", "p2", false},
		{"after positional", nil, []string{"get", "ID", "--json"}, defaultNATSURL, "drover", true},
		{"-s", env, []string{"-s", "nats://s:4", "list"}, "nats://s:4", "envp", false},
		{"--server after", env, []string{"list", "--server", "nats://s:5"}, "nats://s:5", "envp", false},
		{"NATS_URL", map[string]string{"NATS_URL": "nats://natscli:1"}, []string{"list"}, "nats://natscli:1", "drover", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir() // no nats context selected
			c := newCLI(nil, &bytes.Buffer{}, &bytes.Buffer{}, func(k string) string {
				if k == "HOME" {
					return home
				}
				return tt.env[k]
			})
			top := flag.NewFlagSet("drover", flag.ContinueOnError)
			c.registerGlobals(top)
			if err := top.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			fs := flag.NewFlagSet("sub", flag.ContinueOnError)
			c.registerGlobals(fs)
			if _, err := parseInterspersed(fs, top.Args()[1:]); err != nil {
				t.Fatal(err)
			}
			cs, err := c.connSettings()
			if err != nil || cs.url != tt.url || c.g.prefix != tt.prefix || c.g.json != tt.json {
				t.Fatalf("got url=%s prefix=%s json=%v (%v)", cs.url, c.g.prefix, c.g.json, err)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "Usage: drover"},
		{"unknown command", []string{"frobnicate"}, `error: usage: unknown command "frobnicate"`},
		{"unknown flag", []string{"list", "--bogus"}, "error: usage: flag provided but not defined: -bogus"},
		{"get without id", []string{"get"}, "error: usage: missing job ID"},
		{"get two ids", []string{"get", "a", "b"}, "error: usage: unexpected arguments: b"},
		{"submit without type", []string{"submit"}, "error: usage: missing --type"},
		{"submit bad config", []string{"submit", "--type", "counter", "--config", "{nope"}, "error: usage: config is not valid JSON"},
		{"submit both configs", []string{"submit", "--type", "x", "--config", "{}", "--config-file", "f"}, "exclusive"},
		{"durable without id", []string{"submit", "--type", "x", "--durable"}, "--durable needs --id"},
		{"bad selector", []string{"submit", "--type", "x", "--selector", "novalue"}, "not key=value"},
		{"bad state", []string{"list", "--state", "sleeping"}, `--state "sleeping" is not a job state`},
		{"bad prefix", []string{"list", "--prefix", "a.b"}, "--prefix"},
		{"bad timeout", []string{"list", "--timeout", "0s"}, "--timeout must be positive"},
		{"completion tcsh", []string{"completion", "tcsh"}, "no completion for \"tcsh\""},
		{"service unknown", []string{"service", "nope"}, "unknown service \"nope\""},
		{"version args", []string{"version", "x"}, "unexpected arguments"},
		{"dev negative workers", []string{"dev", "--workers", "-1"}, "must not be negative"},
		{"dev negative http port", []string{"dev", "--http-base-port", "-1"}, "--http-base-port -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, ctx, nil, "", tt.args...)
			if r.code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr:\n%s", r.code, exitUsage, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("stderr %q does not contain %q", r.stderr, tt.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}, {"help", "submit"}, {"submit", "-h"}, {"wait", "--help"}} {
		r := runCLI(t, ctx, nil, "", args...)
		if r.code != exitOK || !strings.Contains(r.stdout, "Usage: drover") {
			t.Fatalf("%v: exit %d, stdout %q", args, r.code, r.stdout)
		}
	}
	r := runCLI(t, ctx, nil, "", "help", "submit")
	for _, want := range []string{"--type", "--config-file", "--durable", "--selector"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("submit help lacks %s:\n%s", want, r.stdout)
		}
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{usagef("x"), exitUsage},
		{fmt.Errorf("wrapped: %w", usagef("x")), exitUsage},
		{&api.Error{Code: api.CodeNotFound, Message: "no job"}, exitError},
		{&api.Error{Code: api.CodeInvalidArgument, Message: "bad id"}, exitError},
		{errors.New("boom"), exitError},
		{&jobEndedError{jobs: []*api.Job{{ID: "a", State: api.StateFailed}}}, exitJobNotOK},
		{context.Canceled, exitInterrupted},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestPrintError(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&api.Error{Code: api.CodeNotFound, Message: "job x not found"}, "error: not_found: job x not found\n"},
		{fmt.Errorf("ctx: %w", &api.Error{Code: api.CodeAlreadyExists, Message: "other spec"}), "error: already_exists: other spec\n"},
		{errors.New("disk on fire"), "error: internal: disk on fire\n"},
		{&jobEndedError{jobs: []*api.Job{{ID: "a"}}}, ""},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		printError(&b, "get", tt.err)
		if b.String() != tt.want {
			t.Errorf("printError(%v) = %q, want %q", tt.err, b.String(), tt.want)
		}
	}
}

func TestSubmitSpec(t *testing.T) {
	dir := t.TempDir()
	specFile := filepath.Join(dir, "spec.json")
	if err := os.WriteFile(specFile, []byte(`{"id":"from-file","type":"counter","config":{"workers":1},"selectors":{"zone":"a"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "cfg.json")
	if err := os.WriteFile(cfgFile, []byte("{\"workers\": 2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badSpec := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(badSpec, []byte(`{"type":"x","typo":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		stdin   string
		want    string // JSON of the spec
		wantErr string
	}{
		{"flags", []string{"--type", "counter", "--config", `{"workers":4,"target":100}`, "--id", "j1"},
			"", `{"id":"j1","type":"counter","config":{"workers":4,"target":100}}`, ""},
		{"selectors", []string{"--type", "t", "--selector", "zone=a", "--selector", "gpu=true"},
			"", `{"type":"t","selectors":{"gpu":"true","zone":"a"}}`, ""},
		{"config file", []string{"--type", "t", "--config-file", cfgFile},
			"", `{"type":"t","config":{"workers":2}}`, ""},
		{"config stdin", []string{"--type", "t", "--config-file", "-"},
			`[1,2]`, `{"type":"t","config":[1,2]}`, ""},
		{"spec file", []string{"--file", specFile},
			"", `{"id":"from-file","type":"counter","config":{"workers":1},"selectors":{"zone":"a"}}`, ""},
		{"spec file overridden", []string{"--file", specFile, "--id", "other", "--config", "{}", "--selector", "gpu=1"},
			"", `{"id":"other","type":"counter","config":{},"selectors":{"gpu":"1","zone":"a"}}`, ""},
		{"spec stdin", []string{"--file", "-"},
			`{"type":"counter"}`, `{"type":"counter"}`, ""},
		{"spec with unknown field", []string{"--file", badSpec}, "", "", "not a job spec"},
		{"missing file", []string{"--file", filepath.Join(dir, "nope.json")}, "", "", "no such file"},
		{"durable with id", []string{"--type", "t", "--id", "d1", "--durable"}, "", `{"id":"d1","type":"t"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("submit", flag.ContinueOnError)
			f := newSubmitFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			spec, err := f.spec(strings.NewReader(tt.stdin))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err) != exitUsage {
					t.Fatalf("err = %v, want a usage error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(spec)
			if string(got) != tt.want {
				t.Fatalf("spec = %s\nwant   %s", got, tt.want)
			}
		})
	}
}

// TestCompletion checks the script of each shell: the commands (not the
// hidden service entry), their flags, the global connection flags, and
// that the shell, where installed, parses the script.
func TestCompletion(t *testing.T) {
	for shell, wants := range map[string][]string{
		"bash": {"complete -F _drover drover", "submit) flags=", "--config-file", "--wait-timeout", "dev) flags=", "--http-base-port", "events) flags=", "--follow", "-s --server", "--context", "--tlsca", "--temp"},
		"zsh":  {"#compdef drover", "compdef _drover drover", "'events:Print a job'\\''s events", "events) flags=(", "--follow", "--monitor-port", "--context"},
		"fish": {"complete -c drover -n 'not __fish_seen_subcommand_from", "-a events -d", "'__fish_seen_subcommand_from events' -l follow", "-l context", "-s s", "-l state -x -a 'created pending"},
	} {
		t.Run(shell, func(t *testing.T) {
			r := runCLI(t, context.Background(), nil, "", "completion", shell)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			for _, want := range wants {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("completion lacks %q", want)
				}
			}
			if strings.Contains(r.stdout, "service") {
				t.Errorf("the hidden service command is completed")
			}
			if path, err := exec.LookPath(shell); err == nil && shell != "fish" {
				cmd := exec.Command(path, "-n")
				cmd.Stdin = strings.NewReader(r.stdout)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("%s -n: %v\n%s", shell, err, out)
				}
			}
		})
	}
	if r := runCLI(t, context.Background(), nil, "", "completion", "tcsh"); r.code != exitUsage {
		t.Errorf("tcsh: exit %d", r.code)
	}
}

func TestConnectFailureIsUnavailable(t *testing.T) {
	r := runCLI(t, context.Background(), nil, "", "--nats-url", "nats://127.0.0.1:1", "--timeout", "500ms", "get", "x")
	if r.code != exitError || !strings.HasPrefix(r.stderr, "error: unavailable: connect to NATS at nats://127.0.0.1:1") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

// deadline bounds a test's context.
func deadline(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
