package wordcount

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Generator writes deterministic pseudo-random text whose word counts it
// knows exactly: the oracle of the fault tests and the corpus of the
// benchmark. Words follow a Zipf law over a synthetic vocabulary with some
// multi-byte words, in lower, Title and UPPER case, between separators of
// every kind of whitespace and punctuation. It does not use the tokenizer
// to count, so it checks it.
type Generator struct {
	rng    *rand.Rand
	zipf   *rand.Zipf
	vocab  []string
	forms  [][3]string
	seps   []string
	counts []int64
}

// NewGenerator returns a generator of a vocabulary of vocab words (at least 16).
func NewGenerator(seed uint64, vocab int) *Generator {
	vocab = max(vocab, 16)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	g := &Generator{rng: rng, zipf: rand.NewZipf(rng, 1.1, 2, uint64(vocab-1)),
		seps: []string{" ", " ", " ", " ", "\n", ", ", ". ", "\t", "; ", " — ", "\r\n", "  ", "! ", " (", ") "}}
	special := []string{"über", "café", "naïve", "東京", "москва", "αθήνα", "2024", "x"}
	for i := range vocab {
		w := ""
		if i%97 == 5 && i/97 < len(special) {
			w = special[i/97]
		} else {
			w = synthWord(i)
		}
		g.vocab = append(g.vocab, w)
	}
	g.counts = make([]int64, len(g.vocab))
	for _, w := range g.vocab {
		r, n := utf8.DecodeRuneInString(w)
		f := [3]string{w, string(unicode.ToUpper(r)) + w[n:], strings.ToUpper(w)}
		for _, s := range f {
			if got := tokenize(s); got != w {
				panic(fmt.Sprintf("wordcount: generator form %q reads as %q, not %q", s, got, w))
			}
		}
		g.forms = append(g.forms, f)
	}
	return g
}

// synthWord makes a pronounceable word, distinct for every i.
func synthWord(i int) string {
	const cons, vow = "bcdfghjklmnprstvwz", "aeiou"
	var b strings.Builder
	for {
		b.WriteByte(cons[i%len(cons)])
		i /= len(cons)
		b.WriteByte(vow[i%len(vow)])
		i /= len(vow)
		if i == 0 {
			return b.String()
		}
		i--
	}
}

func tokenize(s string) string {
	var out []string
	var t Tokenizer
	emit := func(w []byte) { out = append(out, string(w)) }
	t.Write([]byte(s), emit)
	t.Flush(emit)
	return strings.Join(out, "|")
}

// WriteText writes at least size bytes of text (ending after a separator)
// to w and adds what it wrote to the counts.
func (g *Generator) WriteText(w io.Writer, size int64) (int64, error) {
	bw := bufio.NewWriterSize(w, 256<<10)
	var n int64
	for n < size {
		i := g.zipf.Uint64()
		g.counts[i]++
		c := g.rng.Uint32()
		form := g.forms[i][0]
		switch c % 16 {
		case 0:
			form = g.forms[i][1]
		case 1:
			form = g.forms[i][2]
		}
		sep := g.seps[(c>>4)%uint32(len(g.seps))]
		k, err := bw.WriteString(form)
		n += int64(k)
		if err != nil {
			return n, err
		}
		k, err = bw.WriteString(sep)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, bw.Flush()
}

// Counts returns the exact count of every word written so far.
func (g *Generator) Counts() map[string]int64 {
	out := make(map[string]int64, len(g.vocab))
	for i, n := range g.counts {
		if n > 0 {
			out[g.vocab[i]] = n
		}
	}
	return out
}

// Words returns how many words were written so far.
func (g *Generator) Words() int64 {
	var n int64
	for _, c := range g.counts {
		n += c
	}
	return n
}
