package jobmanager_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/pkg/api"
)

// TestDurableIntakeNeverLoops: requests that can never be stored are
// acknowledged at the first delivery and answered on the rejections
// subject with their coded error; the stream and the consumer's window
// end empty, and a good request behind them is stored.
func TestDurableIntakeNeverLoops(t *testing.T) {
	sys := startSystem(t, 0, 0)
	ctx := context.Background()
	nc, js := natstest.Connect(t, sys.Server)
	space := sys.Client.Space()

	var mu sync.Mutex
	rejected := map[uint64]api.Event{}
	sub, err := nc.Subscribe(space.RequestRejections(), func(m *nats.Msg) {
		var ev api.Event
		if json.Unmarshal(m.Data, &ev) == nil {
			mu.Lock()
			rejected[ev.Request] = ev
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	cfg, _ := json.Marshal(map[string]string{"bucket": "in", "prefix": strings.Repeat("a", 600<<10)})
	bad := map[string]api.Code{
		`{"type":`:                        api.CodeInvalidArgument,
		`{"id":"x1","type":"nosuchtype"}`: api.CodeUnknownType,
		`{"id":"x2","type":"wordcount","config":` + string(cfg) + `}`: api.CodeTooLarge,
	}
	want := map[uint64]api.Code{}
	for body, code := range bad {
		ack, err := js.Publish(ctx, space.JobRequests(), []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		want[ack.Sequence] = code
	}
	// A wordcount prefix of '<' is stored as it came, not six times larger.
	lt := json.RawMessage(`{"bucket":"in","prefix":"` + strings.Repeat("<", 200<<10) + `"}`)
	if err := sys.Client.SubmitDurable(ctx, api.Spec{ID: "good", Type: "wordcount", Config: lt}); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 10*time.Second, "every bad request rejected", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(rejected) == len(want)
	})
	mu.Lock()
	for seq, code := range want {
		if ev := rejected[seq]; ev.Kind != api.EventRequestRejected || ev.Error == nil || ev.Error.Code != code {
			t.Errorf("request %d: rejection %+v, want code %s", seq, ev, code)
		}
	}
	mu.Unlock()
	natstest.Eventually(t, 10*time.Second, "good request stored", func() bool {
		_, err := sys.Client.Get(ctx, "good")
		return err == nil
	})
	st, err := js.Stream(ctx, space.RequestsStream())
	if err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 5*time.Second, "requests stream and window empty", func() bool {
		si, err := st.Info(ctx)
		if err != nil || si.State.Msgs != 0 {
			return false
		}
		ci, err := st.Consumer(ctx, "jobmanager")
		if err != nil {
			return false
		}
		info := ci.CachedInfo()
		return info.NumAckPending == 0 && info.NumRedelivered == 0
	})
}

// TestTooLargeIsDecidedOnTheStoredEncoding: the request path answers
// too_large (not internal) for a job whose record would be too large, and
// stores a request whose characters JSON escapes by default.
func TestTooLargeIsDecidedOnTheStoredEncoding(t *testing.T) {
	sys := startSystem(t, 0, 0)
	ctx := context.Background()
	lt := json.RawMessage(`{"bucket":"in","prefix":"` + strings.Repeat("<", 200<<10) + `"}`)
	if _, err := sys.Client.Submit(ctx, api.Spec{ID: "lt", Type: "wordcount", Config: lt}); err != nil {
		t.Fatalf("200 KB of '<': %v", err)
	}
	j, err := sys.Client.Get(ctx, "lt")
	if err != nil || len(j.Config) > 201<<10 {
		t.Fatalf("stored config of %d bytes: %v", len(j.Config), err)
	}
	big, _ := json.Marshal(map[string]string{"bucket": "in", "prefix": strings.Repeat("a", 600<<10)})
	if _, err := sys.Client.Submit(ctx, api.Spec{ID: "big", Type: "wordcount", Config: big}); api.ErrorCode(err) != api.CodeTooLarge {
		t.Fatalf("600 KB config: %v, want too_large", err)
	}
}
