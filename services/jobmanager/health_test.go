package jobmanager_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/jobs/builtin"
)

type readiness struct {
	status int
	ready  string
	leader any
	failed map[string]any
}

// readyz asks addr's /readyz; status 0 while nothing listens yet.
func readyz(t *testing.T, addr string) readiness {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return readiness{}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out struct {
		Status string         `json:"status"`
		Leader any            `json:"leader"`
		Failed map[string]any `json:"failed"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("/readyz on %s: %s: %v", addr, body, err)
	}
	return readiness{resp.StatusCode, out.Status, out.Leader, out.Failed}
}

// TestHealthOfEveryService checks /healthz and /readyz on the job manager,
// a job-master node and a worker node: ready while NATS and the buckets
// answer, the job manager saying whether it leads, 503 naming the failed
// check while NATS is down (the process stays healthy), ready again once
// NATS is back.
func TestHealthOfEveryService(t *testing.T) {
	sys := testsys.Start(t, builtin.TestRegistry())
	addrs := map[string]string{}
	for _, id := range []string{"jm-a", "jm-b", "m0", "w0"} {
		addrs[id] = testsys.FreeAddr(t)
	}
	sys.AddJobManagerHTTP("jm-a", addrs["jm-a"])
	natstest.Eventually(t, 10*time.Second, "jm-a leads", func() bool {
		return readyz(t, addrs["jm-a"]).leader == true
	})
	sys.AddJobManagerHTTP("jm-b", addrs["jm-b"])
	sys.AddJobMasterHTTP("m0", addrs["m0"])
	sys.AddWorkerHTTP("w0", addrs["w0"])
	sys.WaitReady(1, 1)
	defer sys.StopAll() // while NATS runs: stopping is quick then

	natstest.Eventually(t, 10*time.Second, "every service ready", func() bool {
		for _, addr := range addrs {
			if readyz(t, addr).status != 200 {
				return false
			}
		}
		return true
	})
	for id, addr := range addrs {
		if a := do(t, "GET", "http://"+addr+"/healthz", ""); a.status != 200 {
			t.Errorf("%s /healthz = %d %s", id, a.status, a.body)
		}
		if a := do(t, "GET", "http://"+addr+"/metrics", ""); a.status != 200 {
			t.Errorf("%s /metrics = %d", id, a.status)
		}
	}
	if a, b := readyz(t, addrs["jm-a"]).leader, readyz(t, addrs["jm-b"]).leader; a != true || b != false {
		t.Fatalf("leader: jm-a %v, jm-b %v; want jm-a only", a, b)
	}
	// The leader leaves: the other replica takes over and says so.
	sys.Stop("jm-a")
	delete(addrs, "jm-a")
	natstest.Eventually(t, 10*time.Second, "jm-b reports it leads", func() bool {
		return readyz(t, addrs["jm-b"]).leader == true
	})

	// NATS goes away: nobody is ready, everybody is alive.
	storeDir := filepath.Dir(sys.Server.JetStreamConfig().StoreDir)
	u, err := url.Parse(sys.Server.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	sys.Server.Shutdown()
	sys.Server.WaitForShutdown()
	for id, addr := range addrs {
		// Each client notices the lost connection on its own, within moments.
		natstest.Eventually(t, 5*time.Second, id+" not ready, naming NATS", func() bool {
			r := readyz(t, addr)
			return r.status == 503 && r.ready == "not ready" && r.failed["nats"] != nil
		})
		if a := do(t, "GET", "http://"+addr+"/healthz", ""); a.status != 200 {
			t.Errorf("%s /healthz without NATS = %d", id, a.status)
		}
	}

	// NATS comes back on the same port and store: ready again.
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true,
		StoreDir: storeDir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server did not restart")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	natstest.Eventually(t, 20*time.Second, "every service ready again", func() bool {
		for _, addr := range addrs {
			if readyz(t, addr).status != 200 {
				return false
			}
		}
		return true
	})
}
