package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/client"
)

func eventsCommand() *command {
	return &command{
		name: "events",
		args: "ID",
		summary: "Print a job's events from its history (kept 7 days by default, also after the job ended); " +
			"--follow then prints new ones until the job ends.",
		setup: func(fs *flag.FlagSet) runner {
			var since string
			var follow bool
			fs.StringVar(&since, "since", "", "start at a stream `seq`, an RFC 3339 time or a duration ago (10m)")
			fs.BoolVar(&follow, "follow", false, "keep printing new events until the job ends or Ctrl-C")
			return func(ctx context.Context, c *cli, args []string) error {
				if err := requireArgs(args, 1, 1, "job ID"); err != nil {
					return err
				}
				from, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				from.ID = args[0]
				return c.withClient(func(cl *client.Client) error {
					return c.printEvents(ctx, cl, from, follow)
				})
			}
		},
	}
}

// parseSince reads --since: a sequence, an RFC 3339 time or a duration
// before now.
func parseSince(s string, now time.Time) (api.EventsRequest, error) {
	var req api.EventsRequest
	if s == "" {
		return req, nil
	}
	if seq, err := strconv.ParseUint(s, 10, 64); err == nil {
		req.SinceSeq = seq
		return req, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		req.SinceTime = &t
		return req, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		t := now.Add(-d)
		req.SinceTime = &t
		return req, nil
	}
	return req, usagef("--since %q: want a sequence, an RFC 3339 time or a duration such as 10m", s)
}

// eventFeed reads one job's history from the events API and then what
// happens later, from the sequence where the last read ended: no event is
// missed or printed twice, whenever the caller reads again.
type eventFeed struct {
	cl    *client.Client
	req   api.EventsRequest
	live  *nats.Subscription // wakes the feed when the job publishes an event
	woken atomic.Bool        // the feed's wake-up waits in the channel
}

// newEventFeed subscribes to the job's live events before anything is read,
// so an event published meanwhile still wakes the next read. An event only
// wakes the feed (the read goes by sequence): a burst of them, the
// thousands of worker_online events of a large job's start, is one wake-up
// waiting on wake, never a backlog the client drops as a slow consumer.
// wake must have room for every feed that shares it; call woke when taking
// the feed from it.
func newEventFeed(cl *client.Client, req api.EventsRequest, wake chan *eventFeed) (*eventFeed, error) {
	f := &eventFeed{cl: cl, req: req}
	if wake != nil {
		subj, err := cl.Space().JobEvents(req.ID)
		if err != nil {
			return nil, &api.Error{Code: api.CodeInvalidArgument, Message: err.Error()}
		}
		f.live, err = cl.Conn().Subscribe(subj, func(*nats.Msg) {
			if f.woken.CompareAndSwap(false, true) {
				select {
				case wake <- f:
				default:
					f.woken.Store(false) // no room: the poll reads it
				}
			}
		})
		if err != nil {
			return nil, fmt.Errorf("subscribe %s: %w", subj, err)
		}
	}
	return f, nil
}

// woke marks the feed's wake-up taken: the next event wakes it again.
func (f *eventFeed) woke() { f.woken.Store(false) }

func (f *eventFeed) close() {
	if f.live != nil {
		_ = f.live.Unsubscribe()
	}
}

// read returns every event since the last read, page after page.
func (f *eventFeed) read(ctx context.Context, timeout time.Duration) ([]api.StreamEvent, error) {
	var out []api.StreamEvent
	for {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		evs, next, err := f.cl.Events(rctx, f.req)
		cancel()
		if err != nil {
			return out, err
		}
		out = append(out, evs...)
		f.req.SinceSeq, f.req.SinceTime = max(next, f.req.SinceSeq), nil
		if len(evs) == 0 {
			return out, nil
		}
	}
}

// printEvents prints the job's events; with follow, it goes on with new
// ones until the job's terminal state event (or ctx ends).
func (c *cli) printEvents(ctx context.Context, cl *client.Client, req api.EventsRequest, follow bool) error {
	var wake chan *eventFeed
	if follow {
		wake = make(chan *eventFeed, 1)
	}
	feed, err := newEventFeed(cl, req, wake)
	if err != nil {
		return err
	}
	defer feed.close()
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		evs, err := feed.read(ctx, c.g.timeout)
		ended := false
		for _, ev := range evs {
			c.printEvent(ev)
			ended = ended || (ev.Kind == api.EventState && ev.State.Terminal())
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if !follow || ended {
			return nil
		}
		if ended, err := c.jobEnded(ctx, cl, req.ID); err != nil || ended {
			// Ended before its terminal event reached the history (or the
			// stream dropped it): read once more and stop.
			if err == nil {
				evs, _ := feed.read(ctx, c.g.timeout)
				for _, ev := range evs {
					c.printEvent(ev)
				}
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case f := <-wake:
			f.woke()
		case <-ticker.C:
		}
	}
}

// jobEnded reports whether the job is terminal; an unknown job (not yet
// submitted, or deleted) is not.
func (c *cli) jobEnded(ctx context.Context, cl *client.Client, id string) (bool, error) {
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	j, err := cl.Get(rctx, id)
	switch api.ErrorCode(err) {
	case "":
		return j.State.Terminal(), nil
	case api.CodeNotFound, api.CodeUnavailable:
		return false, nil
	}
	if ctx.Err() != nil {
		return false, nil
	}
	return false, err
}

// printEvent prints one event of the history: a line for people, a JSON
// object per line with --json.
func (c *cli) printEvent(ev api.StreamEvent) {
	if c.g.json {
		b, _ := json.Marshal(map[string]any{"event": ev})
		fmt.Fprintln(c.stdout, string(b))
		return
	}
	fmt.Fprintln(c.stdout, formatStreamEvent(ev))
}

// formatStreamEvent is formatEvent with the event's sequence at the end, to
// resume from with --since.
func formatStreamEvent(ev api.StreamEvent) string {
	var b strings.Builder
	b.WriteString(formatEvent(ev.Event))
	if ev.Truncated {
		b.WriteString(" (detail left out)")
	}
	fmt.Fprintf(&b, " seq=%d", ev.Seq)
	return b.String()
}
