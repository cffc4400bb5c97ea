package wordcount

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// lineReader reads "word\tcount\n" lines.
type lineReader struct{ sc *bufio.Scanner }

func newLineReader(r io.Reader) *lineReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	return &lineReader{sc: sc}
}

// next returns the next word and count; ok is false at the end.
func (l *lineReader) next() (word string, n int64, ok bool, err error) {
	if !l.sc.Scan() {
		return "", 0, false, l.sc.Err()
	}
	w, n, err := splitCountLine(l.sc.Bytes())
	if err != nil {
		return "", 0, false, err
	}
	return string(w), n, true, nil
}

// splitCountLine parses one "word\tcount" line; the word may itself hold tabs.
func splitCountLine(line []byte) (word []byte, n int64, err error) {
	tab := bytes.LastIndexByte(line, '\t')
	if tab <= 0 {
		return nil, 0, fmt.Errorf("malformed count line %q", line)
	}
	n, err = parseCount(line[tab+1:])
	if err != nil {
		return nil, 0, fmt.Errorf("malformed count line %q", line)
	}
	return line[:tab], n, nil
}

// ReadOutput reads a wordcount output object ("word\tcount" lines sorted by
// word) into a map, and fails if a line is malformed or out of order.
func ReadOutput(r io.Reader) (map[string]int64, error) {
	out := map[string]int64{}
	lines := newLineReader(r)
	prev := ""
	for {
		w, n, ok, err := lines.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		if w <= prev {
			return nil, fmt.Errorf("output line %q after %q: not sorted", w, prev)
		}
		out[w], prev = n, w
	}
}

// lineWriter writes "word\tcount\n" lines.
type lineWriter struct {
	w   *bufio.Writer
	buf []byte
}

func newLineWriter(w io.Writer) *lineWriter {
	return &lineWriter{w: bufio.NewWriterSize(w, 256<<10)}
}

func (l *lineWriter) line(word string, n int64) error {
	l.buf = formatCount(l.buf[:0], word, n)
	_, err := l.w.Write(l.buf)
	return err
}

func (l *lineWriter) flush() error { return l.w.Flush() }
