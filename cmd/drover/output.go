package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/drover-run/drover/pkg/api"
)

// printJSON writes v indented, for scripts (`--json`).
func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// newTable returns a writer aligning tab-separated columns; Flush it.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// dash shows an empty value as "-" so table columns never collapse.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// age formats how long ago t was, coarsely, as `kubectl get` does.
func age(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}

// labels formats a map as sorted k=v pairs.
func labels(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// compactJSON returns raw on one line, or "-" when empty.
func compactJSON(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return "-"
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

func errString(e *api.Error) string {
	if e == nil {
		return "-"
	}
	return string(e.Code) + ": " + e.Message
}

// printJobs writes jobs as a table.
func printJobs(w io.Writer, jobs []api.Job, now time.Time) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tTYPE\tSTATE\tEPOCH\tNODE\tRESTARTS\tAGE")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\n", j.ID, j.Type, j.State, j.Epoch, dash(j.Node), j.Restarts, age(j.CreatedAt, now))
	}
	return tw.Flush()
}

// printJob writes one job as aligned key: value lines.
func printJob(w io.Writer, j *api.Job, now time.Time) error {
	tw := newTable(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("ID", j.ID)
	row("Type", j.Type)
	row("State", string(j.State))
	row("Epoch", fmt.Sprint(j.Epoch))
	row("Node", dash(j.Node))
	row("Restarts", fmt.Sprint(j.Restarts))
	row("Selectors", labels(j.Selectors))
	row("Config", compactJSON(j.Config))
	if j.Error != nil {
		row("Error", errString(j.Error))
	}
	row("Detail", compactJSON(j.Detail))
	row("Created", stamp(j.CreatedAt, now))
	row("Updated", stamp(j.UpdatedAt, now))
	if j.NextAttemptAt != nil {
		row("Next attempt", j.NextAttemptAt.Local().Format(time.RFC3339))
	}
	return tw.Flush()
}

func stamp(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%s (%s ago)", t.Local().Format(time.RFC3339), age(t, now))
}
