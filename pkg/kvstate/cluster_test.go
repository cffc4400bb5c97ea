package kvstate_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/pkg/kvstate"
	"github.com/drover-run/drover/pkg/topics"
)

// TestFencingOnAReplicatedStream runs the fence on a 3-node cluster with
// R3 buckets. There the stream leader answers "busy" (10164) to a check on
// a subject another check is in flight for: parallel fenced writes of one
// writer must all land, and a stale writer must still be refused.
func TestFencingOnAReplicatedStream(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a 3-node cluster")
	}
	servers := natstest.RunCluster(t, 3)
	nc, err := nats.Connect(servers[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	var st *kvstate.Store
	// Each attempt has kvstate's own operation bound: a request a busy new
	// cluster lost (no answer) is sent again, not waited on for the whole
	// test (a CI run on a loaded machine spent its 60 s in one attempt).
	natstest.Eventually(t, 45*time.Second, "R3 buckets", func() bool {
		actx, acancel := context.WithTimeout(context.Background(), kvstate.DefaultTimeout)
		defer acancel()
		st, err = kvstate.Open(actx, js, topics.MustNew("r3"), kvstate.Options{Replicas: 3})
		if err != nil {
			t.Logf("open R3 buckets: %v", err)
		}
		return err == nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, fence, err := st.AdvanceEpoch(ctx, "j", func(*kvstate.MasterRecord) {})
	if err != nil {
		t.Fatal(err)
	}
	kv := st.Business("j", fence, nil)
	const n = 40
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := kv.Put(ctx, fmt.Sprintf("k%d", i), []byte("v"))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("parallel fenced write by the current epoch failed: %v", err)
		}
	}
	// Reads on R3 go through the stream leader: every acknowledged write is
	// seen, a deleted key is not found.
	for i := range n {
		v, rev, err := kv.Get(ctx, fmt.Sprintf("k%d", i))
		if err != nil || string(v) != "v" || rev == 0 {
			t.Fatalf("leader read of k%d: %q rev %d, %v", i, v, rev, err)
		}
	}
	if err := kv.Delete(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := kv.Get(ctx, "k1"); !errors.Is(err, kvstate.ErrNotFound) {
		t.Fatalf("deleted key: %v, want ErrNotFound", err)
	}
	if _, _, err := kv.Get(ctx, "never"); !errors.Is(err, kvstate.ErrNotFound) {
		t.Fatalf("missing key: %v, want ErrNotFound", err)
	}
	if m, _, err := st.GetMaster(ctx, "j"); err != nil || m.Epoch != 1 {
		t.Fatalf("master record through the leader: %+v %v", m, err)
	}
	if _, _, err := st.AdvanceEpoch(ctx, "j", func(*kvstate.MasterRecord) {}); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "k0", []byte("zombie")); !errors.Is(err, kvstate.ErrStaleEpoch) {
		t.Fatalf("stale write on R3: %v, want ErrStaleEpoch", err)
	}
}
