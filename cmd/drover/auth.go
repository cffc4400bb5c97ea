package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/drover-run/drover/internal/auth"
	"github.com/drover-run/drover/pkg/topics"
)

// authFlags configure `drover auth init`.
type authFlags struct {
	buckets     string
	noAnonymous bool
	rotate      bool
}

func authCommand() *command {
	return &command{
		name:    "auth",
		args:    "init DIR",
		summary: "Generate a deployment's NATS identities (one nkey per role) and the server's authorization config into DIR.",
		setup: func(fs *flag.FlagSet) runner {
			f := &authFlags{}
			fs.StringVar(&f.buckets, "buckets", strings.Join(auth.DefaultDataBuckets, ","), "object-store `buckets` clients and jobs may use, comma-separated")
			fs.BoolVar(&f.noAnonymous, "no-anonymous", false, "refuse connections without credentials (default: they get the client role)")
			fs.BoolVar(&f.rotate, "rotate", false, "replace every existing key (restart the server and every process afterwards)")
			return func(ctx context.Context, c *cli, args []string) error {
				if err := requireArgs(args, 2, 2, "init DIR"); err != nil {
					return err
				}
				if args[0] != "init" {
					return usagef("unknown auth command %q (want: auth init DIR)", args[0])
				}
				return c.authInit(args[1], f)
			}
		},
	}
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func (c *cli) authInit(dir string, f *authFlags) error {
	space, err := topics.New(c.g.prefix)
	if err != nil {
		return usagef("--prefix: %v", err)
	}
	buckets := splitList(f.buckets)
	for _, b := range buckets {
		if err := topics.ValidateID("bucket", b); err != nil {
			return usagef("--buckets: %v", err)
		}
	}
	d, err := auth.Init(dir, auth.Options{Space: space, Anonymous: !f.noAnonymous, Rotate: f.rotate,
		Perm: topics.PermOptions{DataBuckets: buckets, WorkBucket: auth.DefaultWorkBucket}})
	if err != nil {
		return err
	}
	rel := func(p string) string {
		if r, err := filepath.Rel(".", p); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
		return p
	}
	if c.g.json {
		files := map[string]string{"server_config": d.ServerConfig(), "compose_env": filepath.Join(d.Dir, auth.ComposeEnvFile)}
		for _, r := range topics.Roles {
			files[string(r)] = d.SeedFile(r)
		}
		return printJSON(c.stdout, map[string]any{"dir": d.Dir, "files": files,
			"jobmaster_identity": d.Public(topics.RoleJobMaster)})
	}
	fmt.Fprintf(c.stdout, "Wrote NATS identities for namespace %q to %s (seeds are secret: mode 0600).\n", space.Prefix(), rel(d.Dir))
	fmt.Fprintf(c.stdout, "  server authorization: %s (include it in the nats-server config)\n", rel(d.ServerConfig()))
	for _, r := range topics.Roles {
		fmt.Fprintf(c.stdout, "  %-10s %s  (env: %s)\n", r, rel(d.SeedFile(r)), rel(filepath.Join(d.Dir, string(r)+".env")))
	}
	fmt.Fprintf(c.stdout, "  docker compose: docker compose --env-file %s up -d\n", rel(filepath.Join(d.Dir, auth.ComposeEnvFile)))
	if !f.noAnonymous {
		fmt.Fprintln(c.stdout, "Connections without credentials get the client role (submit, get, list, cancel, watch).")
	}
	return nil
}
