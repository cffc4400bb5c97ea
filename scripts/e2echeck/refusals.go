package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/pkg/topics"
)

// checkRefusals connects without credentials and tries internal actions
// of every kind: each must draw the server's permission error. Then the
// admin identity (seed file) must see the buckets an anonymous client
// could not touch.
func checkRefusals(url, adminSeed string) {
	sp := topics.MustNew(topics.DefaultPrefix)
	errs := make(chan error, 64)
	nc, err := nats.Connect(url, nats.Name("drover:jobmaster:jobmaster1"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		fail("anonymous connect: %v", err)
	}
	defer nc.Close()
	ctl, _ := sp.NodeControl(topics.KindJobMaster, "jobmaster1")
	actions := []struct {
		sub     bool
		subject string
	}{
		{false, "$JS.API.STREAM.DELETE." + topics.KVStream(sp.JobsBucket())},
		{false, "$JS.API.STREAM.PURGE." + topics.KVStream(sp.StateBucket())},
		{false, "$JS.API.CONSUMER.CREATE." + sp.RequestsStream() + ".evil"},
		{false, "$KV." + sp.StateBucket() + ".m.e2e-smoke"},
		{false, "$KV." + sp.LeaderBucket() + ".leader"},
		{false, sp.ManagerHeartbeat()},
		{false, ctl},
		{true, sp.Prefix() + ".p2p.>"},
		{true, sp.APISubmit()},
	}
	for _, a := range actions {
		if a.sub {
			_, err = nc.SubscribeSync(a.subject)
		} else {
			err = nc.Publish(a.subject, []byte(`{}`))
		}
		if err == nil {
			err = nc.Flush()
		}
		if err != nil {
			fail("%s: %v", a.subject, err)
		}
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), a.subject) {
				fail("%s: %v, want a permission violation", a.subject, err)
			}
			fmt.Printf("ok: refused %s\n", a.subject)
		case <-time.After(5 * time.Second):
			fail("%s by an anonymous connection was not refused", a.subject)
		}
	}
	o, err := nats.NkeyOptionFromSeed(adminSeed)
	if err != nil {
		fail("admin seed: %v", err)
	}
	anc, err := nats.Connect(url, o)
	if err != nil {
		fail("admin connect: %v", err)
	}
	defer anc.Close()
	js, _ := jetstream.New(anc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, st := range []string{topics.KVStream(sp.JobsBucket()), topics.KVStream(sp.StateBucket()), sp.RequestsStream()} {
		if _, err := js.Stream(ctx, st); err != nil {
			fail("admin: stream %s: %v", st, err)
		}
	}
	fmt.Println("ok: the admin identity reads every stream")
}
