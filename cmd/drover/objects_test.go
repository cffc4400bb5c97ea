package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/natstest"
)

// TestObjectCommands: put files and stdin, list, download to stdout and to
// a file, delete by name and by prefix, and the errors a user meets.
func TestObjectCommands(t *testing.T) {
	srv := natstest.RunServer(t)
	env := map[string]string{"DROVER_NATS_URL": srv.ClientURL()}
	ctx := deadline(t, 30*time.Second)
	run := func(stdin string, args ...string) result { return runCLI(t, ctx, env, stdin, args...) }

	dir := t.TempDir()
	big := bytes.Repeat([]byte("lorem ipsum dolor\n"), 40000) // several chunks
	for name, data := range map[string][]byte{"a.txt": big, "b.txt": []byte("hello\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r := run("", "put", "corpus", filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt"), "--name-prefix", "books/")
	if r.code != 0 || !strings.Contains(r.stdout, "corpus/books/a.txt 703.1 KiB") || !strings.Contains(r.stdout, "corpus/books/b.txt 6 B") {
		t.Fatalf("put: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run("from stdin", "put", "corpus", "-", "--name", "notes", "--json"); r.code != 0 || !strings.Contains(r.stdout, `"name": "notes"`) {
		t.Fatalf("put stdin: %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = run("", "objects", "corpus")
	if r.code != 0 || len(lines(r.stdout)) != 4 || !strings.HasPrefix(lines(r.stdout)[1], "books/a.txt") {
		t.Fatalf("objects: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run("", "objects", "corpus", "--name-prefix", "books/", "--json")
	var list struct{ Objects []struct{ Name string } }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &list) != nil || len(list.Objects) != 2 {
		t.Fatalf("objects --json: %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	if r := run("", "get-object", "corpus", "notes"); r.code != 0 || r.stdout != "from stdin" {
		t.Fatalf("get-object: %d %q %s", r.code, r.stdout, r.stderr)
	}
	out := filepath.Join(dir, "copy.txt")
	if r := run("", "get-object", "corpus", "books/a.txt", "-o", out); r.code != 0 {
		t.Fatalf("get-object -o: %d %s", r.code, r.stderr)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, big) {
		t.Fatalf("downloaded %d bytes, want %d", len(got), len(big))
	}

	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"get-object", "corpus", "missing"}, exitError, "not_found"},
		{[]string{"get-object", "nobucket", "x"}, exitError, "not_found"},
		{[]string{"objects", "a.b"}, exitUsage, "invalid"},
		{[]string{"put", "corpus"}, exitUsage, "missing"},
		{[]string{"put", "corpus", "-"}, exitUsage, "--name"},
		{[]string{"put", "corpus", filepath.Join(dir, "nope")}, exitUsage, "no such file"},
		{[]string{"rm-object", "corpus"}, exitUsage, "not both or neither"},
	} {
		r := run("", tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.err) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, r.code, r.stderr, tc.code, tc.err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); err == nil {
		t.Error("a failed download left a file")
	}

	if r := run("", "rm-object", "corpus", "notes"); r.code != 0 || !strings.Contains(r.stdout, "deleted 1") {
		t.Fatalf("rm-object: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := run("", "rm-object", "corpus", "--name-prefix", "books/"); r.code != 0 || !strings.Contains(r.stdout, "deleted 2") {
		t.Fatalf("rm-object --name-prefix: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := run("", "objects", "corpus"); r.code != 0 || len(lines(r.stdout)) != 1 {
		t.Fatalf("objects after rm: %s", r.stdout)
	}
}
