package main

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/drover-run/drover/pkg/topics"
)

// writeContext writes a natscli context file under dir/nats/context.
func writeContext(t *testing.T, dir, name string, ctx map[string]string) {
	t.Helper()
	p := filepath.Join(dir, "nats", "context")
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ctx)
	if err := os.WriteFile(filepath.Join(p, name+".json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestConnectionPrecedence checks each layer of connSettings against the
// next: flags over DROVER_*, over NATS_*, over the context (--context, else
// NATS_CONTEXT, else the selected one), over the default; XDG_CONFIG_HOME
// moves the contexts; a bad context name is refused, not followed.
func TestConnectionPrecedence(t *testing.T) {
	home := t.TempDir()
	xdg := t.TempDir()
	writeContext(t, filepath.Join(home, ".config"), "prod", map[string]string{
		"url": "nats://prod:4222", "user": "ctxuser", "password": "ctxpass", "creds": "~/prod.creds", "description": "x"})
	writeContext(t, filepath.Join(home, ".config"), "picked", map[string]string{"url": "nats://picked:4222"})
	writeContext(t, xdg, "prod", map[string]string{"url": "nats://xdg-prod:4222"})
	if err := os.WriteFile(filepath.Join(home, ".config", "nats", "context.txt"), []byte("picked\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		url, from  string
		user, cred string
		err        string
	}{
		{"selected context", nil, nil, "nats://picked:4222", "context picked", "", "", ""},
		{"--context", nil, []string{"--context", "prod"}, "nats://prod:4222", "context prod", "ctxuser", filepath.Join(home, "prod.creds"), ""},
		{"NATS_CONTEXT", map[string]string{"NATS_CONTEXT": "prod"}, nil, "nats://prod:4222", "context prod", "ctxuser", filepath.Join(home, "prod.creds"), ""},
		{"--context over NATS_CONTEXT", map[string]string{"NATS_CONTEXT": "prod"}, []string{"--context", "picked"}, "nats://picked:4222", "context picked", "", "", ""},
		{"NATS_URL over context", map[string]string{"NATS_URL": "nats://env:1", "NATS_USER": "envuser"}, []string{"--context", "prod"}, "nats://env:1", "NATS_URL", "envuser", filepath.Join(home, "prod.creds"), ""},
		{"DROVER over NATS", map[string]string{"NATS_URL": "nats://env:1", "DROVER_NATS_URL": "nats://drover:2", "NATS_CREDS": "/n.creds", "DROVER_NATS_CREDS": "/d.creds"}, nil, "nats://drover:2", "DROVER_NATS_URL", "", "/d.creds", ""},
		{"flags over all", map[string]string{"DROVER_NATS_URL": "nats://drover:2", "DROVER_NATS_USER": "du"}, []string{"-s", "nats://flag:3", "--user", "fu", "--creds", "/f.creds", "--context", "prod"}, "nats://flag:3", "--server", "fu", "/f.creds", ""},
		{"XDG_CONFIG_HOME", map[string]string{"XDG_CONFIG_HOME": xdg}, []string{"--context", "prod"}, "nats://xdg-prod:4222", "context prod", "", "", ""},
		{"missing context", nil, []string{"--context", "nope"}, "", "", "", "", "nats context add nope"},
		{"path in name", nil, []string{"--context", "../../etc/passwd"}, "", "", "", "", "not a valid context name"},
		{"dot name", nil, []string{"--context", ".hidden"}, "", "", "", "", "not a valid context name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"HOME": home}
			for k, v := range tt.env {
				env[k] = v
			}
			c := newCLI(nil, &strings.Builder{}, &strings.Builder{}, func(k string) string { return env[k] })
			fs := flag.NewFlagSet("drover", flag.ContinueOnError)
			c.registerGlobals(fs)
			if _, err := parseInterspersed(fs, tt.args); err != nil {
				t.Fatal(err)
			}
			s, err := c.connSettings()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || s.url != tt.url || s.urlFrom != tt.from || s.auth.NATSUser != tt.user || s.auth.NATSCreds != tt.cred {
				t.Fatalf("url %s from %s user %q creds %q (%v); want %s from %s user %q creds %q",
					s.url, s.urlFrom, s.auth.NATSUser, s.auth.NATSCreds, err, tt.url, tt.from, tt.user, tt.cred)
			}
		})
	}
}

// TestContextConnectsWithItsCredentials runs a server that requires a
// user and password and lists jobs through a context that has them (and
// through NATS_URL with --user/--password), and is refused without.
func TestContextConnectsWithItsCredentials(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		Users: []*server.User{{Username: "alice", Password: "s3cret"}}})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(srv.Shutdown)
	// The job manager's list answer, from a connection with the password.
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("alice", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if _, err := nc.Subscribe(topics.MustNew("drover").APIList(), func(m *nats.Msg) { _ = m.Respond([]byte(`{"jobs":[]}`)) }); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	home := t.TempDir()
	writeContext(t, filepath.Join(home, ".config"), "dev", map[string]string{
		"url": srv.ClientURL(), "user": "alice", "password": "s3cret"})
	ctx := deadline(t, 20*time.Second)
	env := map[string]string{"HOME": home}
	if r := runCLI(t, ctx, env, "", "--context", "dev", "--json", "list"); r.code != 0 || !strings.Contains(r.stdout, `"jobs"`) {
		t.Fatalf("--context dev: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	env["NATS_URL"] = srv.ClientURL()
	if r := runCLI(t, ctx, env, "", "--user", "alice", "--password", "s3cret", "list"); r.code != 0 {
		t.Fatalf("NATS_URL with --user: exit %d %s", r.code, r.stderr)
	}
	if r := runCLI(t, ctx, env, "", "--timeout", "1s", "list"); r.code != exitError || !strings.Contains(r.stderr, "from NATS_URL") {
		t.Fatalf("without credentials: exit %d %s", r.code, r.stderr)
	}
}
