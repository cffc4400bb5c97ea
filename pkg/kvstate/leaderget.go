package kvstate

import (
	"context"
	"encoding/json"
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
	ctx, cancel := withDefault(ctx)
	defer cancel()
	bucket := kv.Bucket()
	req, _ := json.Marshal(map[string]string{"last_by_subj": "$KV." + bucket + "." + key})
	msg, err := s.js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+bucket, req)
	if err != nil {
		return nil, fmt.Errorf("kvstate: get %s: %w", key, err)
	}
	var resp struct {
		Message *struct {
			Seq  uint64    `json:"seq"`
			Hdrs []byte    `json:"hdrs"`
			Data []byte    `json:"data"`
			Time time.Time `json:"time"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, fmt.Errorf("kvstate: get %s: %w", key, err)
	}
	if resp.Error != nil {
		if resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		return nil, fmt.Errorf("kvstate: get %s: %w", key, resp.Error)
	}
	if resp.Message == nil {
		return nil, fmt.Errorf("kvstate: get %s: empty answer", key)
	}
	op := jetstream.KeyValuePut
	if len(resp.Message.Hdrs) > 0 {
		hdr, err := nats.DecodeHeadersMsg(resp.Message.Hdrs)
		if err == nil {
			switch strings.ToUpper(hdr.Get("KV-Operation")) {
			case "DEL", "PURGE":
				return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
			}
		}
	}
	return &entry{bucket: bucket, key: key, value: resp.Message.Data, rev: resp.Message.Seq,
		created: resp.Message.Time, op: op}, nil
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
