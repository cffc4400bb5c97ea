// Package objstore owns Drover's bucket storage: JetStream Object Store
// buckets named by pkg/topics (<prefix>_obj_<name>), with named objects that
// can be written, read from any byte offset, listed by prefix and deleted.
// The SDK hands it to jobs (framework.Storage) and the CLI uses it for
// `drover put` and `drover get-object`.
//
// Reading from an offset is what lets a job split one large object into
// many tasks without each task reading from the start: objects written here
// are cut into chunks of one fixed size (marked in the object's metadata),
// so the chunk holding an offset is found by arithmetic and read directly.
// Objects written by other tools are still read correctly from an offset,
// by reading and discarding what comes before it.
package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/pkg/topics"
)

// Sentinel errors, tested with errors.Is.
var (
	ErrNotFound       = errors.New("objstore: object not found")
	ErrBucketNotFound = errors.New("objstore: bucket not found")
	ErrInvalidName    = errors.New("objstore: invalid object name")
	// ErrChanged is returned when an object is no longer the version asked
	// for: it was replaced or deleted after the reader chose it.
	ErrChanged = errors.New("objstore: object changed")
	// ErrCorrupt is returned when an object's data does not match its size
	// or digest.
	ErrCorrupt = errors.New("objstore: object data does not match its metadata")
)

// ChunkSize is the size of every chunk but the last of an object written
// here (the Object Store default).
const ChunkSize = 128 * 1024

// MaxNameLen bounds object names.
const MaxNameLen = 1024

// DefaultTimeout bounds a metadata call whose context has no deadline.
// Reads and writes of data are bounded by their context only.
const DefaultTimeout = 10 * time.Second

// uniformKey marks, in an object's metadata, that every chunk but the last
// is exactly the value's size in bytes.
const uniformKey = "drover-chunk-size"

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	// Name is the object's name in the bucket (without a view's prefix).
	Name string `json:"name"`
	Size int64  `json:"size"`
	// Version changes every time the object is written (the Object Store NUID).
	Version string    `json:"version"`
	Digest  string    `json:"digest,omitempty"`
	ModTime time.Time `json:"mtime"`
}

// Options configure a Client.
type Options struct {
	// Replicas of buckets the client creates (1 on one server, 3 in a cluster).
	Replicas int
	// Storage of buckets the client creates; file storage by default.
	Storage jetstream.StorageType
}

// Client opens the object buckets of one deployment.
type Client struct {
	js    jetstream.JetStream
	space topics.Space
	opts  Options

	mu      sync.Mutex
	buckets map[string]*Bucket
}

// New returns a client for the deployment whose namespace is space.
func New(js jetstream.JetStream, space topics.Space, opts Options) *Client {
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	return &Client{js: js, space: space, opts: opts, buckets: map[string]*Bucket{}}
}

// BucketName returns the JetStream name of bucket name.
func (c *Client) BucketName(name string) (string, error) { return c.space.ObjectBucket(name) }

// Bucket opens bucket name, creating it if it does not exist.
func (c *Client) Bucket(ctx context.Context, name string) (*Bucket, error) {
	return c.open(ctx, name, true)
}

// OpenBucket opens bucket name; ErrBucketNotFound if it does not exist.
func (c *Client) OpenBucket(ctx context.Context, name string) (*Bucket, error) {
	return c.open(ctx, name, false)
}

func (c *Client) open(ctx context.Context, name string, create bool) (*Bucket, error) {
	full, err := c.space.ObjectBucket(name)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	b := c.buckets[name]
	c.mu.Unlock()
	if b != nil {
		return b, nil
	}
	ctx, cancel := withDefault(ctx)
	defer cancel()
	os, err := c.js.ObjectStore(ctx, full)
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		if !create {
			return nil, fmt.Errorf("%w: %s", ErrBucketNotFound, name)
		}
		os, err = c.js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket: full, Description: "Drover bucket " + name,
			Replicas: c.opts.Replicas, Storage: c.opts.Storage,
		})
		if err != nil {
			// Someone else may have created it in between.
			os, err = c.js.ObjectStore(ctx, full)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("objstore: open bucket %s: %w", name, err)
	}
	stream, err := c.js.Stream(ctx, "OBJ_"+full)
	if err != nil {
		return nil, fmt.Errorf("objstore: open bucket %s: %w", name, err)
	}
	b = &Bucket{c: c, name: name, full: full, os: os, stream: stream}
	c.mu.Lock()
	if prev := c.buckets[name]; prev != nil {
		b = prev
	} else {
		c.buckets[name] = b
	}
	c.mu.Unlock()
	return b, nil
}

// DeleteBucket removes bucket name and every object in it.
func (c *Client) DeleteBucket(ctx context.Context, name string) error {
	full, err := c.space.ObjectBucket(name)
	if err != nil {
		return err
	}
	ctx, cancel := withDefault(ctx)
	defer cancel()
	c.mu.Lock()
	delete(c.buckets, name)
	c.mu.Unlock()
	err = c.js.DeleteObjectStore(ctx, full)
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("%w: %s", ErrBucketNotFound, name)
	}
	return err
}

// Bucket is one object bucket, or a view of the objects under a prefix of
// one (see Sub). Its methods are safe for concurrent use.
type Bucket struct {
	c      *Client
	name   string
	full   string
	prefix string
	os     jetstream.ObjectStore
	stream jetstream.Stream
}

// Name returns the bucket's name (as given to Client.Bucket).
func (b *Bucket) Name() string { return b.name }

// Prefix returns the view's prefix ("" for the whole bucket).
func (b *Bucket) Prefix() string { return b.prefix }

// Sub returns a view of the objects whose names start with prefix: names
// given to and returned by the view are relative to it.
func (b *Bucket) Sub(prefix string) *Bucket {
	v := *b
	v.prefix = b.prefix + prefix
	return &v
}

// ValidateName checks an object name: non-empty UTF-8 of at most
// MaxNameLen bytes, without control characters.
func ValidateName(name string) error {
	if name == "" || len(name) > MaxNameLen || !utf8.ValidString(name) {
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %q has a control character", ErrInvalidName, name)
		}
	}
	return nil
}

func (b *Bucket) key(name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	k := b.prefix + name
	if len(k) > MaxNameLen {
		return "", fmt.Errorf("%w: %q is too long", ErrInvalidName, k)
	}
	return k, nil
}

func (b *Bucket) info(oi *jetstream.ObjectInfo) ObjectInfo {
	return ObjectInfo{Name: strings.TrimPrefix(oi.Name, b.prefix), Size: int64(oi.Size), Version: oi.NUID,
		Digest: oi.Digest, ModTime: oi.ModTime}
}

// Put writes the object name from r, replacing any previous version; readers
// of the previous version get ErrChanged or ErrNotFound. ctx bounds the
// whole upload.
func (b *Bucket) Put(ctx context.Context, name string, r io.Reader) (ObjectInfo, error) {
	k, err := b.key(name)
	if err != nil {
		return ObjectInfo{}, err
	}
	meta := jetstream.ObjectMeta{Name: k, Metadata: map[string]string{uniformKey: strconv.Itoa(ChunkSize)},
		Opts: &jetstream.ObjectMetaOptions{ChunkSize: ChunkSize}}
	oi, err := b.os.Put(ctx, meta, fullChunks{r})
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("objstore: put %s/%s: %w", b.name, k, err)
	}
	return b.info(oi), nil
}

// PutBytes writes the object name with data.
func (b *Bucket) PutBytes(ctx context.Context, name string, data []byte) (ObjectInfo, error) {
	return b.Put(ctx, name, bytes.NewReader(data))
}

// Info returns an object's description; ErrNotFound if it does not exist.
func (b *Bucket) Info(ctx context.Context, name string) (ObjectInfo, error) {
	oi, err := b.rawInfo(ctx, name)
	if err != nil {
		return ObjectInfo{}, err
	}
	return b.info(oi), nil
}

func (b *Bucket) rawInfo(ctx context.Context, name string) (*jetstream.ObjectInfo, error) {
	k, err := b.key(name)
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDefault(ctx)
	defer cancel()
	oi, err := b.os.GetInfo(ctx, k)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("%w: %s/%s", ErrNotFound, b.name, k)
	}
	if err != nil {
		return nil, fmt.Errorf("objstore: info %s/%s: %w", b.name, k, err)
	}
	return oi, nil
}

// List returns the objects whose names start with prefix, not deleted
// ones. It reads the last meta message of every object with no-wait
// fetches, so deletes running meanwhile cannot make it wait for messages
// that are gone.
func (b *Bucket) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	ctx, cancel := withDefault(ctx)
	defer cancel()
	cons, err := b.c.js.OrderedConsumer(ctx, "OBJ_"+b.full, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{fmt.Sprintf("$O.%s.M.>", b.full)},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy, InactiveThreshold: time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("objstore: list %s: %w", b.name, err)
	}
	defer deleteConsumer(b.c.js, "OBJ_"+b.full, cons)
	want := b.prefix + prefix
	var out []ObjectInfo
	for {
		batch, err := cons.FetchNoWait(256)
		if err != nil {
			return nil, fmt.Errorf("objstore: list %s: %w", b.name, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var oi jetstream.ObjectInfo
			if json.Unmarshal(m.Data(), &oi) != nil || oi.Deleted || !strings.HasPrefix(oi.Name, want) {
				continue
			}
			if md, err := m.Metadata(); err == nil {
				oi.ModTime = md.Timestamp
			}
			out = append(out, b.info(&oi))
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, fmt.Errorf("objstore: list %s: %w", b.name, err)
		}
		if n == 0 {
			break
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("objstore: list %s: %w", b.name, ctx.Err())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// deleteConsumer removes an ordered consumer at once rather than leaving it
// to its inactivity threshold: jobs read many objects.
func deleteConsumer(js jetstream.JetStream, stream string, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = js.DeleteConsumer(ctx, stream, info.Name)
}

// Delete removes an object and its data entirely (no tombstone stays).
// Deleting an object that does not exist is not an error.
func (b *Bucket) Delete(ctx context.Context, name string) error {
	k, err := b.key(name)
	if err != nil {
		return err
	}
	ctx, cancel := withDefault(ctx)
	defer cancel()
	err = b.os.Delete(ctx, k)
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("objstore: delete %s/%s: %w", b.name, k, err)
	}
	// Delete leaves a tombstone meta message; scratch objects come and go
	// with every job, so drop it as well.
	meta := fmt.Sprintf("$O.%s.M.%s", b.full, encodeName(k))
	if err := b.stream.Purge(ctx, jetstream.WithPurgeSubject(meta)); err != nil {
		return fmt.Errorf("objstore: delete %s/%s: %w", b.name, k, err)
	}
	return nil
}

// DeletePrefix deletes every object whose name starts with prefix, a few
// at a time, and returns how many it deleted.
func (b *Bucket) DeletePrefix(ctx context.Context, prefix string) (int, error) {
	objs, err := b.List(ctx, prefix)
	if err != nil {
		return 0, err
	}
	var (
		mu       sync.Mutex
		n        int
		firstErr error
		wg       sync.WaitGroup
	)
	next := make(chan string)
	for range min(deleteParallel, len(objs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range next {
				err := b.Delete(ctx, name)
				mu.Lock()
				if err == nil {
					n++
				} else if !errors.Is(err, ErrNotFound) && firstErr == nil { // gone is what we want
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	for _, o := range objs {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			break
		}
		next <- o.Name
	}
	close(next)
	wg.Wait()
	return n, firstErr
}

// deleteParallel bounds the deletes DeletePrefix runs at once.
const deleteParallel = 8

// getBytesGuess caps the memory GetBytes sets aside before reading.
const getBytesGuess = 1 << 20

// GetBytes reads a whole object into memory.
func (b *Bucket) GetBytes(ctx context.Context, name string) ([]byte, error) {
	r, info, err := b.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	// The size in the object's metadata is a hint, not a promise: anyone
	// who can write the bucket's meta subject can claim any size, so the
	// buffer grows with what is read, from at most a modest first guess.
	var buf bytes.Buffer
	buf.Grow(int(min(max(info.Size, 0), getBytesGuess)))
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ReadOption tunes Open.
type ReadOption func(*readOptions) error

type readOptions struct {
	offset  int64
	version string
}

// At starts reading at byte offset off (0 ≤ off ≤ size).
func At(off int64) ReadOption {
	return func(o *readOptions) error {
		if off < 0 {
			return fmt.Errorf("objstore: negative offset %d", off)
		}
		o.offset = off
		return nil
	}
}

// Version reads the object only if it is still at version v (from
// ObjectInfo.Version); otherwise Open, or a later Read, fails with ErrChanged.
func Version(v string) ReadOption {
	return func(o *readOptions) error { o.version = v; return nil }
}

// Open returns a reader of the object name and its description. Reading
// from the start verifies the object's digest at the end; any read fails
// with ErrChanged if the object is replaced or deleted meanwhile. ctx
// bounds the whole read; Close the reader when done.
func (b *Bucket) Open(ctx context.Context, name string, opts ...ReadOption) (io.ReadCloser, ObjectInfo, error) {
	var o readOptions
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, ObjectInfo{}, err
		}
	}
	oi, err := b.rawInfo(ctx, name)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	info := b.info(oi)
	if o.version != "" && oi.NUID != o.version {
		return nil, info, fmt.Errorf("%w: %s/%s is at version %s, not %s", ErrChanged, b.name, oi.Name, oi.NUID, o.version)
	}
	if o.offset > info.Size {
		return nil, info, fmt.Errorf("objstore: offset %d beyond the end of %s/%s (%d bytes)", o.offset, b.name, oi.Name, info.Size)
	}
	if info.Size == 0 || o.offset == info.Size {
		return io.NopCloser(strings.NewReader("")), info, nil
	}
	r, err := b.newReader(ctx, oi, o.offset)
	if err != nil {
		return nil, info, err
	}
	return r, info, nil
}

// newReader reads the chunks of one object version from offset.
func (b *Bucket) newReader(ctx context.Context, oi *jetstream.ObjectInfo, offset int64) (*reader, error) {
	subj := fmt.Sprintf("$O.%s.C.%s", b.full, oi.NUID)
	ctx, cancel := context.WithCancel(ctx)
	r := &reader{b: b, oi: oi, ctx: ctx, cancel: cancel, chunks: int64(oi.Chunks), size: int64(oi.Size),
		skip: offset, ch: make(chan chunk), failed: make(chan error, 1)}
	if offset == 0 {
		r.digest = sha256.New()
	}
	// The first chunk's stream sequence; with uniform chunks, chunk k is at
	// least k messages after it, which is where delivery starts.
	start := uint64(0)
	if cs := uniformChunk(oi); offset > 0 && cs > 0 {
		mctx, mcancel := withDefault(ctx)
		first, err := b.stream.GetMsg(mctx, 1, jetstream.WithGetMsgSubject(subj))
		mcancel()
		if err != nil {
			cancel()
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				return nil, fmt.Errorf("%w: %s/%s has no data any more", ErrChanged, b.name, oi.Name)
			}
			return nil, fmt.Errorf("objstore: open %s/%s: %w", b.name, oi.Name, err)
		}
		k := offset / cs
		start = first.Sequence + uint64(k)
		r.chunkSize = cs
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}, InactiveThreshold: time.Minute}
	if start > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
	}
	cons, err := b.c.js.OrderedConsumer(ctx, "OBJ_"+b.full, cfg)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("objstore: open %s/%s: %w", b.name, oi.Name, err)
	}
	// Up to readAhead chunks in flight. A handler, not an iterator: the
	// iterator's channel holds exactly the batch, so the status messages
	// that end byte-limited pull requests overflowed it while the caller
	// was busy counting, and every dropped chunk (a "slow consumer") cost a
	// reset of the ordered consumer and the chunks after it sent again.
	// The handler waits for the caller instead, and nats.go asks for more
	// only as it returns. Not PullMaxBytes alone: with a byte limit only,
	// nats.go asks for batches of 1,000,000 messages. A closed connection
	// ends the consumer for good: the reader's next read fails
	// (TestReadEndsWhenTheConnectionCloses); other errors the ordered
	// consumer recovers from by itself.
	cc, err := cons.Consume(r.deliver(ctx),
		jetstream.PullMaxMessagesWithBytesLimit(readAhead, readAhead*ChunkSize),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, jetstream.ErrConnectionClosed) {
				select {
				case r.failed <- err:
				default:
				}
			}
		}))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("objstore: open %s/%s: %w", b.name, oi.Name, err)
	}
	r.cc, r.cons = cc, cons
	return r, nil
}

// readAhead is how many chunks a reader fetches ahead of the caller.
const readAhead = 16

func uniformChunk(oi *jetstream.ObjectInfo) int64 {
	v, ok := oi.Metadata[uniformKey]
	if !ok || oi.Opts == nil || strconv.Itoa(int(oi.Opts.ChunkSize)) != v {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	return n
}

type chunk struct {
	data []byte
	idx  int64 // chunk index in the object
	err  error
}

// reader turns an ordered consumer on one object's chunk subject into an
// io.Reader. The chunk index of a message is known from its pending count
// (chunks - 1 - pending), so a reader started past the first chunk knows
// where it is and skips what precedes its offset.
type reader struct {
	b         *Bucket
	oi        *jetstream.ObjectInfo
	cc        jetstream.ConsumeContext
	cons      jetstream.Consumer
	ctx       context.Context // canceled by Close
	cancel    context.CancelFunc
	ch        chan chunk
	failed    chan error // the consumer stopped for good (its connection closed)
	chunks    int64
	size      int64
	chunkSize int64 // 0: chunk sizes unknown, offsets found by reading from the start

	// Read state (one reader goroutine).
	started bool
	skip    int64 // bytes still to skip before the offset
	pos     int64 // object bytes seen so far (from the start of the first chunk read)
	next    int64 // the chunk index expected next
	cur     []byte
	digest  hash.Hash
	err     error
	once    sync.Once
}

// deliver hands each chunk to the reader, waiting until it is taken: the
// chunk's index is known from its pending count (chunks - 1 - pending).
func (r *reader) deliver(ctx context.Context) jetstream.MessageHandler {
	return func(m jetstream.Msg) {
		c := chunk{}
		if md, err := m.Metadata(); err != nil {
			c.err = err
		} else {
			c.data, c.idx = m.Data(), r.chunks-1-int64(md.NumPending)
		}
		select {
		case r.ch <- c:
		case <-ctx.Done():
		}
	}
}

func (r *reader) Read(p []byte) (int, error) {
	if err := r.ready(); err != nil {
		return 0, err
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// WriteTo hands w the rest of the object chunk by chunk, with no copy
// (io.Copy uses it), and checks its end as Read does.
func (r *reader) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for {
		if err := r.ready(); err == io.EOF {
			return n, nil
		} else if err != nil {
			return n, err
		}
		k, err := w.Write(r.cur)
		n += int64(k)
		r.cur = r.cur[k:]
		if err != nil {
			return n, err
		}
	}
}

// ready makes r.cur hold unread bytes, or returns why there are none:
// io.EOF at the end of an object found whole, or the error that ended the
// read (every later call returns it again).
func (r *reader) ready() error {
	for len(r.cur) == 0 {
		if r.err != nil {
			return r.err
		}
		if r.started && r.next >= r.chunks {
			r.err = r.finish()
		} else if err := r.fill(); err != nil {
			r.err = err
		}
	}
	return nil
}

// fill takes the next chunk, skipping what lies before the offset.
func (r *reader) fill() error {
	var c chunk
	// A replaced or deleted object's chunks are purged and delivery just
	// stops: while nothing comes, check every second that it is still there.
	for waiting := true; waiting; {
		select {
		case c = <-r.ch:
			waiting = false
		case <-r.ctx.Done():
			return r.ctx.Err() // closed, or the caller's context ended
		case err := <-r.failed:
			return fmt.Errorf("objstore: read %s/%s: %w", r.b.name, r.oi.Name, err)
		case <-time.After(stallCheck):
			if err := r.stillThere(); err != nil {
				return err
			}
		}
	}
	if c.err != nil {
		return r.changed(c.err.Error())
	}
	if c.idx < 0 || c.idx >= r.chunks {
		return r.changed("chunk out of range")
	}
	if !r.started {
		r.started = true
		r.next = c.idx
		if r.chunkSize > 0 {
			r.pos = c.idx * r.chunkSize
			r.skip -= r.pos
		} else if c.idx != 0 {
			return r.changed("first chunk missing")
		}
	}
	if c.idx != r.next {
		return r.changed(fmt.Sprintf("chunk %d after %d", c.idx, r.next-1))
	}
	r.next++
	data := c.data
	if r.chunkSize > 0 && c.idx < r.chunks-1 && int64(len(data)) != r.chunkSize {
		return fmt.Errorf("%w: %s/%s chunk %d has %d bytes, not %d", ErrCorrupt, r.b.name, r.oi.Name, c.idx, len(data), r.chunkSize)
	}
	r.pos += int64(len(data))
	if r.digest != nil {
		r.digest.Write(data)
	}
	if r.skip > 0 {
		s := min(r.skip, int64(len(data)))
		data = data[s:]
		r.skip -= s
	}
	r.cur = data
	return nil
}

// finish checks the end of the object: its size and, from the start, its digest.
func (r *reader) finish() error {
	if r.pos != r.size {
		return fmt.Errorf("%w: %s/%s read %d bytes of %d", ErrCorrupt, r.b.name, r.oi.Name, r.pos, r.size)
	}
	if r.digest != nil && r.oi.Digest != "" {
		if got := jetstream.GetObjectDigestValue(r.digest); got != r.oi.Digest {
			return fmt.Errorf("%w: %s/%s digest %s, want %s", ErrCorrupt, r.b.name, r.oi.Name, got, r.oi.Digest)
		}
	}
	return io.EOF
}

// stallCheck is how long a read waits for data before it checks that the
// object still exists at its version.
const stallCheck = time.Second

func (r *reader) stillThere() error {
	ctx, cancel := withDefault(context.Background())
	defer cancel()
	oi, err := r.b.os.GetInfo(ctx, r.oi.Name)
	if errors.Is(err, jetstream.ErrObjectNotFound) || (err == nil && oi.NUID != r.oi.NUID) {
		return fmt.Errorf("%w: %s/%s was replaced or deleted while read", ErrChanged, r.b.name, r.oi.Name)
	}
	return nil
}

// changed explains a read that cannot go on: the object was replaced or
// deleted (its chunks purged) while it was read.
func (r *reader) changed(why string) error {
	ctx, cancel := withDefault(context.Background())
	defer cancel()
	oi, err := r.b.os.GetInfo(ctx, r.oi.Name)
	if err != nil || oi.NUID != r.oi.NUID {
		return fmt.Errorf("%w: %s/%s was replaced or deleted while read", ErrChanged, r.b.name, r.oi.Name)
	}
	return fmt.Errorf("objstore: read %s/%s: %s", r.b.name, r.oi.Name, why)
}

// Close stops the read.
func (r *reader) Close() error {
	r.once.Do(func() {
		r.cancel() // a handler waiting to deliver returns
		if r.cc != nil {
			r.cc.Stop()
		}
		deleteConsumer(r.b.c.js, "OBJ_"+r.b.full, r.cons)
	})
	return nil
}

// fullChunks makes every Read of the Object Store's upload loop return a
// whole chunk (all but the last), so chunk k always starts at k*ChunkSize.
type fullChunks struct{ r io.Reader }

func (f fullChunks) Read(p []byte) (int, error) {
	if f.r == nil {
		return 0, io.EOF
	}
	n, err := io.ReadFull(f.r, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return n, io.EOF
	}
	return n, err
}

// encodeName is how the Object Store names an object's meta subject.
func encodeName(name string) string { return base64.URLEncoding.EncodeToString([]byte(name)) }

func withDefault(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}
