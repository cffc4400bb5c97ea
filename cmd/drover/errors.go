package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/drover-run/drover/pkg/api"
)

// Exit codes. Scripts rely on them: keep them stable.
const (
	exitOK          = 0
	exitError       = 1   // API or runtime error
	exitUsage       = 2   // bad flags or arguments, found before any request
	exitJobNotOK    = 3   // wait/watch: the job ended failed or canceled
	exitInterrupted = 130 // Ctrl-C while waiting
)

// usageError is a problem with the command line itself.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// jobEndedError reports that a waited-for job ended other than finished. The
// command has already printed the job; only the exit code is left to give.
type jobEndedError struct{ jobs []*api.Job }

func (e *jobEndedError) Error() string {
	if len(e.jobs) == 1 {
		return fmt.Sprintf("job %s ended %s", e.jobs[0].ID, e.jobs[0].State)
	}
	return fmt.Sprintf("%d jobs did not finish", len(e.jobs))
}

// exitCode maps an error to the process exit code.
func exitCode(err error) int {
	var ue *usageError
	var je *jobEndedError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &je):
		return exitJobNotOK
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	}
	return exitError
}

// printError writes err as `error: <code>: <message>`.
func printError(w io.Writer, cmd string, err error) {
	var ue *usageError
	var je *jobEndedError
	switch {
	case errors.As(err, &je):
		// Already reported by the command together with the job.
	case errors.As(err, &ue):
		fmt.Fprintf(w, "error: usage: %s\n", ue.msg)
		if cmd != "" {
			fmt.Fprintf(w, "Run 'drover %s -h' for usage.\n", cmd)
		} else {
			fmt.Fprintln(w, "Run 'drover help' for usage.")
		}
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(w, "error: interrupted")
	default:
		e := api.AsError(err)
		fmt.Fprintf(w, "error: %s: %s\n", e.Code, e.Message)
	}
}
