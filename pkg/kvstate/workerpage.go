package kvstate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/pkg/topics"
)

// WorkerIDs returns the ids of a job's worker records, sorted. They come
// from the state stream's subject index (one stream info request, names
// only): no record is read, so the cost is the job's worker count in
// names, not in records. A record whose delete marker a failed purge left
// behind is still named (PageWorkers skips it).
func (s *Store) WorkerIDs(ctx context.Context, job string) (_ []string, err error) {
	defer s.observe("worker_ids", time.Now(), &err)
	if err := topics.ValidateID("job", job); err != nil {
		return nil, err
	}
	ctx, cancel := withDefault(ctx)
	defer cancel()
	st, err := s.js.Stream(ctx, "KV_"+s.state.Bucket())
	if err != nil {
		return nil, fmt.Errorf("kvstate: worker ids of %s: %w", job, err)
	}
	prefix := s.statePrefix + "w." + job + "."
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(prefix+"*"))
	if err != nil {
		return nil, fmt.Errorf("kvstate: worker ids of %s: %w", job, err)
	}
	ids := make([]string, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		ids = append(ids, strings.TrimPrefix(subj, prefix))
	}
	sort.Strings(ids)
	return ids, nil
}

// PageWorkers reads a job's worker records in id order, from the first id
// of ids (as WorkerIDs returns them) past after: a page costs one read per
// record whatever the job holds. It reads at most max records (deleted
// ones count) and calls fn with each; fn returns false to stop before
// that worker. last is the id of the last record read and not refused by
// fn (after if none): the next page starts after it. end is true when no
// id is past last.
func (s *Store) PageWorkers(ctx context.Context, job string, ids []string, after string, max int, fn func(WorkerEntry) bool) (last string, end bool, err error) {
	defer s.observe("page_workers", time.Now(), &err)
	last = after
	i := sort.Search(len(ids), func(i int) bool { return ids[i] > after })
	for ; i < len(ids) && max > 0; i, max = i+1, max-1 {
		e, err := s.get(ctx, s.state, workerKey(job, ids[i]))
		switch {
		case errors.Is(err, ErrNotFound):
			// Deleted since it was named.
		case err != nil:
			return last, false, err
		default:
			r, err := decode[WorkerRecord](e)
			if err != nil {
				return last, false, err
			}
			if r.ID == "" {
				r.ID = ids[i]
			}
			if !fn(WorkerEntry{Record: r, Revision: e.Revision()}) {
				return last, false, nil
			}
		}
		last = ids[i]
	}
	return last, i == len(ids), nil
}
