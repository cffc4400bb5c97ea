package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// devTokensFile is the job manager's HTTP token file in drover dev's data dir.
const devTokensFile = "http-tokens"

// devHTTPAuth gives drover dev's job manager an HTTP token file in the data
// directory (kept across runs, so a console login survives a restart) and
// returns its environment and the banner lines showing the admin token.
// Tokens the user configured in the environment are left alone.
func devHTTPAuth(dataDir, httpAddr string, getenv func(string) string) (env []string, banner string, err error) {
	console := ""
	if httpAddr != "" && !strings.HasSuffix(httpAddr, ":0") {
		console = fmt.Sprintf("Console: http://%s/ui/", httpAddr)
	}
	if getenv("DROVER_HTTP_TOKENS_FILE") != "" || getenv("DROVER_HTTP_TOKENS") != "" {
		return nil, console + " (log in with a token of DROVER_HTTP_TOKENS_FILE / DROVER_HTTP_TOKENS)\n", nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, "", fmt.Errorf("drover dev: data dir: %w", err)
	}
	file, err := filepath.Abs(filepath.Join(dataDir, devTokensFile))
	if err != nil {
		return nil, "", err
	}
	admin, err := readDevAdminToken(file)
	if errors.Is(err, fs.ErrNotExist) {
		admin = newToken()
		content := "# drover dev's HTTP tokens: <role> <token> (roles read, submit, admin)\n" +
			"admin " + admin + "\nread " + newToken() + "\n"
		err = os.WriteFile(file, []byte(content), 0o600)
	}
	if err != nil {
		return nil, "", fmt.Errorf("drover dev: HTTP tokens %s: %w", file, err)
	}
	if console == "" {
		console = "HTTP API"
	}
	banner = fmt.Sprintf("%s  admin token: %s\n  (curl -H 'Authorization: Bearer %s' …; all tokens in %s)\n", console, admin, admin, file)
	return []string{"DROVER_HTTP_TOKENS_FILE=" + file}, banner, nil
}

// readDevAdminToken finds the admin token of an existing token file.
func readDevAdminToken(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "admin" {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("no admin token; delete the file to have a new one made")
}

// newToken returns a random bearer token.
func newToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
