// Package auth generates a deployment's NATS identities and the server's
// authorization configuration: one nkey per role (pkg/topics Roles), one
// for the job manager's system-account access, and the accounts block that
// gives each identity its role's permissions and maps anonymous
// connections to the client role. `drover auth init`, `drover dev` and the
// end-to-end harness all use it, so tests run the production configuration.
//
// Secrets (the nkey seeds) stay in the directory given, mode 0600; the
// server configuration holds only public keys.
package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/nats-io/nkeys"

	"github.com/drover-run/drover/pkg/topics"
)

// Account names of the generated configuration.
const (
	// Account holds Drover's state and subjects, and every role.
	Account = "DROVER"
	// SystemAccount is the server's system account.
	SystemAccount = "SYS"
)

// File names in a deployment directory.
const (
	ServerConfigFile = "nats-auth.conf"
	ComposeEnvFile   = "compose.env"
	systemIdentity   = "jobmanager-sys"
)

// ClientUser is the user anonymous connections are mapped to.
const ClientUser = "client"

// ErrNotInitialized is returned by Load for a directory without keys.
var ErrNotInitialized = errors.New("auth: not initialized (run drover auth init)")

// Options shape the generated configuration.
type Options struct {
	Space topics.Space
	Perm  topics.PermOptions
	// Anonymous maps connections without credentials to the client role;
	// otherwise they are refused.
	Anonymous bool
	// Rotate replaces every existing key with a new one.
	Rotate bool
}

// Deployment is an initialized directory: the identities' public keys
// and where their seeds are.
type Deployment struct {
	Dir    string
	public map[string]string // identity (role or system) -> public nkey
}

func identities() []string {
	out := make([]string, 0, len(topics.Roles)+1)
	for _, r := range topics.Roles {
		out = append(out, string(r))
	}
	return append(out, systemIdentity)
}

// SeedFile is where role's nkey seed is kept.
func (d *Deployment) SeedFile(r topics.Role) string { return filepath.Join(d.Dir, string(r)+".nk") }

// SystemSeedFile is the job manager's system-account seed.
func (d *Deployment) SystemSeedFile() string { return filepath.Join(d.Dir, systemIdentity+".nk") }

// ServerConfig is the path of the server's authorization configuration.
func (d *Deployment) ServerConfig() string { return filepath.Join(d.Dir, ServerConfigFile) }

// Public returns role's public nkey.
func (d *Deployment) Public(r topics.Role) string { return d.public[string(r)] }

// Init creates the directory's keys where missing (all of them with
// Rotate) and writes the server configuration and the environment files.
func Init(dir string, o Options) (*Deployment, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	d := &Deployment{Dir: abs, public: map[string]string{}}
	for _, id := range identities() {
		path := filepath.Join(abs, id+".nk")
		pub, err := readSeed(path)
		if err == nil && !o.Rotate {
			d.public[id] = pub
			continue
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, fmt.Errorf("auth: create key: %w", err)
		}
		seed, _ := kp.Seed()
		pub, _ = kp.PublicKey()
		if err := writeFile(path, append(seed, '\n'), 0o600); err != nil {
			return nil, err
		}
		d.public[id] = pub
	}
	conf, err := d.serverConfig(o)
	if err != nil {
		return nil, err
	}
	if err := writeFile(d.ServerConfig(), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	for _, r := range topics.Roles {
		if err := writeFile(filepath.Join(abs, string(r)+".env"), []byte(envFile(d.Env(r))), 0o600); err != nil {
			return nil, err
		}
	}
	// Compose gets the seeds as values: a container's user can not read
	// a host file of mode 0600. This file is as secret as the seeds.
	compose := []string{
		"# Secret. docker compose --env-file " + filepath.Join(abs, ComposeEnvFile) + " up -d",
		"DROVER_AUTH_CONF=" + d.ServerConfig(),
		"DROVER_JOBMASTER_IDENTITIES=" + d.Public(topics.RoleJobMaster),
	}
	for _, id := range []string{string(topics.RoleJobManager), systemIdentity, string(topics.RoleJobMaster), string(topics.RoleWorker)} {
		seed, err := os.ReadFile(filepath.Join(abs, id+".nk"))
		if err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		name := strings.ToUpper(strings.ReplaceAll(id, "-sys", "_SYSTEM"))
		compose = append(compose, "DROVER_"+name+"_NKEY_SEED="+strings.TrimSpace(string(seed)))
	}
	if err := writeFile(filepath.Join(abs, ComposeEnvFile), []byte(strings.Join(compose, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	return d, nil
}

// Load reads an initialized directory.
func Load(dir string) (*Deployment, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	d := &Deployment{Dir: abs, public: map[string]string{}}
	for _, id := range identities() {
		pub, err := readSeed(filepath.Join(abs, id+".nk"))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s has no %s.nk", ErrNotInitialized, abs, id)
		}
		if err != nil {
			return nil, err
		}
		d.public[id] = pub
	}
	return d, nil
}

// Env is the DROVER_* environment that gives a process role's identity:
// its seed file and, for the job manager, system-account access and the
// job-master identity whose disconnects it trusts.
func (d *Deployment) Env(r topics.Role) []string {
	env := []string{"DROVER_NATS_NKEY_SEED_FILE=" + d.SeedFile(r)}
	if r == topics.RoleJobManager {
		env = append(env,
			"DROVER_NATS_SYSTEM_NKEY_SEED_FILE="+d.SystemSeedFile(),
			"DROVER_JOBMASTER_IDENTITIES="+d.Public(topics.RoleJobMaster))
	}
	return env
}

func envFile(env []string) string {
	return "# source with: set -a; . <this file>; set +a\n" + strings.Join(env, "\n") + "\n"
}

// serverConfig renders the accounts block. Strings are quoted: subjects
// start with '$', which the configuration format would read as a variable.
func (d *Deployment) serverConfig(o Options) (string, error) {
	var b strings.Builder
	q := strconv.Quote
	list := func(subjects []string) string {
		s := append([]string(nil), subjects...)
		sort.Strings(s)
		parts := make([]string, len(s))
		for i, v := range s {
			parts[i] = q(v)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	perms := func(p topics.Permissions) string {
		pub := "allow: " + list(p.Publish)
		if len(p.Publish) == 0 {
			pub = `deny: [">"]`
		}
		s := fmt.Sprintf("{ publish: { %s }, subscribe: { allow: %s }", pub, list(p.Subscribe))
		if p.AllowResponses {
			s += ", allow_responses: true"
		}
		return s + " }"
	}
	fmt.Fprintf(&b, "# Drover NATS authorization for namespace %q, generated by `drover auth init`.\n", o.Space.Prefix())
	b.WriteString("# Holds public keys only; the seeds are the .nk files beside it. Regenerate, do not edit.\n")
	b.WriteString("accounts {\n")
	fmt.Fprintf(&b, "  %s {\n    jetstream: enabled\n    users: [\n", Account)
	var clientPerms string
	for _, r := range topics.Roles {
		p, err := o.Space.Permissions(r, o.Perm)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "      # %s\n      { nkey: %s, permissions: %s }\n", r, q(d.Public(r)), perms(p))
		if r == topics.RoleClient {
			clientPerms = perms(p)
		}
	}
	if o.Anonymous {
		fmt.Fprintf(&b, "      # connections without credentials\n      { user: %s, permissions: %s }\n", q(ClientUser), clientPerms)
	}
	b.WriteString("    ]\n  }\n")
	fmt.Fprintf(&b, "  %s {\n    users: [\n      # the job manager: disconnect events of %s only\n", SystemAccount, Account)
	fmt.Fprintf(&b, "      { nkey: %s, permissions: { publish: { deny: [\">\"] }, subscribe: { allow: [%s] } } }\n",
		q(d.public[systemIdentity]), q(topics.SystemDisconnects(Account)))
	b.WriteString("    ]\n  }\n}\n")
	fmt.Fprintf(&b, "system_account: %s\n", SystemAccount)
	if o.Anonymous {
		fmt.Fprintf(&b, "no_auth_user: %s\n", q(ClientUser))
	}
	return b.String(), nil
}

func readSeed(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(b))))
	if err != nil {
		return "", fmt.Errorf("auth: %s: %w", path, err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return "", fmt.Errorf("auth: %s: %w", path, err)
	}
	if !strings.HasPrefix(pub, "U") {
		return "", fmt.Errorf("auth: %s is not a user key", path)
	}
	return pub, nil
}

// writeFile replaces path atomically with mode perm.
func writeFile(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: %w", err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	return nil
}
