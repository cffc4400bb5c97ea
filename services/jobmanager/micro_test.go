package jobmanager_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/drover-run/drover/internal/buildinfo"
	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/jobs/builtin"
	"github.com/drover-run/drover/pkg/api"
)

// gather sends a request to a $SRV subject until want instances answer
// (a replica may still be starting), and returns their answers.
func gather(t *testing.T, nc *nats.Conn, subject string, want int) [][]byte {
	t.Helper()
	var out [][]byte
	natstest.Eventually(t, 10*time.Second, subject+" answered by every instance", func() bool {
		out = gatherOnce(t, nc, subject, want)
		return len(out) == want
	})
	return out
}

func gatherOnce(t *testing.T, nc *nats.Conn, subject string, want int) [][]byte {
	t.Helper()
	inbox := nats.NewInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	timeout := time.After(time.Second)
	for len(out) < want {
		select {
		case m := <-ch:
			out = append(out, m.Data)
		case <-timeout:
			return out
		}
	}
	return out
}

// TestAPIIsAMicroService checks what `nats micro ls/info/stats drover` rely
// on: every replica answers PING, INFO and STATS under the name drover with
// the build's version, the endpoints are the v1 subjects in the replicas'
// queue group with their metadata, errors carry the micro headers beside
// the JSON body, and STATS counts the requests.
func TestAPIIsAMicroService(t *testing.T) {
	sys := testsys.Start(t, builtin.TestRegistry())
	sys.AddJobManager("jm-a")
	sys.AddJobManager("jm-b")
	sys.AddJobMaster("m0")
	sys.AddWorker("w0")
	sys.WaitReady(1, 1)
	nc := sys.Client.Conn()

	replicas := map[string]bool{}
	for _, b := range gather(t, nc, "$SRV.PING.drover", 2) {
		var p micro.Ping
		if err := json.Unmarshal(b, &p); err != nil || p.Name != "drover" || p.Version != buildinfo.Version() {
			t.Fatalf("ping %s: %v", b, err)
		}
		replicas[p.Metadata["replica"]] = true
	}
	if !replicas["jm-a"] || !replicas["jm-b"] {
		t.Fatalf("replicas answering: %v", replicas)
	}
	var info micro.Info
	if err := json.Unmarshal(gather(t, nc, "$SRV.INFO.drover", 2)[0], &info); err != nil {
		t.Fatal(err)
	}
	subjects := map[string]micro.EndpointInfo{}
	for _, e := range info.Endpoints {
		subjects[e.Subject] = e
		if e.QueueGroup != "drover-jobmanager" || e.Metadata["request"] == "" || !strings.HasPrefix(e.Metadata["http"], "GET ") && !strings.HasPrefix(e.Metadata["http"], "POST ") && !strings.HasPrefix(e.Metadata["http"], "DELETE ") {
			t.Errorf("endpoint %+v", e)
		}
	}
	sp := sys.Client.Space()
	for _, s := range []string{sp.APISubmit(), sp.APIGet(), sp.APIList(), sp.APICancel(), sp.APIDelete(), sp.APIWorkers(), sp.APIEvents(), sp.APINodes()} {
		if _, ok := subjects[s]; !ok {
			t.Errorf("no endpoint on %s in %+v", s, info.Endpoints)
		}
	}
	if len(info.Endpoints) != 8 {
		t.Errorf("%d endpoints", len(info.Endpoints))
	}

	// Job-master and worker nodes are services too, with their load.
	for kind, svc := range map[string]string{"jobmaster": "drover-jobmaster", "worker": "drover-worker"} {
		var ni micro.Info
		if err := json.Unmarshal(gather(t, nc, "$SRV.INFO."+svc, 1)[0], &ni); err != nil {
			t.Fatal(err)
		}
		if ni.Metadata["kind"] != kind || ni.Metadata["capacity"] == "" || ni.Version != buildinfo.Version() {
			t.Errorf("%s info %+v", svc, ni)
		}
		var st micro.Stats
		if err := json.Unmarshal(gather(t, nc, "$SRV.STATS."+svc, 1)[0], &st); err != nil || len(st.Endpoints) != 1 {
			t.Fatalf("%s stats: %+v %v", svc, st, err)
		}
		var load struct {
			Load     *int `json:"load"`
			Capacity int  `json:"capacity"`
		}
		if err := json.Unmarshal(st.Endpoints[0].Data, &load); err != nil || load.Load == nil || load.Capacity < 1 {
			t.Errorf("%s stats data: %s %v", svc, st.Endpoints[0].Data, err)
		}
		var node api.Node
		msg, err := nc.Request(st.Endpoints[0].Subject, nil, 5*time.Second)
		if err != nil || json.Unmarshal(msg.Data, &node) != nil || node.Kind != kind || node.Capacity < 1 {
			t.Errorf("%s status: %v %v", svc, msg, err)
		}
	}

	// An error: the JSON body and the headers.
	msg, err := nc.Request(sp.APIGet(), []byte(`{"id":"missing"}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var rep api.Reply
	if err := json.Unmarshal(msg.Data, &rep); err != nil || rep.Error == nil || rep.Error.Code != api.CodeNotFound {
		t.Fatalf("body %s", msg.Data)
	}
	if msg.Header.Get(micro.ErrorCodeHeader) != "404" || !strings.HasPrefix(msg.Header.Get(micro.ErrorHeader), "not_found: ") {
		t.Fatalf("headers %v", msg.Header)
	}
	msg, err = nc.Request(sp.APIGet(), []byte(`{"id":"bad\nid"}`), 5*time.Second)
	if err != nil || msg.Header.Get(micro.ErrorCodeHeader) != "400" || strings.ContainsAny(msg.Header.Get(micro.ErrorHeader), "\r\n") {
		t.Fatalf("hostile id: %v %v", msg, err)
	}
	// A success has no error headers, and its list is present.
	msg, err = nc.Request(sp.APIList(), []byte(`{}`), 5*time.Second)
	if err != nil || msg.Header.Get(micro.ErrorHeader) != "" || string(msg.Data) != `{"jobs":[]}` {
		t.Fatalf("list: %s %v %v", msg.Data, msg.Header, err)
	}

	// STATS counts every request, across the replicas.
	const gets = 5
	for range gets {
		if _, err := nc.Request(sp.APIGet(), []byte(`{"id":"nope"}`), 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	natstest.Eventually(t, 5*time.Second, "stats to count the gets", func() bool {
		requests, notFound := 0, 0
		for _, b := range gather(t, nc, "$SRV.STATS.drover", 2) {
			var st micro.Stats
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatal(err)
			}
			for _, e := range st.Endpoints {
				if e.Name == "jobs-get" {
					requests += e.NumRequests
					var d struct {
						Errors map[string]int `json:"errors"`
					}
					_ = json.Unmarshal(e.Data, &d)
					notFound += d.Errors["not_found"]
				}
			}
		}
		return requests == gets+2 && notFound == gets+1
	})
}
