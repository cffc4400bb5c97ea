package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/drover-run/drover/internal/config"
	"github.com/drover-run/drover/pkg/topics"
)

const defaultNATSURL = config.DefaultNATSURL

// globals are the flags every subcommand accepts, before or after its name.
// The connection flags are natscli's; empty ones leave the setting to the
// environment and the nats context (connect.go has the precedence).
type globals struct {
	natsURL  string
	natsCtx  string
	creds    string
	user     string
	password string
	tlsCert  string
	tlsKey   string
	tlsCA    string
	prefix   string
	timeout  time.Duration
	json     bool
}

// cli is one invocation: its streams, its environment and its global flags.
type cli struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	// tty reports whether stdout is a terminal: live lines and colors then.
	tty bool
	g   globals
	// explicit holds the names of global flags set on the command line.
	explicit map[string]bool
	// devOnly makes connect use the flags and DROVER_* variables only, as
	// the services drover dev starts do (no nats context, no NATS_*).
	devOnly bool
}

func newCLI(stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) *cli {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, explicit: map[string]bool{}}
	c.tty = isTerminal(stdout) && getenv("TERM") != "dumb"
	c.g = globals{
		prefix:  envOr(getenv, "DROVER_PREFIX", topics.DefaultPrefix),
		timeout: 5 * time.Second,
	}
	return c
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// runner runs a subcommand with its positional arguments.
type runner func(ctx context.Context, c *cli, args []string) error

// command is one subcommand: setup registers its flags and returns its runner,
// so completion can list flags without running anything.
type command struct {
	name    string
	args    string // synopsis of positional arguments
	summary string
	setup   func(fs *flag.FlagSet) runner
	// hidden commands are left out of help and completion (drover dev's
	// own entry points).
	hidden bool
}

func commands() []*command {
	return []*command{
		submitCommand(),
		getCommand(),
		listCommand(),
		cancelCommand(),
		deleteCommand(),
		waitCommand(),
		watchCommand(),
		eventsCommand(),
		nodesCommand(),
		workersCommand(),
		putCommand(),
		getObjectCommand(),
		objectsCommand(),
		rmObjectCommand(),
		devCommand(),
		versionCommand(),
		authCommand(),
		completionCommand(),
		serviceCommand(),
	}
}

func findCommand(name string) *command {
	for _, cmd := range commands() {
		if cmd.name == name {
			return cmd
		}
	}
	return nil
}

// registerGlobals adds the global flags to fs, defaulting to the values
// already parsed, so they work on either side of the subcommand's name.
func (c *cli) registerGlobals(fs *flag.FlagSet) {
	fs.StringVar(&c.g.natsURL, "server", c.g.natsURL, "NATS server `URLs`, comma separated (env DROVER_NATS_URL, NATS_URL; default "+defaultNATSURL+")")
	fs.StringVar(&c.g.natsURL, "s", c.g.natsURL, "NATS server `URLs`: short for --server")
	fs.StringVar(&c.g.natsURL, "nats-url", c.g.natsURL, "NATS server `URLs`: the same as --server")
	fs.StringVar(&c.g.natsCtx, "context", c.g.natsCtx, "nats CLI context `name` to connect with (env NATS_CONTEXT; default: the selected one)")
	fs.StringVar(&c.g.creds, "creds", c.g.creds, "NATS credentials `file` (env DROVER_NATS_CREDS, NATS_CREDS)")
	fs.StringVar(&c.g.user, "user", c.g.user, "NATS `user` (env DROVER_NATS_USER, NATS_USER)")
	fs.StringVar(&c.g.password, "password", c.g.password, "NATS `password` (env DROVER_NATS_PASSWORD, NATS_PASSWORD)")
	fs.StringVar(&c.g.tlsCert, "tlscert", c.g.tlsCert, "TLS client certificate `file` (env DROVER_NATS_TLS_CERT, NATS_CERT)")
	fs.StringVar(&c.g.tlsKey, "tlskey", c.g.tlsKey, "TLS client key `file` (env DROVER_NATS_TLS_KEY, NATS_KEY)")
	fs.StringVar(&c.g.tlsCA, "tlsca", c.g.tlsCA, "TLS CA certificate `file` (env DROVER_NATS_TLS_CA, NATS_CA)")
	fs.StringVar(&c.g.prefix, "prefix", c.g.prefix, "subject namespace `prefix` (env DROVER_PREFIX)")
	fs.DurationVar(&c.g.timeout, "timeout", c.g.timeout, "timeout of each API request")
	fs.BoolVar(&c.g.json, "json", c.g.json, "print JSON for scripts instead of tables")
}

func isGlobal(name string) bool {
	switch name {
	case "server", "s", "nats-url", "context", "creds", "user", "password", "tlscert", "tlskey", "tlsca",
		"prefix", "timeout", "json":
		return true
	}
	return false
}

// markExplicit records a global flag set on the command line, under one
// name for --server and its aliases.
func (c *cli) markExplicit(name string) {
	if name == "s" || name == "nats-url" {
		name = "server"
	}
	c.explicit[name] = true
}

// run executes one command line and returns the exit code.
func (c *cli) run(ctx context.Context, args []string) int {
	top := flag.NewFlagSet("drover", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	c.registerGlobals(top)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.usage(c.stdout)
			return exitOK
		}
		printError(c.stderr, "", usagef("%v", err))
		return exitUsage
	}
	top.Visit(func(f *flag.Flag) { c.markExplicit(f.Name) })
	rest := top.Args()
	if len(rest) == 0 {
		c.usage(c.stderr)
		return exitUsage
	}
	name, rest := rest[0], rest[1:]
	if name == "help" {
		if len(rest) == 0 {
			c.usage(c.stdout)
			return exitOK
		}
		name, rest = rest[0], []string{"-h"}
	}
	cmd := findCommand(name)
	if cmd == nil {
		printError(c.stderr, "", usagef("unknown command %q", name))
		return exitUsage
	}
	err := c.runCommand(ctx, cmd, rest)
	if err != nil {
		printError(c.stderr, cmd.name, err)
	}
	return exitCode(err)
}

func (c *cli) runCommand(ctx context.Context, cmd *command, args []string) error {
	fs := flag.NewFlagSet("drover "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.registerGlobals(fs)
	run := cmd.setup(fs)
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		commandUsage(c.stdout, cmd, fs)
		return nil
	}
	if err != nil {
		return usagef("%v", err)
	}
	fs.Visit(func(f *flag.Flag) {
		if isGlobal(f.Name) {
			c.markExplicit(f.Name)
		}
	})
	if c.g.timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	if _, err := topics.New(c.g.prefix); err != nil {
		return usagef("--prefix: %v", err)
	}
	return run(ctx, c, pos)
}

// parseInterspersed parses flags anywhere among the positional arguments,
// so `drover get ID --json` works; "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprintln(w, "drover — command-line client of the Drover job engine")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: drover [global flags] <command> [flags] [args]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, cmd := range commands() {
		if !cmd.hidden {
			fmt.Fprintf(tw, "  %s %s\t%s\n", cmd.name, cmd.args, cmd.summary)
		}
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Global flags (accepted by every command):")
	fs := flag.NewFlagSet("drover", flag.ContinueOnError)
	c.registerGlobals(fs)
	printFlags(w, fs, nil)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Exit codes: 0 ok, 1 error, 2 usage error, 3 job ended failed or canceled (wait, watch, submit --wait).")
	fmt.Fprintln(w, "Run 'drover help <command>' for a command's flags.")
}

func commandUsage(w io.Writer, cmd *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: drover %s [flags] %s\n\n%s\n", cmd.name, cmd.args, cmd.summary)
	own := func(name string) bool { return !isGlobal(name) }
	var any bool
	fs.VisitAll(func(f *flag.Flag) { any = any || own(f.Name) })
	if any {
		fmt.Fprintln(w, "\nFlags:")
		printFlags(w, fs, own)
	}
	fmt.Fprintln(w, "\nGlobal flags: -s/--server, --context, --creds, --user, --password, --tls*, --prefix, --timeout, --json (see 'drover help').")
}

// printFlags lists the flags of fs accepted by keep (all if nil), GNU style.
func printFlags(w io.Writer, fs *flag.FlagSet, keep func(string) bool) {
	var fl []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if keep == nil || keep(f.Name) {
			fl = append(fl, f)
		}
	})
	sort.Slice(fl, func(i, j int) bool { return fl[i].Name < fl[j].Name })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range fl {
		arg, help := flag.UnquoteUsage(f)
		name := "--" + f.Name
		if len(f.Name) == 1 {
			name = "-" + f.Name
		}
		if arg != "" {
			name += " " + arg
		}
		def := ""
		switch f.DefValue {
		case "", "false", "0", "0s", "-", "[]":
		default:
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(tw, "  %s\t%s%s\n", name, help, def)
	}
	_ = tw.Flush()
}

// requireArgs checks the number of positional arguments.
func requireArgs(args []string, min, max int, what string) error {
	switch {
	case len(args) < min:
		return usagef("missing %s", what)
	case max >= 0 && len(args) > max:
		return usagef("unexpected arguments: %s", strings.Join(args[max:], " "))
	}
	return nil
}
