package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/client"
)

// selectorFlag collects repeated --selector k=v.
type selectorFlag map[string]string

func (s selectorFlag) String() string { return labels(s) }

func (s selectorFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("selector %q is not key=value", v)
	}
	s[k] = val
	return nil
}

type submitFlags struct {
	typ        string
	config     string
	configFile string
	id         string
	selectors  selectorFlag
	file       string
	durable    bool
	wait       bool
	waitFor    time.Duration
}

func submitCommand() *command {
	return &command{
		name:    "submit",
		summary: "Submit a job and print it (id, state); --wait blocks until it ends.",
		setup: func(fs *flag.FlagSet) runner {
			f := newSubmitFlags(fs)
			return func(ctx context.Context, c *cli, args []string) error {
				if err := requireArgs(args, 0, 0, ""); err != nil {
					return err
				}
				spec, err := f.spec(c.stdin)
				if err != nil {
					return err
				}
				return c.submit(ctx, spec, f)
			}
		},
	}
}

func newSubmitFlags(fs *flag.FlagSet) *submitFlags {
	f := &submitFlags{selectors: selectorFlag{}}
	fs.StringVar(&f.typ, "type", "", "job `type` (e.g. counter)")
	fs.StringVar(&f.config, "config", "", "job config as inline `JSON`")
	fs.StringVar(&f.configFile, "config-file", "", "read the job config from `file` (- for stdin)")
	fs.StringVar(&f.id, "id", "", "job `id` (default: chosen by the job manager)")
	fs.Var(f.selectors, "selector", "job-master node selector `key=value` (repeatable)")
	fs.StringVar(&f.file, "file", "", "read the whole spec {id,type,config,selectors,restart} from `file` (- for stdin); flags override it")
	fs.BoolVar(&f.durable, "durable", false, "publish on the durable requests stream (accepted even while no job manager runs; needs --id)")
	fs.BoolVar(&f.wait, "wait", false, "wait until the job ends, showing progress (exit 3 unless it finished)")
	fs.DurationVar(&f.waitFor, "wait-timeout", 0, "with --wait, give up after this long (0: never)")
	return f
}

// spec builds the job spec from --file and the flags, checking what can be
// checked locally.
func (f *submitFlags) spec(stdin io.Reader) (api.Spec, error) {
	var spec api.Spec
	if f.file != "" {
		b, err := readInput(f.file, stdin)
		if err != nil {
			return spec, usagef("--file: %v", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&spec); err != nil {
			return spec, usagef("--file %s: not a job spec: %v", f.file, err)
		}
	}
	if f.typ != "" {
		spec.Type = f.typ
	}
	if f.id != "" {
		spec.ID = f.id
	}
	if f.config != "" && f.configFile != "" {
		return spec, usagef("--config and --config-file are exclusive")
	}
	if f.configFile != "" {
		b, err := readInput(f.configFile, stdin)
		if err != nil {
			return spec, usagef("--config-file: %v", err)
		}
		f.config = string(b)
	}
	if f.config != "" {
		if !json.Valid([]byte(f.config)) {
			return spec, usagef("config is not valid JSON: %s", f.config)
		}
		spec.Config = json.RawMessage(strings.TrimSpace(f.config))
	}
	if len(f.selectors) > 0 {
		if spec.Selectors == nil {
			spec.Selectors = map[string]string{}
		}
		for k, v := range f.selectors {
			spec.Selectors[k] = v
		}
	}
	if spec.Type == "" {
		return spec, usagef("missing --type (or a spec --file with a type)")
	}
	if f.durable && spec.ID == "" {
		return spec, usagef("--durable needs --id: the id deduplicates a re-published request")
	}
	if f.waitFor < 0 {
		return spec, usagef("--wait-timeout must not be negative")
	}
	return spec, nil
}

// readInput reads a file, or stdin for "-", bounded by the API's payload limit.
func readInput(name string, stdin io.Reader) ([]byte, error) {
	var r io.Reader = stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, api.MaxPayload+1))
	if err != nil {
		return nil, err
	}
	if len(b) > api.MaxPayload {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, api.MaxPayload)
	}
	return b, nil
}

func (c *cli) submit(ctx context.Context, spec api.Spec, f *submitFlags) error {
	return c.withClient(func(cl *client.Client) error {
		if f.durable {
			rctx, cancel := c.reqCtx(ctx)
			err := cl.SubmitDurable(rctx, spec)
			cancel()
			if err != nil {
				return err
			}
			if !f.wait {
				if c.g.json {
					return printJSON(c.stdout, map[string]any{"id": spec.ID, "published": true})
				}
				fmt.Fprintf(c.stdout, "published %s on %s; it is accepted once a job manager runs\n", spec.ID, cl.Space().JobRequests())
				return nil
			}
			if !c.g.json {
				fmt.Fprintf(c.stdout, "published %s\n", spec.ID)
			}
			return c.waitJobs(ctx, cl, []string{spec.ID}, waitOptions{within: f.waitFor, allowMissing: true})
		}
		rctx, cancel := c.reqCtx(ctx)
		job, err := cl.Submit(rctx, spec)
		cancel()
		if err != nil {
			return err
		}
		if !f.wait {
			if c.g.json {
				return printJSON(c.stdout, job)
			}
			tw := newTable(c.stdout)
			fmt.Fprintln(tw, "ID\tTYPE\tSTATE")
			fmt.Fprintf(tw, "%s\t%s\t%s\n", job.ID, job.Type, job.State)
			return tw.Flush()
		}
		if !c.g.json {
			fmt.Fprintf(c.stdout, "submitted %s (%s)\n", job.ID, job.State)
		}
		return c.waitJobs(ctx, cl, []string{job.ID}, waitOptions{within: f.waitFor})
	})
}
