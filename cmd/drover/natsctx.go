package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// natsContext is what drover reads of a natscli context file
// (<config>/nats/context/<name>.json); other fields are ignored.
type natsContext struct {
	URL         string `json:"url"`
	User        string `json:"user"`
	Password    string `json:"password"`
	Token       string `json:"token"`
	Creds       string `json:"creds"`
	NKey        string `json:"nkey"`
	Cert        string `json:"cert"`
	Key         string `json:"key"`
	CA          string `json:"ca"`
	InboxPrefix string `json:"inbox_prefix"`
}

// natsConfigDir is natscli's configuration directory:
// $XDG_CONFIG_HOME/nats, else ~/.config/nats.
func natsConfigDir(getenv func(string) string) (string, error) {
	if x := getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "nats"), nil
	}
	home := getenv("HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", fmt.Errorf("no home directory for the nats contexts: %w", err)
		}
	}
	return filepath.Join(home, ".config", "nats"), nil
}

// selectedContext is the context `nats context select` chose ("" if none).
func selectedContext(getenv func(string) string) string {
	dir, err := natsConfigDir(getenv)
	if err != nil {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(dir, "context.txt"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// validContextName refuses names that would reach outside the context
// directory.
func validContextName(name string) bool {
	return name != "" && !strings.ContainsAny(name, `/\`) && !strings.HasPrefix(name, ".") && !strings.Contains(name, "..")
}

// loadContext reads the named context, expanding ~ in its file paths as
// natscli does.
func loadContext(getenv func(string) string, name string) (*natsContext, error) {
	if !validContextName(name) {
		return nil, fmt.Errorf("context %q: not a valid context name", name)
	}
	dir, err := natsConfigDir(getenv)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "context", name+".json")
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, fmt.Errorf("context %q: no %s (create it with `nats context add %s`)", name, path, name)
	}
	if err != nil {
		return nil, fmt.Errorf("context %q: %w", name, err)
	}
	var ctx natsContext
	if err := json.Unmarshal(b, &ctx); err != nil {
		return nil, fmt.Errorf("context %q: %s: %w", name, path, err)
	}
	home := getenv("HOME")
	for _, p := range []*string{&ctx.Creds, &ctx.NKey, &ctx.Cert, &ctx.Key, &ctx.CA} {
		if home != "" && strings.HasPrefix(*p, "~/") {
			*p = filepath.Join(home, (*p)[2:])
		}
	}
	return &ctx, nil
}
