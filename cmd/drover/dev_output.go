package main

import (
	"bytes"
	"fmt"
	"io"
	"sync"
)

// logMux interleaves the lines of the launcher, the embedded NATS server and
// every child on one stream, each prefixed with its source's name (colored
// on a terminal), never splitting a line.
type logMux struct {
	mu    sync.Mutex
	w     io.Writer
	color bool
	width int // longest name, so the text after prefixes lines up
	next  int
	hues  map[string]int
}

// ANSI colors for prefixes, skipping red, which is kept for trouble.
var hues = []int{36, 32, 33, 34, 35, 96, 92, 93, 94, 95}

func newLogMux(w io.Writer, color bool, names []string) *logMux {
	m := &logMux{w: w, color: color, hues: map[string]int{}}
	for _, n := range names {
		m.width = max(m.width, len(n))
		if _, ok := m.hues[n]; !ok {
			m.hues[n] = hues[m.next%len(hues)]
			m.next++
		}
	}
	return m
}

func (m *logMux) prefix(name string) string {
	p := fmt.Sprintf("%-*s", m.width+2, "["+name+"]")
	if !m.color {
		return p
	}
	hue, ok := m.hues[name]
	if !ok {
		hue = 37
	}
	return fmt.Sprintf("\033[%dm%s\033[0m", hue, p)
}

// line writes one line from name.
func (m *logMux) line(name, text string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintf(m.w, "%s %s\n", m.prefix(name), text)
}

// alert writes a line that must not be missed (a child died).
func (m *logMux) alert(name, text string) {
	if m.color {
		text = "\033[1;31m" + text + "\033[0m"
	}
	m.line(name, text)
}

// raw writes text as is, e.g. the banner.
func (m *logMux) raw(text string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprint(m.w, text)
}

// lineWriter turns a child's output stream into prefixed lines. One per
// stream: os/exec copies each stream from its own goroutine.
type lineWriter struct {
	mux  *logMux
	name string
	buf  []byte
}

// maxLine bounds a buffered partial line; a longer one is cut in pieces.
const maxLine = 64 << 10

func (lw *lineWriter) Write(p []byte) (int, error) {
	lw.buf = append(lw.buf, p...)
	for {
		i := bytes.IndexByte(lw.buf, '\n')
		if i < 0 {
			if len(lw.buf) >= maxLine {
				lw.mux.line(lw.name, string(lw.buf))
				lw.buf = lw.buf[:0]
			}
			return len(p), nil
		}
		lw.mux.line(lw.name, string(bytes.TrimRight(lw.buf[:i], "\r")))
		lw.buf = lw.buf[i+1:]
	}
}

// flush writes a last line left without its newline.
func (lw *lineWriter) flush() {
	if len(lw.buf) > 0 {
		lw.mux.line(lw.name, string(lw.buf))
		lw.buf = nil
	}
}
