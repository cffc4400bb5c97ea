package jobmanager

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/drover-run/drover/internal/wire"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/kvstate"
)

// Live streams: how long one lasts (the browser reconnects by itself, so
// no stream and none of its state lives forever), how often an idle one
// proves it is alive, how long a write may block, and the longest history
// a job page gets.
const (
	streamMaxAge    = 30 * time.Minute
	streamKeepalive = 15 * time.Second
	streamWriteWait = 10 * time.Second
	streamRefresh   = time.Second
	streamCoalesce  = 250 * time.Millisecond
	historyMax      = 5000
	// historyPageBytes bounds one page of the history read in process
	// (no NATS message carries it).
	historyPageBytes = 4 << 20
	streamEventsBuf  = 256
	maxStreamJobs    = uiPageSize
)

// streamBound bounds the live streams open on a replica.
type streamBound struct {
	mu      sync.Mutex
	open    int
	max     int
	gauge   prometheus.Gauge
	refused prometheus.Counter
}

func (b *streamBound) acquire() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open >= b.max {
		b.refused.Inc()
		return false
	}
	b.open++
	b.gauge.Set(float64(b.open))
	return true
}

func (b *streamBound) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.open--
	b.gauge.Set(float64(b.open))
}

// Open is the number of streams open now.
func (b *streamBound) Open() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open
}

// sse writes Server-Sent Events, each under a write deadline, so a client
// that stops reading ends its stream instead of holding it.
type sse struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (s *sse) send(event string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.write("event: " + event + "\ndata: " + string(b) + "\n\n")
}

func (s *sse) write(text string) error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(streamWriteWait))
	if _, err := s.w.Write([]byte(text)); err != nil {
		return err
	}
	return s.rc.Flush()
}

// live streams updates for one page: ?job=ID (the job, its workers, its
// events), ?jobs=a,b,… (the rows of a jobs page) or ?nodes=1. Job events
// arrive from the events subjects as they are published; records are
// re-read when an event says they changed and once a refresh period
// (progress has no event), and only what changed is sent.
func (c *console) live(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var job string
	var ids []string
	switch {
	case q.Get("job") != "":
		job = q.Get("job")
		if err := invalidID("job", job); err != nil {
			writeReply(w, api.Reply{Error: api.AsError(err)})
			return
		}
	case q.Has("jobs"):
		if q.Get("jobs") != "" {
			ids = strings.Split(q.Get("jobs"), ",")
		}
		if len(ids) > maxStreamJobs {
			writeReply(w, api.Reply{Error: api.Errorf(api.CodeInvalidArgument, "at most %d jobs a stream", maxStreamJobs)})
			return
		}
		for _, id := range ids {
			if err := invalidID("job", id); err != nil {
				writeReply(w, api.Reply{Error: api.AsError(err)})
				return
			}
		}
	case q.Get("nodes") == "":
		writeReply(w, api.Reply{Error: api.Errorf(api.CodeInvalidArgument, "ask for job=ID, jobs=a,b,… or nodes=1")})
		return
	}
	if !c.streams.acquire() {
		writeReply(w, api.Reply{Error: api.Errorf(api.CodeUnavailable, "too many live streams on this replica (%d); try again later", c.streams.max)})
		return
	}
	defer c.streams.release()

	ctx, cancel := context.WithTimeout(r.Context(), streamMaxAge)
	defer cancel()
	space := c.s.space
	events := make(chan api.Event, streamEventsBuf)
	overflow := make(chan struct{}, 1)
	var subj string
	if job != "" {
		subj, _ = space.JobEvents(job)
	} else if q.Has("jobs") {
		subj = space.JobEventsPattern()
	}
	if subj != "" {
		sub, err := c.s.deps.NC.Subscribe(subj, func(m *nats.Msg) {
			var ev api.Event
			if json.Unmarshal(m.Data, &ev) != nil {
				return
			}
			select {
			case events <- ev:
			default: // a slow page: its stream ends and it reconnects
				select {
				case overflow <- struct{}{}:
				default:
				}
			}
		})
		if err != nil {
			c.s.log.Warn("live stream subscribe", zap.Error(err))
			writeReply(w, api.Reply{Error: api.Errorf(api.CodeUnavailable, "live updates are not available now")})
			return
		}
		defer func() { _ = sub.Unsubscribe() }()
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	out := &sse{w: w, rc: http.NewResponseController(w)}
	if err := out.write("retry: 2000\n\n"); err != nil {
		return
	}

	var st streamState
	switch {
	case job != "":
		st = &jobStream{c: c, id: job, workers: map[string]workerCell{}}
	case q.Has("jobs"):
		st = &rowsStream{c: c, ids: ids, last: map[string]jobRow{}, stale: map[string]bool{}}
	default:
		st = &nodesStream{c: c}
	}
	if err := st.start(ctx, out); err != nil {
		return
	}
	period := streamRefresh
	refresh := time.NewTimer(period)
	defer refresh.Stop()
	// Events only mark the records stale: a burst (10,000 workers coming
	// online) costs one read per streamCoalesce, not one per event.
	soon := time.NewTimer(time.Hour)
	soon.Stop()
	defer soon.Stop()
	stale := false
	keepalive := time.NewTicker(streamKeepalive)
	defer keepalive.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			var changed bool
			changed, err = st.event(ctx, out, ev)
			if changed && !stale {
				stale = true
				soon.Reset(streamCoalesce)
			}
		case <-soon.C:
			stale = false
			err = st.flush(ctx, out)
		case <-overflow:
			// The page fell behind and events were dropped: end the stream;
			// the browser reconnects and gets a fresh snapshot and history.
			_ = out.send("resync", map[string]string{})
			return
		case <-refresh.C:
			t0 := time.Now()
			err = st.refresh(ctx, out)
			// A costly read (a job of 10,000 workers) is made less often.
			period = max(streamRefresh, 4*time.Since(t0))
			refresh.Reset(period)
		case <-keepalive.C:
			err = out.write(": keepalive\n\n")
		}
		if err != nil {
			return
		}
	}
}

// streamState is what one kind of live stream sends.
type streamState interface {
	start(ctx context.Context, out *sse) error
	// event sends what an event shows at once and reports whether records
	// it shows may have changed (flush re-reads them soon after).
	event(ctx context.Context, out *sse, ev api.Event) (bool, error)
	flush(ctx context.Context, out *sse) error
	refresh(ctx context.Context, out *sse) error
}

// workerCell is one cell of the workers grid.
type workerCell struct {
	State string  `json:"s"`
	Node  string  `json:"n"`
	Epoch uint64  `json:"e"`
	Done  float64 `json:"d,omitempty"`
	Total float64 `json:"t,omitempty"`
}

// jobStream feeds a job page: a snapshot (job, workers, event history),
// then each event, and the job and workers that changed.
type jobStream struct {
	c       *console
	id      string
	row     jobRow
	detail  string
	workers map[string]workerCell
}

type jobSnapshot struct {
	Row     jobRow                `json:"row"`
	Job     *api.Job              `json:"job"`
	Workers map[string]workerCell `json:"workers"`
	Events  []api.Event           `json:"events"`
	Now     time.Time             `json:"now"`
}

func (s *jobStream) start(ctx context.Context, out *sse) error {
	// Subscribed first, history second: an event published in between is
	// in both, and the page drops the duplicate by (time, kind, epoch).
	events, err := s.c.s.jobEvents(ctx, s.id, historyMax)
	if err != nil {
		s.c.s.log.Warn("job events history", zap.String("job_id", s.id), zap.Error(err))
	}
	j, ws, err := s.read(ctx)
	if err != nil {
		return out.send("failure", s.c.s.public(api.Reply{Error: api.AsError(err)}).Error)
	}
	if events == nil {
		events = []api.Event{}
	}
	return out.send("snapshot", jobSnapshot{Row: s.row, Job: j, Workers: ws, Events: events, Now: time.Now().UTC()})
}

// read refreshes the job's row and workers, returning the workers changed
// since the last read (all of them on the first).
func (s *jobStream) read(ctx context.Context) (*api.Job, map[string]workerCell, error) {
	j, _, err := s.c.s.jobs.GetJob(ctx, s.id)
	if err != nil {
		return nil, nil, storeError(err)
	}
	ws, err := s.c.s.workerRecs.ListWorkers(ctx, s.id)
	if err != nil {
		return nil, nil, storeError(err)
	}
	s.row = rowOf(j)
	s.row.Progress = progressOf(ws)
	changed := map[string]workerCell{}
	for _, e := range ws {
		r := e.Record
		cell := workerCell{State: string(r.State), Node: r.Node, Epoch: r.Epoch}
		cell.Done, cell.Total, _ = api.StatusProgress(r.Status)
		if s.workers[r.ID] != cell {
			changed[r.ID] = cell
			s.workers[r.ID] = cell
		}
	}
	return j, changed, nil
}

func (s *jobStream) event(_ context.Context, out *sse, ev api.Event) (bool, error) {
	return true, out.send("event", ev)
}

func (s *jobStream) flush(ctx context.Context, out *sse) error { return s.refresh(ctx, out) }

func (s *jobStream) refresh(ctx context.Context, out *sse) error {
	before, detail := s.row, s.detail
	j, changed, err := s.read(ctx)
	if err != nil {
		return nil // a failed read is tried again next period
	}
	s.detail = string(j.Detail)
	if !reflect.DeepEqual(before, s.row) || detail != s.detail {
		if err := out.send("job", map[string]any{"row": s.row, "job": j}); err != nil {
			return err
		}
	}
	if len(changed) > 0 {
		return out.send("workers", changed)
	}
	return nil
}

// rowsStream feeds a jobs page: the rows it shows, and a note of jobs
// submitted since it was rendered.
type rowsStream struct {
	c     *console
	ids   []string
	last  map[string]jobRow
	stale map[string]bool
}

func (s *rowsStream) start(ctx context.Context, out *sse) error { return s.refresh(ctx, out) }

func (s *rowsStream) event(_ context.Context, out *sse, ev api.Event) (bool, error) {
	if _, shown := s.last[ev.Job]; !shown {
		if ev.Kind == api.EventState && ev.State == api.StateCreated {
			return false, out.send("newjob", map[string]string{"id": ev.Job})
		}
		return false, nil
	}
	s.stale[ev.Job] = true
	return true, nil
}

func (s *rowsStream) flush(ctx context.Context, out *sse) error {
	for id := range s.stale {
		delete(s.stale, id)
		if err := s.refreshOne(ctx, out, id); err != nil {
			return err
		}
	}
	return nil
}

func (s *rowsStream) refresh(ctx context.Context, out *sse) error {
	for _, id := range s.ids {
		if err := s.refreshOne(ctx, out, id); err != nil {
			return err
		}
	}
	return nil
}

func (s *rowsStream) refreshOne(ctx context.Context, out *sse, id string) error {
	j, _, err := s.c.s.jobs.GetJob(ctx, id)
	if err != nil {
		return nil
	}
	row := rowOf(j)
	if prev, ok := s.last[id]; ok && prev.State.Terminal() && prev.State == row.State {
		return nil // an ended job's row does not change
	}
	s.c.withProgress(ctx, &row)
	if prev, ok := s.last[id]; ok && reflect.DeepEqual(prev, row) {
		return nil
	}
	s.last[id] = row
	return out.send("row", row)
}

// nodesStream feeds the nodes page.
type nodesStream struct {
	c    *console
	last []byte
}

func (s *nodesStream) start(ctx context.Context, out *sse) error { return s.refresh(ctx, out) }

func (s *nodesStream) event(context.Context, *sse, api.Event) (bool, error) { return false, nil }

func (s *nodesStream) flush(context.Context, *sse) error { return nil }

func (s *nodesStream) refresh(ctx context.Context, out *sse) error {
	rows, e := s.c.nodeRows(ctx)
	if e != nil {
		return nil
	}
	// Ages move every second; compare what else changed.
	type key struct {
		ID, Kind       string
		Load, Capacity int
		Jobs           []string
	}
	keys := make([]key, 0, len(rows))
	for _, n := range rows {
		keys = append(keys, key{n.ID, n.Kind, n.Load, n.Capacity, n.Jobs})
	}
	b := wire.Marshal(keys)
	if string(b) == string(s.last) {
		return nil
	}
	s.last = b
	return out.send("nodes", map[string]any{"nodes": rows, "now": time.Now().UTC()})
}

// jobEvents reads the last max events of a job from the events history,
// a page after another.
func (s *Service) jobEvents(ctx context.Context, id string, max int) ([]api.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var out []api.Event
	q := kvstate.EventsQuery{Job: id, Limit: maxEventsLimit, MaxBytes: historyPageBytes}
	for {
		evs, next, err := s.jobs.JobEvents(ctx, q)
		if err != nil {
			return out, fmt.Errorf("events of %s: %w", id, err)
		}
		for _, e := range evs {
			out = append(out, e.Event)
		}
		if len(out) > 2*max { // keep the newest max
			out = append(out[:0], out[len(out)-max:]...)
		}
		if len(evs) == 0 || next <= q.SinceSeq {
			break
		}
		q.SinceSeq = next
	}
	if len(out) > max {
		out = out[len(out)-max:]
	}
	return out, nil
}

// LiveStreams is the number of the console's live streams open now.
func (s *Service) LiveStreams() int {
	if s.console == nil {
		return 0
	}
	return s.console.streams.Open()
}
