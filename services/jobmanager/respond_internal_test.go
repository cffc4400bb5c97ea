package jobmanager

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/pkg/api"
)

// TestRespondNeverExceedsThePayloadLimitAndCountsFailures: a reply that
// would be over the connection's payload limit is answered too_large
// instead (the caller gets a coded answer, not a timeout), and a reply that
// can not be sent at all is logged and counted; both show in
// drover_jobmanager_api_respond_failures_total.
func TestRespondNeverExceedsThePayloadLimitAndCountsFailures(t *testing.T) {
	srv := natstest.RunServer(t)
	nc, _ := natstest.Connect(t, srv)
	caller, _ := natstest.Connect(t, srv)
	core, logs := observer.New(zap.WarnLevel)
	s := &Service{deps: Deps{NC: nc}, log: zap.New(core), metrics: newMetrics(prometheus.NewRegistry())}
	const subject = "drover.api.v1.jobs.get"

	inbox := caller.NewRespInbox()
	sub, err := caller.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	big := map[string]string{"detail": strings.Repeat("x", int(nc.MaxPayload()))}
	s.respond(inbox, subject, big, nil)
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no answer to a reply too large to send: %v", err)
	}
	var rep api.Reply
	if err := json.Unmarshal(msg.Data, &rep); err != nil || rep.Error == nil || rep.Error.Code != api.CodeTooLarge {
		t.Fatalf("answer %s (%v), want a too_large error", msg.Data, err)
	}
	if n := testutil.ToFloat64(s.metrics.respondFailures.WithLabelValues("jobs.get", "too_large")); n != 1 {
		t.Fatalf("too_large counted %v times, want 1", n)
	}

	// A reply that fits is sent as built and counts nothing.
	s.respond(inbox, subject, map[string]string{"ok": "yes"}, nil)
	if msg, err := sub.NextMsg(5 * time.Second); err != nil || !strings.Contains(string(msg.Data), `"ok":"yes"`) {
		t.Fatalf("small reply: %v %v", msg, err)
	}

	// The connection is gone: the reply is not sent, and that is logged
	// and counted rather than ignored.
	nc.Close()
	s.respond(inbox, subject, map[string]string{"ok": "yes"}, nil)
	if n := testutil.ToFloat64(s.metrics.respondFailures.WithLabelValues("jobs.get", "send")); n != 1 {
		t.Fatalf("send failure counted %v times, want 1", n)
	}
	if logs.FilterMessage("api reply not sent").Len() != 1 || logs.FilterMessage("api reply too large").Len() != 1 {
		t.Fatalf("log lines: %v", logs.All())
	}
}
