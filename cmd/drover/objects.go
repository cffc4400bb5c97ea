package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/objstore"
	"github.com/drover-run/drover/pkg/topics"
)

// Bucket storage commands: load a job's inputs and read its outputs in the
// deployment's Object Store buckets (<prefix>_obj_<bucket>), the same
// buckets jobs open with Storage().Bucket(name).

func putCommand() *command {
	return &command{
		name:    "put",
		args:    "BUCKET FILE…",
		summary: "Upload files as objects of a bucket (created if missing); - reads stdin.",
		setup: func(fs *flag.FlagSet) runner {
			name := fs.String("name", "", "object `name` (one file only; default the file's base name)")
			prefix := fs.String("name-prefix", "", "`prefix` added to every object name, e.g. books/")
			replicas := fs.Int("replicas", 0, "replicas of a bucket created here (default env DROVER_REPLICAS or 1)")
			return func(ctx context.Context, c *cli, args []string) error {
				if err := requireArgs(args, 2, -1, "bucket and file"); err != nil {
					return err
				}
				files := args[1:]
				if *name != "" && len(files) != 1 {
					return usagef("--name needs exactly one file")
				}
				for _, f := range files {
					if f == "-" && *name == "" {
						return usagef("reading stdin (-) needs --name")
					}
				}
				r := *replicas
				if r == 0 {
					r, _ = strconv.Atoi(c.getenv("DROVER_REPLICAS"))
				}
				return c.withObjects(ctx, r, func(objs *objstore.Client) error {
					b, err := c.bucket(ctx, objs, args[0], true)
					if err != nil {
						return err
					}
					var infos []objstore.ObjectInfo
					for _, f := range files {
						n := *name
						if n == "" {
							n = filepath.Base(f)
						}
						info, err := c.putFile(ctx, b, *prefix+n, f)
						if err != nil {
							return err
						}
						infos = append(infos, info)
						if !c.g.json {
							fmt.Fprintf(c.stdout, "%s/%s %s\n", args[0], info.Name, sizeString(info.Size))
						}
					}
					if c.g.json {
						return printJSON(c.stdout, map[string]any{"bucket": args[0], "objects": infos})
					}
					return nil
				})
			}
		},
	}
}

func (c *cli) putFile(ctx context.Context, b *objstore.Bucket, name, path string) (objstore.ObjectInfo, error) {
	var r io.Reader = c.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return objstore.ObjectInfo{}, usagef("%v", err)
		}
		defer f.Close()
		r = f
	}
	info, err := b.Put(ctx, name, r)
	if err != nil {
		return info, objectError(err)
	}
	return info, nil
}

func getObjectCommand() *command {
	return &command{
		name:    "get-object",
		args:    "BUCKET NAME",
		summary: "Download an object to stdout or a file (-o).",
		setup: func(fs *flag.FlagSet) runner {
			out := fs.String("o", "", "write to `file` instead of stdout (replaced only once the download is complete)")
			return func(ctx context.Context, c *cli, args []string) error {
				if err := requireArgs(args, 2, 2, "bucket and object name"); err != nil {
					return err
				}
				return c.withObjects(ctx, 0, func(objs *objstore.Client) error {
					b, err := c.bucket(ctx, objs, args[0], false)
					if err != nil {
						return err
					}
					r, info, err := b.Open(ctx, args[1])
					if err != nil {
						return objectError(err)
					}
					defer r.Close()
					if *out == "" || *out == "-" {
						_, err := io.Copy(c.stdout, r)
						return objectError(err)
					}
					if err := writeFileAtomic(*out, r); err != nil {
						return objectError(err)
					}
					if c.g.json {
						return printJSON(c.stdout, map[string]any{"bucket": args[0], "object": info, "file": *out})
					}
					fmt.Fprintf(c.stderr, "%s/%s → %s (%s)\n", args[0], info.Name, *out, sizeString(info.Size))
					return nil
				})
			}
		},
	}
}

// writeFileAtomic writes r to a temporary file next to path and renames
// it, so a failed download never leaves a truncated file behind.
func writeFileAtomic(path string, r io.Reader) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func objectsCommand() *command {
	return &command{
		name:    "objects",
		args:    "BUCKET",
		summary: "List a bucket's objects: name, size, modified.",
		setup: func(fs *flag.FlagSet) runner {
			prefix := fs.String("name-prefix", "", "only objects whose names start with `prefix`")
			return func(ctx context.Context, c *cli, args []string) error {
				if err := requireArgs(args, 1, 1, "bucket"); err != nil {
					return err
				}
				return c.withObjects(ctx, 0, func(objs *objstore.Client) error {
					b, err := c.bucket(ctx, objs, args[0], false)
					if err != nil {
						return err
					}
					list, err := b.List(ctx, *prefix)
					if err != nil {
						return objectError(err)
					}
					if c.g.json {
						if list == nil {
							list = []objstore.ObjectInfo{}
						}
						return printJSON(c.stdout, map[string]any{"bucket": args[0], "objects": list})
					}
					tw := newTable(c.stdout)
					fmt.Fprintln(tw, "NAME\tSIZE\tMODIFIED")
					now := time.Now()
					for _, o := range list {
						fmt.Fprintf(tw, "%s\t%s\t%s\n", o.Name, sizeString(o.Size), age(o.ModTime, now))
					}
					return tw.Flush()
				})
			}
		},
	}
}

func rmObjectCommand() *command {
	return &command{
		name:    "rm-object",
		args:    "BUCKET [NAME…]",
		summary: "Delete objects of a bucket by name, or all under --name-prefix.",
		setup: func(fs *flag.FlagSet) runner {
			prefix := fs.String("name-prefix", "", "delete every object whose name starts with `prefix`")
			return func(ctx context.Context, c *cli, args []string) error {
				if err := requireArgs(args, 1, -1, "bucket"); err != nil {
					return err
				}
				if (len(args) > 1) == (*prefix != "") {
					return usagef("give object names or --name-prefix, not both or neither")
				}
				return c.withObjects(ctx, 0, func(objs *objstore.Client) error {
					b, err := c.bucket(ctx, objs, args[0], false)
					if err != nil {
						return err
					}
					n := 0
					if *prefix != "" {
						n, err = b.DeletePrefix(ctx, *prefix)
					} else {
						for _, name := range args[1:] {
							if err = b.Delete(ctx, name); err != nil {
								break
							}
							n++
						}
					}
					if err != nil {
						return objectError(err)
					}
					if c.g.json {
						return printJSON(c.stdout, map[string]any{"bucket": args[0], "deleted": n})
					}
					fmt.Fprintf(c.stdout, "deleted %d object(s)\n", n)
					return nil
				})
			}
		},
	}
}

// withObjects connects and runs f with an Object Store client.
func (c *cli) withObjects(_ context.Context, replicas int, f func(*objstore.Client) error) error {
	cl, err := c.connect()
	if err != nil {
		return err
	}
	defer cl.Conn().Close()
	js, err := jetstream.New(cl.Conn())
	if err != nil {
		return err
	}
	return f(objstore.New(js, cl.Space(), objstore.Options{Replicas: replicas}))
}

func (c *cli) bucket(ctx context.Context, objs *objstore.Client, name string, create bool) (*objstore.Bucket, error) {
	if err := topics.ValidateID("bucket", name); err != nil {
		return nil, usagef("%v", err)
	}
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	var b *objstore.Bucket
	var err error
	if create {
		b, err = objs.Bucket(rctx, name)
	} else {
		b, err = objs.OpenBucket(rctx, name)
	}
	return b, objectError(err)
}

// objectError gives storage errors the API's codes.
func objectError(err error) error {
	var ae *api.Error
	switch {
	case err == nil || errors.As(err, &ae) || errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, objstore.ErrNotFound), errors.Is(err, objstore.ErrBucketNotFound):
		return &api.Error{Code: api.CodeNotFound, Message: err.Error()}
	case errors.Is(err, objstore.ErrInvalidName), errors.Is(err, topics.ErrInvalidID):
		return &api.Error{Code: api.CodeInvalidArgument, Message: err.Error()}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, jetstream.ErrNoHeartbeat):
		return &api.Error{Code: api.CodeUnavailable, Message: err.Error()}
	}
	return &api.Error{Code: api.CodeInternal, Message: err.Error()}
}

// sizeString formats a byte count for people.
func sizeString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
