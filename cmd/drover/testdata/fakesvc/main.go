// Command fakesvc stands in for the jobmanager, jobmaster and worker
// binaries in the tests of `drover dev`: it reports the environment it got,
// registers itself, and (as "jobmanager") answers the API calls the launcher
// makes before printing its banner. FAKE_EXIT_<node>=<code> makes it exit
// after FAKE_EXIT_AFTER (default 0s); FAKE_IGNORE_TERM=1 makes it ignore
// SIGTERM.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/topics"
)

func main() {
	role := filepath.Base(os.Args[0])
	node := os.Getenv("DROVER_NODE_ID")
	fmt.Printf("fake %s node=%s nats=%s prefix=%s format=%s http=%s\n", role, node,
		os.Getenv("DROVER_NATS_URL"), os.Getenv("DROVER_PREFIX"), os.Getenv("DROVER_LOG_FORMAT"), os.Getenv("DROVER_HTTP_ADDR"))
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

	nc, err := nats.Connect(os.Getenv("DROVER_NATS_URL"), nats.MaxReconnects(-1))
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(1)
	}
	space := topics.MustNew(os.Getenv("DROVER_PREFIX"))
	if role == "jobmanager" {
		var mu sync.Mutex
		nodes := map[string]api.Node{}
		_, _ = nc.Subscribe("fake.presence", func(m *nats.Msg) {
			var n api.Node
			_ = json.Unmarshal(m.Data, &n)
			mu.Lock()
			nodes[n.ID] = n
			mu.Unlock()
		})
		reply := func(m *nats.Msg, rep api.Reply) {
			b, _ := json.Marshal(rep)
			_ = m.Respond(b)
		}
		_, _ = nc.Subscribe(space.APIList(), func(m *nats.Msg) { reply(m, api.Reply{}) })
		_, _ = nc.Subscribe(space.APINodes(), func(m *nats.Msg) {
			mu.Lock()
			var rep api.Reply
			for _, n := range nodes {
				rep.Nodes = append(rep.Nodes, n)
			}
			mu.Unlock()
			reply(m, rep)
		})
	} else {
		b, _ := json.Marshal(api.Node{ID: node, Kind: role, Capacity: 1, StartedAt: time.Now()})
		go func() {
			for {
				_ = nc.Publish("fake.presence", b)
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	<-sigs
	fmt.Printf("fake %s stopping on SIGTERM\n", node)
	nc.Close()
}
