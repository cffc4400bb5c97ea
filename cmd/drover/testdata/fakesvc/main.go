// Command fakesvc stands in for the jobmanager, jobmaster and worker
// binaries in the tests of `drover dev`: it reports the environment it got,
// connects with the identity it was given (DROVER_NATS_NKEY_SEED_FILE),
// registers itself in the nodes bucket as a real node does, and (as
// "jobmanager", which creates the bucket) answers the API calls the
// launcher makes before printing its banner. FAKE_EXIT_<node>=<code> makes it exit
// after FAKE_EXIT_AFTER (default 0s); FAKE_IGNORE_TERM=1 makes it ignore
// SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/topics"
)

func main() {
	role := filepath.Base(os.Args[0])
	node := os.Getenv("DROVER_NODE_ID")
	fmt.Printf("fake %s node=%s nats=%s prefix=%s format=%s http=%s identity=%s\n", role, node,
		os.Getenv("DROVER_NATS_URL"), os.Getenv("DROVER_PREFIX"), os.Getenv("DROVER_LOG_FORMAT"), os.Getenv("DROVER_HTTP_ADDR"),
		filepath.Base(os.Getenv("DROVER_NATS_NKEY_SEED_FILE")))
	fmt.Fprintf(os.Stderr, "fake %s writes to stderr too\n", node)

	sigs := make(chan os.Signal, 1)
	if os.Getenv("FAKE_IGNORE_TERM") == "1" {
		signal.Ignore(syscall.SIGTERM)
	} else {
		signal.Notify(sigs, syscall.SIGTERM)
	}
	if code := os.Getenv("FAKE_EXIT_" + node); code != "" {
		after, _ := time.ParseDuration(os.Getenv("FAKE_EXIT_AFTER"))
		go func() {
			time.Sleep(after)
			n, _ := strconv.Atoi(code)
			fmt.Printf("fake %s exiting with %d\n", node, n)
			os.Exit(n)
		}()
	}

	space := topics.MustNew(os.Getenv("DROVER_PREFIX"))
	opts := []nats.Option{nats.MaxReconnects(-1)}
	if r, err := topics.ParseRole(role); err == nil {
		opts = append(opts, nats.CustomInboxPrefix(space.InboxPrefix(r)))
	}
	if seed := os.Getenv("DROVER_NATS_NKEY_SEED_FILE"); seed != "" {
		o, err := nats.NkeyOptionFromSeed(seed)
		if err != nil {
			fmt.Fprintln(os.Stderr, "seed:", err)
			os.Exit(1)
		}
		opts = append(opts, o)
	}
	nc, err := nats.Connect(os.Getenv("DROVER_NATS_URL"), opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(1)
	}
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if role == "jobmanager" {
		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: space.NodesBucket()})
		if err != nil {
			fmt.Fprintln(os.Stderr, "nodes bucket:", err)
			os.Exit(1)
		}
		reply := func(m *nats.Msg, rep api.Reply) {
			b, _ := json.Marshal(rep)
			_ = m.Respond(b)
		}
		_, _ = nc.Subscribe(space.APIList(), func(m *nats.Msg) { reply(m, api.Reply{}) })
		_, _ = nc.Subscribe(space.APINodes(), func(m *nats.Msg) {
			var rep api.Reply
			keys, _ := kv.ListKeys(ctx)
			for k := range keys.Keys() {
				if e, err := kv.Get(ctx, k); err == nil {
					var n api.Node
					_ = json.Unmarshal(e.Value(), &n)
					rep.Nodes = append(rep.Nodes, n)
				}
			}
			reply(m, rep)
		})
	} else {
		b, _ := json.Marshal(api.Node{ID: node, Kind: role, Capacity: 1, StartedAt: time.Now()})
		go func() {
			for {
				if kv, err := js.KeyValue(ctx, space.NodesBucket()); err == nil {
					if _, err := kv.Put(ctx, role+"."+node, b); err != nil {
						fmt.Fprintln(os.Stderr, "presence:", err)
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	<-sigs
	fmt.Printf("fake %s stopping on SIGTERM\n", node)
	nc.Close()
}
