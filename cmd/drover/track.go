package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/client"
)

// pollInterval is how often wait and watch re-read jobs and workers; a job
// event triggers a read at once, so state changes show without this delay.
const pollInterval = 500 * time.Millisecond

// waitOptions tune waitJobs for wait, watch and submit --wait.
type waitOptions struct {
	within       time.Duration // give up after this long (0: never)
	allowMissing bool          // a job not found yet is still to come (durable submit)
	events       bool          // print the jobs' events as they arrive (watch)
}

// tracked is what waitJobs knows about one job.
type tracked struct {
	id   string
	job  *api.Job
	prog progress
	note string // why the job's state is unknown right now
	// workersNext is when the workers are read again: a job of 10,000
	// workers takes ten pages, so their read waits 4× its own cost.
	workersNext time.Time
}

func (t *tracked) done() bool { return t.job != nil && t.job.State.Terminal() }

func (t *tracked) state() api.State {
	if t.job == nil {
		return "unknown"
	}
	return t.job.State
}

// waitJobs follows jobs until every one is terminal, showing their progress
// (and, with o.events, their events), then prints each result. It returns a
// *jobEndedError if any job did not finish.
func (c *cli) waitJobs(ctx context.Context, cl *client.Client, ids []string, o waitOptions) error {
	if o.within > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.within)
		defer cancel()
	}
	ids = unique(ids)
	evc := make(chan *eventFeed, len(ids))
	var inOrder []*eventFeed
	for _, id := range ids {
		f, err := newEventFeed(cl, api.EventsRequest{ID: id}, evc)
		if err != nil {
			return err
		}
		defer f.close()
		inOrder = append(inOrder, f)
	}
	jobs := make([]*tracked, len(ids))
	for i, id := range ids {
		jobs[i] = &tracked{id: id}
	}
	live := !c.g.json || o.events
	view := newLiveView(c.stdout, c.tty && !c.g.json, termWidth(c.stdout))
	view.stamp = !c.g.json
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	// watch shows each job's history first, then what happens next.
	showHistory := func(f *eventFeed) {
		if !o.events {
			return
		}
		evs, err := f.read(ctx, c.g.timeout)
		for _, ev := range evs {
			c.showEvent(view, ev)
		}
		if err != nil && ctx.Err() == nil {
			view.above(fmt.Sprintf("%s %s: events not available: %v\n", time.Now().Format("15:04:05.000"), f.req.ID, err))
		}
	}
	for _, f := range inOrder {
		showHistory(f)
	}
	for {
		for _, t := range jobs {
			if err := c.refresh(ctx, cl, t, o.allowMissing); err != nil {
				view.clear()
				return err
			}
		}
		if allDone(jobs) {
			// The results below say it all; no last progress frame. The
			// events up to the end are shown first.
			for _, f := range inOrder {
				showHistory(f)
			}
			break
		}
		if live {
			c.showProgress(view, jobs)
		}
		select {
		case <-ctx.Done():
			view.clear()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return &api.Error{Code: "timeout", Message: fmt.Sprintf("%s not done after %s", strings.Join(pending(jobs), ", "), o.within)}
			}
			return ctx.Err()
		case f := <-evc:
			// Take the other jobs woken too, show what the history has
			// since the last read of each, then re-read the jobs at once.
			woken := []*eventFeed{f}
			for more := true; more; {
				select {
				case f = <-evc:
					woken = append(woken, f)
				default:
					more = false
				}
			}
			for _, f := range woken {
				f.woke()
				showHistory(f)
			}
		case <-ticker.C:
		}
	}
	view.clear()
	return c.printResults(jobs)
}

// refresh re-reads one job and, while it runs, its workers' progress.
func (c *cli) refresh(ctx context.Context, cl *client.Client, t *tracked, allowMissing bool) error {
	if t.done() {
		return nil
	}
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	job, err := cl.Get(rctx, t.id)
	switch code := api.ErrorCode(err); {
	case err == nil:
		t.job, t.note = job, ""
	case ctx.Err() != nil:
		return nil // the caller's select reports it
	case code == api.CodeUnavailable:
		t.note = "job manager unavailable, retrying"
		return nil
	case code == api.CodeNotFound && allowMissing:
		t.note = "waiting for a job manager to accept it"
		return nil
	default:
		return err
	}
	if now := time.Now(); !now.Before(t.workersNext) || t.done() {
		ws, err := cl.Workers(rctx, t.id)
		t.workersNext = time.Now().Add(4 * time.Since(now))
		if err == nil {
			if p := aggregate(ws); p.Workers > 0 || !t.done() {
				t.prog = p
			}
		}
	}
	return nil
}

// unique drops repeated ids, keeping the first occurrence's order.
func unique(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func allDone(jobs []*tracked) bool {
	for _, t := range jobs {
		if !t.done() {
			return false
		}
	}
	return true
}

func pending(jobs []*tracked) []string {
	var ids []string
	for _, t := range jobs {
		if !t.done() {
			ids = append(ids, t.id)
		}
	}
	return ids
}

// showProgress shows each job's line: a live view for people, one JSON
// object per change for scripts (watch --json).
func (c *cli) showProgress(view *liveView, jobs []*tracked) {
	if c.g.json {
		for _, t := range jobs {
			line := progressJSON{Job: t.id, State: t.state(), Progress: t.prog, Note: t.note}
			b, _ := json.Marshal(map[string]any{"progress": line})
			view.update([]liveLine{{key: t.id, state: string(t.state()), text: string(b)}})
		}
		return
	}
	barWidth := 0
	if view.tty {
		barWidth = 20
	}
	lines := make([]liveLine, len(jobs))
	for i, t := range jobs {
		text := progressLine(t.id, t.state(), t.prog, barWidth)
		if t.note != "" {
			text += "  (" + t.note + ")"
		}
		lines[i] = liveLine{key: t.id, state: string(t.state()), text: text}
	}
	view.update(lines)
}

type progressJSON struct {
	Job      string    `json:"job"`
	State    api.State `json:"state"`
	Progress progress  `json:"progress"`
	Note     string    `json:"note,omitempty"`
}

// showEvent prints one job event above the live lines.
func (c *cli) showEvent(view *liveView, ev api.StreamEvent) {
	if c.g.json {
		b, _ := json.Marshal(map[string]any{"event": ev})
		view.above(string(b) + "\n")
		return
	}
	view.above(formatStreamEvent(ev) + "\n")
}

// formatEvent renders an event on one line: time, job, kind, then fields.
func formatEvent(ev api.Event) string {
	t := ev.Time
	if t.IsZero() {
		t = time.Now()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", t.Local().Format("15:04:05.000"), ev.Job, ev.Kind)
	if ev.State != "" {
		b.WriteString(" " + string(ev.State))
	}
	field := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, " %s=%s", k, v)
		}
	}
	field("worker", ev.Worker)
	field("node", ev.Node)
	field("epoch", fmt.Sprint(ev.Epoch))
	field("reason", ev.Reason)
	if ev.Error != nil {
		field("error", errString(ev.Error))
	}
	return b.String()
}

// printResults prints each job's final state, error and detail, and
// reports any job that did not finish.
func (c *cli) printResults(jobs []*tracked) error {
	var notOK []*api.Job
	final := make([]*api.Job, len(jobs))
	for i, t := range jobs {
		final[i] = t.job
		if t.job.State != api.StateFinished {
			notOK = append(notOK, t.job)
		}
	}
	switch {
	case c.g.json && len(final) == 1:
		_ = printJSON(c.stdout, final[0])
	case c.g.json:
		_ = printJSON(c.stdout, struct {
			Jobs []*api.Job `json:"jobs"`
		}{final})
	default:
		for _, t := range jobs {
			printResult(c, t)
		}
	}
	if len(notOK) > 0 {
		return &jobEndedError{jobs: notOK}
	}
	return nil
}

func printResult(c *cli, t *tracked) {
	j := t.job
	line := fmt.Sprintf("%s %s", j.ID, j.State)
	if j.Error != nil {
		line += ": " + errString(j.Error)
	}
	if t.prog.known() {
		line += "  " + t.prog.ratio()
	}
	fmt.Fprintln(c.stdout, line)
	if d := compactJSON(j.Detail); d != "-" {
		fmt.Fprintf(c.stdout, "  detail: %s\n", d)
	}
}
