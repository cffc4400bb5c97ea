package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/drover-run/drover/pkg/api"
)

// Progress convention: a worker's status JSON may carry the numbers "done"
// and "total" (counter reports {"done": c, "total": M}). A job's progress is
// sum(done)/sum(total) over its workers that report both.

// progress is a job's progress aggregated over its workers.
type progress struct {
	Done    float64 `json:"done"`
	Total   float64 `json:"total"`
	Workers int     `json:"workers"`   // worker records seen
	Counted int     `json:"reporting"` // of which report done and total
}

// known reports whether any worker reports a total.
func (p progress) known() bool { return p.Counted > 0 && p.Total > 0 }

// fraction is done/total clamped to [0, 1].
func (p progress) fraction() float64 {
	if !p.known() {
		return 0
	}
	f := p.Done / p.Total
	switch {
	case f < 0:
		return 0
	case f > 1:
		return 1
	}
	return f
}

// statusProgress reads done and total from one worker status.
func statusProgress(status json.RawMessage) (done, total float64, ok bool) {
	return api.StatusProgress(status)
}

// aggregate sums the progress of a job's workers.
func aggregate(ws []api.Worker) progress {
	p := progress{Workers: len(ws)}
	for _, w := range ws {
		if d, t, ok := statusProgress(w.Status); ok {
			p.Done += d
			p.Total += t
			p.Counted++
		}
	}
	return p
}

// num formats a count without a fraction when it has none.
func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// ratio formats done/total and the percentage, or "-" when unknown.
func (p progress) ratio() string {
	if !p.known() {
		return "-"
	}
	return fmt.Sprintf("%s/%s %3.0f%%", num(p.Done), num(p.Total), 100*p.fraction())
}

// bar draws a progress bar of width cells, e.g. [#####-----].
func bar(frac float64, width int) string {
	if width <= 0 {
		return ""
	}
	n := int(frac*float64(width) + 0.5)
	if n > width {
		n = width
	}
	if n < 0 {
		n = 0
	}
	return "[" + strings.Repeat("#", n) + strings.Repeat("-", width-n) + "]"
}

// workerRatio formats one worker's progress for the workers table.
func workerRatio(status json.RawMessage) string {
	d, t, ok := statusProgress(status)
	if !ok {
		return "-"
	}
	return progress{Done: d, Total: t, Counted: 1, Workers: 1}.ratio()
}

// progressLine is the one-line summary `wait` and `watch` show for a job.
func progressLine(id string, state api.State, p progress, barWidth int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-9s", id, state)
	if p.known() {
		if barWidth > 0 {
			b.WriteString("  " + bar(p.fraction(), barWidth))
		}
		b.WriteString("  " + p.ratio())
	}
	if p.Workers > 0 {
		fmt.Fprintf(&b, "  (%d workers)", p.Workers)
	}
	return b.String()
}
