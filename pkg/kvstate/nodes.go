package kvstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

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
	entries, err := s.readAll(ctx, s.nodes, filter)
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

func errorsIsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
