package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// liveView shows one status line per job. On a terminal it redraws the
// lines in place and prints other output (events) above them; elsewhere it
// prints a job's line only when it changes, at most every minGap unless the
// job's state changed, so logs stay readable.
type liveView struct {
	w     io.Writer
	tty   bool
	width int // terminal columns; lines are cut to fit so redraws stay aligned
	drawn int // lines currently drawn below the cursor's row (tty)
	lines []string

	stamp     bool // prefix printed lines with the time (not for JSON)
	minGap    time.Duration
	lastLine  map[string]string
	lastState map[string]string
	lastAt    map[string]time.Time
	now       func() time.Time
}

func newLiveView(w io.Writer, tty bool, width int) *liveView {
	return &liveView{
		w: w, tty: tty, width: width, stamp: true,
		minGap:    2 * time.Second,
		lastLine:  map[string]string{},
		lastState: map[string]string{},
		lastAt:    map[string]time.Time{},
		now:       time.Now,
	}
}

// liveLine is one job's current line and the state it is in.
type liveLine struct {
	key, state, text string
}

// update shows the current lines.
func (v *liveView) update(lines []liveLine) {
	if v.tty {
		v.lines = v.lines[:0]
		for _, l := range lines {
			v.lines = append(v.lines, v.fit(l.text))
		}
		v.redraw()
		return
	}
	now := v.now()
	for _, l := range lines {
		if l.text == v.lastLine[l.key] {
			continue
		}
		if l.state == v.lastState[l.key] && now.Sub(v.lastAt[l.key]) < v.minGap {
			continue
		}
		if v.stamp {
			fmt.Fprintf(v.w, "%s %s\n", now.Format("15:04:05"), l.text)
		} else {
			fmt.Fprintf(v.w, "%s\n", l.text)
		}
		v.lastLine[l.key], v.lastState[l.key], v.lastAt[l.key] = l.text, l.state, now
	}
}

// above prints s (one or more whole lines) above the live lines.
func (v *liveView) above(s string) {
	if !v.tty {
		fmt.Fprint(v.w, s)
		return
	}
	v.erase()
	fmt.Fprint(v.w, s)
	v.redraw()
}

// clear removes the live lines, leaving the cursor where they began.
func (v *liveView) clear() {
	if v.tty {
		v.erase()
		v.lines = v.lines[:0]
	}
}

func (v *liveView) erase() {
	if v.drawn > 0 {
		fmt.Fprintf(v.w, "\r\033[%dA\033[J", v.drawn)
		v.drawn = 0
	}
}

func (v *liveView) redraw() {
	v.erase()
	var b strings.Builder
	for _, l := range v.lines {
		b.WriteString(l)
		b.WriteString("\n")
	}
	fmt.Fprint(v.w, b.String())
	v.drawn = len(v.lines)
}

// fit cuts a line to the terminal width, since a wrapped line would throw
// the cursor arithmetic of redraw off.
func (v *liveView) fit(s string) string {
	if v.width <= 1 {
		return s
	}
	r := []rune(s)
	if len(r) < v.width {
		return s
	}
	return string(r[:v.width-1])
}
