package wordcount

import (
	"bufio"
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
	line := l.sc.Bytes()
	for i := len(line) - 1; i > 0; i-- {
		if line[i] == '\t' {
			n, err := parseCount(line[i+1:])
			if err != nil {
				break
			}
			return string(line[:i]), n, true, nil
		}
	}
	return "", 0, false, fmt.Errorf("malformed count line %q", line)
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
