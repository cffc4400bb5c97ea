package kvstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/topics"
)

func nodeKey(kind, id string) string { return kind + "." + id }

// PutNode refreshes a node's presence; it expires after NodeTTL without refresh.
func (s *Store) PutNode(ctx context.Context, n *api.Node) (err error) {
	defer s.observe("put_node", time.Now(), &err)
	if err := topics.ValidateID("node", n.ID); err != nil {
		return err
	}
	ctx, cancel := withDefault(ctx)
	defer cancel()
	n.UpdatedAt = time.Now().UTC()
	b, err := json.Marshal(n)
	if err != nil {
		return err
	}
	if _, err := s.nodes.Put(ctx, nodeKey(n.Kind, n.ID), b); err != nil {
		return fmt.Errorf("kvstate: put node %s: %w", n.ID, err)
	}
	return nil
}

// DeleteNode removes a node's presence at once (graceful shutdown).
func (s *Store) DeleteNode(ctx context.Context, kind, id string) (err error) {
	defer s.observe("delete_node", time.Now(), &err)
	ctx, cancel := withDefault(ctx)
	defer cancel()
	return s.nodes.Delete(ctx, nodeKey(kind, id))
}

// GetNode returns one node's presence; ErrNotFound once it left or expired.
func (s *Store) GetNode(ctx context.Context, kind, id string) (_ *api.Node, err error) {
	defer s.observe("get_node", time.Now(), &err)
	e, err := s.get(ctx, s.nodes, nodeKey(kind, id))
	if err != nil {
		return nil, err
	}
	n, err := decode[api.Node](e)
	return &n, err
}

// ListNodes returns the live nodes of kind ("" for all), sorted by id.
func (s *Store) ListNodes(ctx context.Context, kind string) (_ []api.Node, err error) {
	defer s.observe("list_nodes", time.Now(), &err)
	filter := ">"
	if kind != "" {
		filter = kind + ".*"
	}
	entries, err := readAll(ctx, s.nodes, filter)
	if err != nil {
		return nil, err
	}
	out := make([]api.Node, 0, len(entries))
	for _, e := range entries {
		n, err := decode[api.Node](e)
		if err == nil {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Kind+out[a].ID < out[b].Kind+out[b].ID })
	return out, nil
}

// WatchNodes streams presence changes of kind; deletes and expiries arrive
// as entries whose Operation is not KeyValuePut.
func (s *Store) WatchNodes(ctx context.Context, kind string) (jetstream.KeyWatcher, error) {
	return s.nodes.Watch(ctx, kind+".*")
}

// DecodeNode decodes a node entry from a watcher.
func DecodeNode(e jetstream.KeyValueEntry) (*api.Node, error) {
	n, err := decode[api.Node](e)
	return &n, err
}

const leaseKey = "leader"

// Lease is the job-manager leadership as recorded in KV.
type Lease struct {
	Holder   string    `json:"holder"`
	Acquired time.Time `json:"acquired"`
}

// AcquireLease takes the lease if nobody holds it; its revision is the
// leader's fencing token. ErrExists if another replica holds it.
func (s *Store) AcquireLease(ctx context.Context, holder string) (_ uint64, err error) {
	defer s.observe("acquire_lease", time.Now(), &err)
	ctx, cancel := withDefault(ctx)
	defer cancel()
	b, _ := json.Marshal(Lease{Holder: holder, Acquired: time.Now().UTC()})
	rev, err := retryBusy(ctx, func() (uint64, error) { return s.leader.Create(ctx, leaseKey, b) })
	if isWrongLastSeq(err) {
		return 0, ErrExists
	}
	if err != nil {
		return 0, fmt.Errorf("kvstate: acquire lease: %w", err)
	}
	return rev, nil
}

// RenewLease extends the lease held at rev; ErrNotLeader once someone else holds it.
func (s *Store) RenewLease(ctx context.Context, holder string, rev uint64) (_ uint64, err error) {
	defer s.observe("renew_lease", time.Now(), &err)
	ctx, cancel := withDefault(ctx)
	defer cancel()
	b, _ := json.Marshal(Lease{Holder: holder, Acquired: time.Now().UTC()})
	nrev, err := retryBusy(ctx, func() (uint64, error) { return s.leader.Update(ctx, leaseKey, b, rev) })
	if isWrongLastSeq(err) || errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, ErrNotLeader
	}
	if err != nil {
		return 0, fmt.Errorf("kvstate: renew lease: %w", err)
	}
	return nrev, nil
}

// ReleaseLease gives up the lease held at rev so another replica takes over at once.
func (s *Store) ReleaseLease(ctx context.Context, rev uint64) (err error) {
	defer s.observe("release_lease", time.Now(), &err)
	ctx, cancel := withDefault(ctx)
	defer cancel()
	return s.leader.Delete(ctx, leaseKey, jetstream.LastRevision(rev))
}

// LeaseHolder returns the current leader, "" if none.
func (s *Store) LeaseHolder(ctx context.Context) (string, error) {
	e, err := s.get(ctx, s.leader, leaseKey)
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	l, err := decode[Lease](e)
	return l.Holder, err
}

// LeaseExpiry returns when the current lease lapses unless renewed (the
// server time of its last write plus ttl) and its revision; ok is false
// when nobody holds it. A follower acts at that moment instead of polling
// blindly or waiting for the bucket's own expiry, which runs on a coarse
// timer: past it, it takes the lease over with RenewLease at that revision,
// a CAS that fails if the holder renewed meanwhile.
func (s *Store) LeaseExpiry(ctx context.Context, ttl time.Duration) (at time.Time, rev uint64, ok bool, err error) {
	e, err := s.get(ctx, s.leader, leaseKey)
	if errors.Is(err, ErrNotFound) {
		return time.Time{}, 0, false, nil
	}
	if err != nil {
		return time.Time{}, 0, false, err
	}
	return e.Created().Add(ttl), e.Revision(), true, nil
}

func errorsIsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
