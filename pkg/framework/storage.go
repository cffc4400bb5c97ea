package framework

import (
	"context"
	"io"

	"github.com/drover-run/drover/pkg/objstore"
)

// Bucket storage: a job's masters and workers read inputs from, and write
// intermediate data and outputs to, JetStream Object Store buckets.
//
// Named buckets (Storage.Bucket) belong to the deployment: a user loads
// inputs with `drover put` and reads outputs with `drover get-object`.
// The job's scratch space (Storage.Scratch) is a view of the deployment's
// work bucket under jobs/<job>/; the master's runtime deletes it when the
// job ends for good (finished, canceled, or failed with a permanent error)
// unless the master called KeepScratch(true). A master that fails with a
// retryable error keeps it, so the next attempt finds what the last one
// committed.

// ObjectInfo describes a stored object.
type ObjectInfo = objstore.ObjectInfo

// ReadOption tunes Bucket.Open: objstore.At(offset), objstore.Version(v).
type ReadOption = objstore.ReadOption

// Storage errors, tested with errors.Is.
var (
	ErrObjectNotFound = objstore.ErrNotFound
	ErrBucketNotFound = objstore.ErrBucketNotFound
	// ErrObjectChanged: the object was replaced or deleted after it was chosen.
	ErrObjectChanged = objstore.ErrChanged
)

// Bucket is one object bucket, or a job's scratch space. Object names are
// any UTF-8 without control characters; "/" makes good prefixes.
type Bucket interface {
	// Name is the bucket's name (its JetStream name is <prefix>_obj_<name>).
	Name() string
	// Put writes name from r, replacing any previous version.
	Put(ctx context.Context, name string, r io.Reader) (ObjectInfo, error)
	PutBytes(ctx context.Context, name string, data []byte) (ObjectInfo, error)
	// Open reads name, from objstore.At(offset) if given; Close the reader.
	Open(ctx context.Context, name string, opts ...ReadOption) (io.ReadCloser, ObjectInfo, error)
	GetBytes(ctx context.Context, name string) ([]byte, error)
	// Info describes name; ErrObjectNotFound if it does not exist.
	Info(ctx context.Context, name string) (ObjectInfo, error)
	// List returns the objects whose names start with prefix.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Delete removes name; removing a missing object is not an error.
	Delete(ctx context.Context, name string) error
}

// Storage is a job's bucket storage, from MasterHandle.Storage or
// WorkerHandle.Storage.
type Storage interface {
	// Bucket opens an existing bucket; ErrBucketNotFound if there is none.
	Bucket(ctx context.Context, name string) (Bucket, error)
	// CreateBucket opens a bucket, creating it if it does not exist.
	CreateBucket(ctx context.Context, name string) (Bucket, error)
	// Scratch is the job's own space for intermediate data, shared by its
	// master and all its workers, deleted when the job ends.
	Scratch(ctx context.Context) (Bucket, error)
	// KeepScratch, called by a master, keeps the scratch space when the job
	// ends (e.g. to inspect intermediate data). A worker's call does nothing.
	KeepScratch(keep bool)
}
