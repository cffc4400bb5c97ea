package kvstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// get reads the latest entry of key. On a replicated bucket the read goes
// through the stream leader (STREAM.MSG.GET): the KV client's direct get
// may be answered by a replica that lags behind (ADR-8), e.g. a NATS node
// that just came back, and would show a value older than a write already
// acknowledged. The leader has applied every acknowledged write, so this
// read sees them all. A single server has no lagging replica.
func (s *Store) get(ctx context.Context, kv jetstream.KeyValue, key string) (jetstream.KeyValueEntry, error) {
	if s.replicas <= 1 {
		return getEntry(ctx, kv, key)
	}
	bucket := kv.Bucket()
	m, err := s.msgGet(ctx, "KV_"+bucket, msgGetRequest{LastFor: "$KV." + bucket + "." + key})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		return nil, fmt.Errorf("kvstate: get %s: %w", key, err)
	}
	if m.deleted() {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return &entry{bucket: bucket, key: key, value: m.Data, rev: m.Seq, created: m.Time, op: jetstream.KeyValuePut}, nil
}

// msgGetRequest is the body of STREAM.MSG.GET: the last message of a
// subject, or the first at or after Seq matching NextFor.
type msgGetRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
}

// storedMsg is a message as STREAM.MSG.GET returns it.
type storedMsg struct {
	Subject string    `json:"subject"`
	Seq     uint64    `json:"seq"`
	Hdrs    []byte    `json:"hdrs"`
	Data    []byte    `json:"data"`
	Time    time.Time `json:"time"`
}

// deleted reports whether m is a KV delete or purge marker.
func (m *storedMsg) deleted() bool {
	if len(m.Hdrs) == 0 {
		return false
	}
	hdr, err := nats.DecodeHeadersMsg(m.Hdrs)
	return err == nil && kvDeleted(hdr)
}

// kvDeleted reports whether a KV message's headers mark a delete or purge.
func kvDeleted(hdr nats.Header) bool {
	switch strings.ToUpper(hdr.Get("KV-Operation")) {
	case "DEL", "PURGE":
		return true
	}
	return false
}

// msgGet asks the leader of stream for one message; no message is
// ErrNotFound.
func (s *Store) msgGet(ctx context.Context, stream string, r msgGetRequest) (*storedMsg, error) {
	ctx, cancel := withDefault(ctx)
	defer cancel()
	req, _ := json.Marshal(r)
	msg, err := s.js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+stream, req)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Message *storedMsg          `json:"message"`
		Error   *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, err
	}
	if resp.Error != nil {
		if resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound {
			return nil, ErrNotFound
		}
		return nil, resp.Error
	}
	if resp.Message == nil {
		return nil, errors.New("empty answer")
	}
	return resp.Message, nil
}

// entry is a KV entry read through the stream leader.
type entry struct {
	bucket, key string
	value       []byte
	rev         uint64
	created     time.Time
	op          jetstream.KeyValueOp
}

func (e *entry) Bucket() string                  { return e.bucket }
func (e *entry) Key() string                     { return e.key }
func (e *entry) Value() []byte                   { return e.value }
func (e *entry) Revision() uint64                { return e.rev }
func (e *entry) Created() time.Time              { return e.created }
func (e *entry) Delta() uint64                   { return 0 }
func (e *entry) Operation() jetstream.KeyValueOp { return e.op }
