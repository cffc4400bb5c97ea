package jobmanager

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHTTPAuthConfig: the token table from the file and the variable, the
// anonymous default, and errors that name the line but never the token.
func TestHTTPAuthConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte("# comment\n\nadmin   aaaaaaaaaaaaaaaaaaaa\nread bbbbbbbbbbbbbbbbbbbb\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := (&Config{HTTPTokensFile: file, HTTPTokens: "submit:cccccccccccccccccccc"}).httpAuth()
	if err != nil {
		t.Fatal(err)
	}
	if len(a.tokens) != 3 || a.anonymous != RoleNone {
		t.Fatalf("tokens %d anonymous %s, want 3 and none", len(a.tokens), a.anonymous)
	}
	if a, _ := (&Config{}).httpAuth(); a.anonymous != RoleRead {
		t.Fatalf("no tokens: anonymous %s, want read", a.anonymous)
	}
	if a, _ := (&Config{HTTPAnonymous: "admin"}).httpAuth(); a.anonymous != RoleAdmin {
		t.Fatalf("explicitly opened: anonymous %s", a.anonymous)
	}
	secret := "dddddddddddddddddddd"
	for name, c := range map[string]Config{
		"unknown role":       {HTTPTokens: "root:" + secret},
		"role none":          {HTTPTokens: "none:" + secret},
		"short token":        {HTTPTokens: "read:short"},
		"no colon":           {HTTPTokens: secret},
		"token with a space": {HTTPTokens: "read:" + secret + " x"},
		"bad anonymous":      {HTTPAnonymous: "everyone"},
		"missing file":       {HTTPTokensFile: filepath.Join(t.TempDir(), "nope")},
	} {
		if _, err := c.httpAuth(); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error shows the token: %v", name, err)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad")
	_ = os.WriteFile(bad, []byte("read "+secret+"\nadmin "+secret+" extra\n"), 0o600)
	if _, err := (&Config{HTTPTokensFile: bad}).httpAuth(); err == nil || !strings.Contains(err.Error(), "line 2") || strings.Contains(err.Error(), secret) {
		t.Errorf("a bad file line: %v", err)
	}
}
