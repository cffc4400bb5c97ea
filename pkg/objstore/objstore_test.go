package objstore_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/pkg/objstore"
	"github.com/drover-run/drover/pkg/topics"
)

// nats.go's async-publish status goroutine can block for good on a status
// channel its own cleanup set to nil when the connection closes as it
// starts; it belongs to the library, not to this package.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"))
}

func newClient(t *testing.T) (*objstore.Client, jetstream.JetStream) {
	t.Helper()
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	return objstore.New(js, topics.MustNew("t"), objstore.Options{}), js
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func data(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func readAt(t *testing.T, b *objstore.Bucket, name string, opts ...objstore.ReadOption) []byte {
	t.Helper()
	r, _, err := b.Open(ctx(t), name, opts...)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return got
}

func TestPutGetAndRanges(t *testing.T) {
	c, _ := newClient(t)
	b, err := c.Bucket(ctx(t), "in")
	if err != nil {
		t.Fatal(err)
	}
	// Slow trickle reads must still give whole chunks (offsets by arithmetic).
	want := data(5*objstore.ChunkSize+777, 1)
	info, err := b.Put(ctx(t), "big", io.MultiReader(bytes.NewReader(want[:1000]), bytes.NewReader(want[1000:])))
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(want)) || info.Version == "" || info.Name != "big" {
		t.Fatalf("info %+v", info)
	}
	for _, off := range []int64{0, 1, objstore.ChunkSize - 1, objstore.ChunkSize, 3*objstore.ChunkSize + 5, int64(len(want)) - 1, int64(len(want))} {
		got := readAt(t, b, "big", objstore.At(off))
		if !bytes.Equal(got, want[off:]) {
			t.Fatalf("offset %d: got %d bytes, want %d (equal prefix: %v)", off, len(got), len(want)-int(off), bytes.HasPrefix(want[off:], got))
		}
	}
	// A reader closed early releases everything (goleak checks).
	r, _, err := b.Open(ctx(t), "big", objstore.At(objstore.ChunkSize+3))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(r, buf); err != nil || !bytes.Equal(buf, want[objstore.ChunkSize+3:][:10]) {
		t.Fatalf("partial read %v", err)
	}
	r.Close()

	if _, err := b.PutBytes(ctx(t), "empty", nil); err != nil {
		t.Fatal(err)
	}
	if got := readAt(t, b, "empty"); len(got) != 0 {
		t.Fatalf("empty object read %d bytes", len(got))
	}
	if _, _, err := b.Open(ctx(t), "big", objstore.At(int64(len(want))+1)); err == nil {
		t.Fatal("offset past the end accepted")
	}
}

// An object written by another tool, with chunks of uneven sizes, is still
// read correctly from an offset.
func TestForeignObjectOffsets(t *testing.T) {
	c, js := newClient(t)
	b, err := c.Bucket(ctx(t), "in")
	if err != nil {
		t.Fatal(err)
	}
	name, _ := c.BucketName("in")
	os, err := js.ObjectStore(ctx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	want := data(3*objstore.ChunkSize, 2)
	// iotest-style reader: at most 1000 bytes per Read, so chunks are short.
	if _, err := os.Put(ctx(t), jetstream.ObjectMeta{Name: "foreign"}, &trickle{r: bytes.NewReader(want), n: 1000}); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 999, 1000, 123456, int64(len(want)) - 3} {
		if got := readAt(t, b, "foreign", objstore.At(off)); !bytes.Equal(got, want[off:]) {
			t.Fatalf("offset %d: wrong data (%d bytes)", off, len(got))
		}
	}
}

type trickle struct {
	r io.Reader
	n int
}

func (t *trickle) Read(p []byte) (int, error) { return t.r.Read(p[:min(len(p), t.n)]) }

func TestVersionsListDelete(t *testing.T) {
	c, _ := newClient(t)
	b, err := c.Bucket(ctx(t), "work")
	if err != nil {
		t.Fatal(err)
	}
	v1, err := b.PutBytes(ctx(t), "a/x", []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	if got := readAt(t, b, "a/x", objstore.Version(v1.Version)); string(got) != "one" {
		t.Fatalf("got %q", got)
	}
	if _, err := b.PutBytes(ctx(t), "a/x", []byte("two")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Open(ctx(t), "a/x", objstore.Version(v1.Version)); !errors.Is(err, objstore.ErrChanged) {
		t.Fatalf("old version: %v, want ErrChanged", err)
	}

	sub := b.Sub("jobs/j1/")
	for _, n := range []string{"m/1", "m/2", "r/1"} {
		if _, err := sub.PutBytes(ctx(t), n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	objs, err := sub.List(ctx(t), "m/")
	if err != nil || len(objs) != 2 || objs[0].Name[:2] != "m/" {
		t.Fatalf("list m/: %+v %v", objs, err)
	}
	if got := readAt(t, b, "jobs/j1/r/1"); string(got) != "r/1" {
		t.Fatalf("view name not prefixed: %q", got)
	}
	n, err := sub.DeletePrefix(ctx(t), "")
	if err != nil || n != 3 {
		t.Fatalf("delete prefix: %d %v", n, err)
	}
	if all, _ := b.List(ctx(t), ""); len(all) != 1 || all[0].Name != "a/x" {
		t.Fatalf("after delete: %+v", all)
	}
	if _, err := b.Info(ctx(t), "jobs/j1/m/1"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("deleted object: %v", err)
	}
	if err := b.Delete(ctx(t), "never"); err != nil {
		t.Fatalf("delete missing: %v", err)
	}
	if _, err := c.OpenBucket(ctx(t), "nope"); !errors.Is(err, objstore.ErrBucketNotFound) {
		t.Fatalf("open missing bucket: %v", err)
	}
	for _, bad := range []string{"", "a\nb", string([]byte{0xff})} {
		if _, err := b.PutBytes(ctx(t), bad, nil); !errors.Is(err, objstore.ErrInvalidName) {
			t.Errorf("name %q: %v", bad, err)
		}
	}
	if _, err := c.Bucket(ctx(t), "a.b"); !errors.Is(err, topics.ErrInvalidID) {
		t.Errorf("bucket a.b: %v", err)
	}
}

// A reader whose object is replaced mid-read fails; it never returns a mix.
func TestReplacedWhileRead(t *testing.T) {
	c, _ := newClient(t)
	b, err := c.Bucket(ctx(t), "in")
	if err != nil {
		t.Fatal(err)
	}
	want := data(40*objstore.ChunkSize, 3)
	if _, err := b.PutBytes(ctx(t), "o", want); err != nil {
		t.Fatal(err)
	}
	r, _, err := b.Open(ctx(t), "o")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, objstore.ChunkSize)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx(t), "o"); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err == nil {
		// Everything may already have been buffered: then it must be whole.
		if !bytes.Equal(append(buf, got...), want) {
			t.Fatal("read succeeded with wrong data")
		}
		return
	}
	if !errors.Is(err, objstore.ErrChanged) {
		t.Fatalf("read after delete: %v, want ErrChanged", err)
	}
}

func BenchmarkPutRead(b *testing.B) {
	srv := natstest.RunServer(b)
	_, js := natstest.Connect(b, srv)
	c := objstore.New(js, topics.MustNew("t"), objstore.Options{})
	bk, err := c.Bucket(context.Background(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	payload := data(32<<20, 4)
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := bk.PutBytes(context.Background(), "o", payload); err != nil {
			b.Fatal(err)
		}
		r, _, err := bk.Open(context.Background(), "o", objstore.At(1))
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, r); err != nil || n != int64(len(payload)-1) {
			b.Fatal(n, err)
		}
		r.Close()
	}
}

// TestGetBytesDoesNotTrustTheSizeInMetadata: an object whose metadata
// claims a terabyte is read for what it holds, without setting a terabyte
// aside first (bytes.Buffer.Grow of 1 TiB would panic or exhaust memory).
func TestGetBytesDoesNotTrustTheSizeInMetadata(t *testing.T) {
	c, js := newClient(t)
	b, err := c.Bucket(ctx(t), "lies")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutBytes(ctx(t), "small", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	name, _ := c.BucketName("lies")
	os, err := js.ObjectStore(ctx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.GetInfo(ctx(t), "small")
	if err != nil {
		t.Fatal(err)
	}
	info.Size = 1 << 40
	meta, _ := json.Marshal(info)
	m := nats.NewMsg("$O." + name + ".M." + base64.URLEncoding.EncodeToString([]byte("small")))
	m.Data = meta
	m.Header.Set("Nats-Rollup", "sub")
	if _, err := js.PublishMsg(ctx(t), m); err != nil {
		t.Fatal(err)
	}
	got, err := b.GetBytes(ctx(t), "small")
	if err == nil && string(got) != "hello" {
		t.Fatalf("read %q", got)
	}
}

// TestReadBuffersAreBounded: opening a reader sets aside memory for the
// chunks it reads ahead, not for a million messages (nats.go's channel
// size when a pull is bounded by bytes alone: 8 MB of pointers that every
// garbage collection scanned while the reader was open).
func TestReadBuffersAreBounded(t *testing.T) {
	c, _ := newClient(t)
	b, err := c.Bucket(ctx(t), "small")
	if err != nil {
		t.Fatal(err)
	}
	want := data(1000, 3)
	if _, err := b.PutBytes(ctx(t), "o", want); err != nil {
		t.Fatal(err)
	}
	const reads = 10
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range reads {
		if got := readAt(t, b, "o"); !bytes.Equal(got, want) {
			t.Fatal("read back different bytes")
		}
	}
	runtime.ReadMemStats(&after)
	// The server runs in this process too; its share of a small read is
	// far below the bound.
	if per := (after.TotalAlloc - before.TotalAlloc) / reads; per > 2<<20 {
		t.Fatalf("a read of %d bytes allocated %d bytes", len(want), per)
	}
}

// TestSlowReaderDropsNothing: a caller that takes its time with each chunk
// (a map task counting words) gets every chunk once, in order, with no
// message dropped by the client as a slow consumer: each drop cost a reset
// of the ordered consumer and every chunk after it sent again (issue 15's
// wordcount profile).
func TestSlowReaderDropsNothing(t *testing.T) {
	_, js, asyncErrs := natstest.ConnectRecordingErrors(t, natstest.RunServer(t))
	b, err := objstore.New(js, topics.MustNew("t"), objstore.Options{}).Bucket(ctx(t), "slow")
	if err != nil {
		t.Fatal(err)
	}
	want := data(48*objstore.ChunkSize+17, 5)
	if _, err := b.PutBytes(ctx(t), "o", want); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 5*objstore.ChunkSize + 3} {
		r, _, err := b.Open(ctx(t), "o", objstore.At(off))
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		buf := make([]byte, objstore.ChunkSize)
		for {
			n, err := r.Read(buf)
			got.Write(buf[:n])
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("read from %d: %v", off, err)
			}
			time.Sleep(2 * time.Millisecond) // the caller's work on the chunk
		}
		r.Close()
		if !bytes.Equal(got.Bytes(), want[off:]) {
			t.Fatalf("read from %d: %d bytes back, want %d, or different bytes", off, got.Len(), len(want)-int(off))
		}
	}
	select {
	case err := <-asyncErrs:
		t.Fatalf("the client reported %v while a reader was slow", err)
	default:
	}
}

// TestReadEndsWhenTheConnectionCloses: a reader whose connection closes
// under it fails its next read instead of waiting for chunks that cannot
// come.
func TestReadEndsWhenTheConnectionCloses(t *testing.T) {
	nc, js := natstest.Connect(t, natstest.RunServer(t))
	b, err := objstore.New(js, topics.MustNew("t"), objstore.Options{}).Bucket(ctx(t), "closing")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutBytes(ctx(t), "o", data(64*objstore.ChunkSize, 6)); err != nil {
		t.Fatal(err)
	}
	r, _, err := b.Open(ctx(t), "o")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, objstore.ChunkSize)
	if _, err := r.Read(buf); err != nil {
		t.Fatalf("first read: %v", err)
	}
	nc.Close()
	done := make(chan error, 1)
	go func() {
		var err error
		for err == nil {
			_, err = r.Read(buf)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if errors.Is(err, io.EOF) {
			t.Fatal("the read reached the end of the object over a closed connection")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reads went on waiting after the connection closed")
	}
}

// chunkRecorder keeps what is written to it and the size of each Write;
// after is called once, after the first Write.
type chunkRecorder struct {
	buf   bytes.Buffer
	sizes []int
	after func()
}

func (w *chunkRecorder) Write(p []byte) (int, error) {
	w.sizes = append(w.sizes, len(p))
	w.buf.Write(p)
	if w.after != nil {
		w.after()
		w.after = nil
	}
	return len(p), nil
}

// TestWriteToHandsOutChunks: io.Copy from a reader gets the object's chunks
// themselves, one Write each (no copy through a buffer), from any offset,
// and the same end-of-object checks as Read.
func TestWriteToHandsOutChunks(t *testing.T) {
	c, _ := newClient(t)
	b, err := c.Bucket(ctx(t), "in")
	if err != nil {
		t.Fatal(err)
	}
	want := data(5*objstore.ChunkSize+777, 4)
	if _, err := b.PutBytes(ctx(t), "o", want); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 3, objstore.ChunkSize, 2*objstore.ChunkSize + 9} {
		r, _, err := b.Open(ctx(t), "o", objstore.At(off))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := r.(io.WriterTo); !ok {
			t.Fatal("the reader is no io.WriterTo")
		}
		var w chunkRecorder
		n, err := io.Copy(&w, r)
		r.Close()
		if err != nil || n != int64(len(want))-off || !bytes.Equal(w.buf.Bytes(), want[off:]) {
			t.Fatalf("offset %d: copied %d bytes (%v), want %d, equal %v", off, n, err, len(want)-int(off), bytes.Equal(w.buf.Bytes(), want[off:]))
		}
		// One Write per chunk: the first from the offset on, whole ones, the last's 777 bytes.
		first := objstore.ChunkSize - int(off%objstore.ChunkSize)
		wantSizes := []int{first}
		for range 4 - int(off/objstore.ChunkSize) {
			wantSizes = append(wantSizes, objstore.ChunkSize)
		}
		wantSizes = append(wantSizes, 777)
		if fmt.Sprint(w.sizes) != fmt.Sprint(wantSizes) {
			t.Fatalf("offset %d: writes of %v bytes, want %v", off, w.sizes, wantSizes)
		}
	}

	// An object deleted while it is copied: ErrChanged, or, if every chunk
	// was already on its way, the whole object.
	big := data(40*objstore.ChunkSize, 5)
	if _, err := b.PutBytes(ctx(t), "big", big); err != nil {
		t.Fatal(err)
	}
	r, _, err := b.Open(ctx(t), "big")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w := chunkRecorder{after: func() {
		if err := b.Delete(ctx(t), "big"); err != nil {
			t.Error(err)
		}
	}}
	if _, err := io.Copy(&w, r); err == nil {
		if !bytes.Equal(w.buf.Bytes(), big) {
			t.Fatal("copy succeeded with wrong data")
		}
	} else if !errors.Is(err, objstore.ErrChanged) {
		t.Fatalf("copy after delete: %v, want ErrChanged", err)
	}
}
