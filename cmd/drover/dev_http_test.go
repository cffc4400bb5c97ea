package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDevHTTPTokens: drover dev writes a private token file with an admin
// token into its data dir, shows that token, keeps it across runs, and
// leaves tokens the user configured alone.
func TestDevHTTPTokens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nats")
	noenv := func(string) string { return "" }
	env, banner, err := devHTTPAuth(dir, "127.0.0.1:8080", noenv)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, devTokensFile)
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", st, err)
	}
	admin, err := readDevAdminToken(file)
	if err != nil || len(admin) < 32 {
		t.Fatalf("admin token %q: %v", admin, err)
	}
	if len(env) != 1 || !strings.HasSuffix(env[0], file) || !strings.HasPrefix(env[0], "DROVER_HTTP_TOKENS_FILE=") {
		t.Fatalf("env %v", env)
	}
	if !strings.Contains(banner, admin) || !strings.Contains(banner, "http://127.0.0.1:8080/ui/") {
		t.Fatalf("banner %q lacks the token or the console", banner)
	}
	_, again, err := devHTTPAuth(dir, "127.0.0.1:8080", noenv)
	if err != nil || !strings.Contains(again, admin) {
		t.Fatalf("second run: %q %v; want the same token", again, err)
	}
	env, banner, err = devHTTPAuth(dir, "127.0.0.1:8080", func(k string) string {
		if k == "DROVER_HTTP_TOKENS" {
			return "admin:mine-0123456789abcdef"
		}
		return ""
	})
	if err != nil || env != nil || strings.Contains(banner, admin) {
		t.Fatalf("with the user's tokens: env %v banner %q %v", env, banner, err)
	}
}
