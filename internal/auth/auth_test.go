package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/drover-run/drover/pkg/topics"
)

func opts() Options {
	return Options{Space: topics.MustNew("drover"), Anonymous: true,
		Perm: topics.PermOptions{DataBuckets: DefaultDataBuckets, WorkBucket: DefaultWorkBucket}}
}

func TestInitKeepsKeysAndRotates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	d, err := Init(dir, opts())
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(d.SeedFile(topics.RoleAdmin))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin seed: %v mode %v", err, st.Mode())
	}
	conf, err := os.ReadFile(d.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := os.ReadFile(d.SeedFile(topics.RoleAdmin))
	if strings.Contains(string(conf), strings.TrimSpace(string(seed))) || !strings.Contains(string(conf), d.Public(topics.RoleAdmin)) {
		t.Fatal("server configuration must hold the public key, never the seed")
	}
	again, err := Init(dir, opts())
	if err != nil || again.Public(topics.RoleWorker) != d.Public(topics.RoleWorker) {
		t.Fatalf("re-init changed the worker key: %v", err)
	}
	loaded, err := Load(dir)
	if err != nil || loaded.Public(topics.RoleJobMaster) != d.Public(topics.RoleJobMaster) {
		t.Fatalf("load: %v", err)
	}
	o := opts()
	o.Rotate = true
	rotated, err := Init(dir, o)
	if err != nil || rotated.Public(topics.RoleWorker) == d.Public(topics.RoleWorker) {
		t.Fatalf("rotate kept the worker key: %v", err)
	}
	if _, err := Load(t.TempDir()); !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("load of an empty dir: %v", err)
	}
	env := strings.Join(d.Env(topics.RoleJobManager), " ")
	for _, want := range []string{"DROVER_NATS_NKEY_SEED_FILE=", "DROVER_NATS_SYSTEM_NKEY_SEED_FILE=", "DROVER_JOBMASTER_IDENTITIES=" + d.Public(topics.RoleJobMaster)} {
		if !strings.Contains(env, want) {
			t.Errorf("job manager env %q lacks %q", env, want)
		}
	}
}

// TestServerEnforces runs a server on the generated configuration: the
// roles connect with their seeds, a wrong seed and (with --no-anonymous)
// no credentials are refused, anonymous maps to client.
func TestServerEnforces(t *testing.T) {
	for _, anonymous := range []bool{true, false} {
		o := opts()
		o.Anonymous = anonymous
		d, err := Init(filepath.Join(t.TempDir(), "auth"), o)
		if err != nil {
			t.Fatal(err)
		}
		so, err := d.ServerOptions("127.0.0.1", -1, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		so.NoLog = true
		s, err := server.NewServer(so)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("server not ready")
		}
		t.Cleanup(s.Shutdown)
		for _, r := range topics.Roles {
			nko, err := nats.NkeyOptionFromSeed(d.SeedFile(r))
			if err != nil {
				t.Fatal(err)
			}
			nc, err := nats.Connect(s.ClientURL(), nko)
			if err != nil {
				t.Fatalf("%s: %v", r, err)
			}
			nc.Close()
		}
		nc, err := nats.Connect(s.ClientURL())
		if anonymous {
			if err != nil {
				t.Fatalf("anonymous refused: %v", err)
			}
			// The client role: the API yes, an internal subject no.
			errs := make(chan error, 1)
			nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err })
			_ = nc.Publish("drover.p2p.manager.hb", nil)
			_ = nc.Flush()
			select {
			case err := <-errs:
				if !errors.Is(err, nats.ErrPermissionViolation) {
					t.Fatalf("anonymous heartbeat: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("anonymous heartbeat not refused")
			}
			nc.Close()
		} else if err == nil {
			nc.Close()
			t.Fatal("anonymous accepted with --no-anonymous")
		}
		// A seed of another deployment is refused.
		other, _ := Init(filepath.Join(t.TempDir(), "other"), o)
		nko, _ := nats.NkeyOptionFromSeed(other.SeedFile(topics.RoleAdmin))
		if nc, err := nats.Connect(s.ClientURL(), nko); err == nil {
			nc.Close()
			t.Fatal("a foreign admin seed was accepted")
		}
	}
}
