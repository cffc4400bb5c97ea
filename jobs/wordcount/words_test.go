package wordcount

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func words(t *testing.T, text string, pieces ...int) []string {
	t.Helper()
	var out []string
	emit := func(w []byte) { out = append(out, string(w)) }
	var tk Tokenizer
	p := []byte(text)
	for _, n := range pieces {
		n = min(n, len(p))
		tk.Write(p[:n], emit)
		p = p[n:]
	}
	tk.Write(p, emit)
	tk.Flush(emit)
	return out
}

func TestTokenizer(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"Hello, World!", []string{"hello", "world"}},
		{"don't stop-me\tnow\n", []string{"don", "t", "stop", "me", "now"}},
		{"Über CAFÉ naïve 東京 2024", []string{"über", "café", "naïve", "東京", "2024"}},
		{"a\u00a0b", []string{"a", "b"}},     // NBSP separates words
		{"x\xffy", []string{"x", "y"}},       // invalid UTF-8 separates
		{"ab\xe6\x9dc", []string{"ab", "c"}}, // truncated sequence
		{"ΣΊΣΥΦΟΣ", []string{"σίσυφοσ"}},     // unicode.ToLower, rune by rune
		{"  \r\n\v\f ", nil},
	} {
		got := words(t, tc.in)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
		// Any cutting of the input into pieces gives the same words.
		for cut := 0; cut <= len(tc.in); cut++ {
			for cut2 := cut; cut2 <= len(tc.in) && cut2 <= cut+4; cut2++ {
				if got := words(t, tc.in, cut, cut2-cut); !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("%q cut at %d,%d: got %q, want %q", tc.in, cut, cut2, got, tc.want)
				}
			}
		}
	}
}

// corpus is random text with multi-byte letters, punctuation, invalid
// bytes and runs of whitespace of every kind.
func corpus(r *rand.Rand, n int) []byte {
	pieces := []string{"the", "Über", "naïve", "東京", "x", "Don't", "a-b", "\xff", "ΣΊΣ", "42", "é"}
	seps := []string{" ", "\n", "\t", "  ", ", ", ".\r\n", "\v", "\f", ""}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(pieces[r.IntN(len(pieces))])
		b.WriteString(seps[r.IntN(len(seps))])
	}
	return b.Bytes()
}

func countMap(c *Counts) map[string]int64 {
	m := map[string]int64{}
	c.Each(func(w string, n int64) { m[w] = n })
	return m
}

// TestSplitsAreExact: the words of every split of an object, each read the
// way a map task reads it, add up to the words of the whole object, whether
// the reader hands the task its bytes at once (as the object store's reader
// hands out whole chunks), one at a time or in uneven pieces.
func TestSplitsAreExact(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	readers := map[string]func([]byte) io.Reader{
		"whole":    func(b []byte) io.Reader { return bytes.NewReader(b) },
		"one byte": func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		"halves":   func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
	}
	for trial := range 200 {
		data := corpus(r, 1+r.IntN(3000))
		if trial%10 == 0 {
			data = bytes.ReplaceAll(data, []byte(" "), []byte("")) // very long tokens
		}
		whole, _ := CountReader(bytes.NewReader(data))
		split := int64(1 + r.IntN(len(data)))
		plan := Plan{Inputs: []Input{{Name: "o", Size: int64(len(data))}}, SplitBytes: split, Mappers: 1, Reducers: 1}
		var reads map[int64]int64 // task start → bytes read, the same for every reader
		for name, reader := range readers {
			sum := NewCounts()
			read := map[int64]int64{}
			for _, task := range plan.Tasks() {
				from := max(task.Start-1, 0)
				n, err := splitRange(reader(data[from:]), task.Start, task.End, int64(len(data)), func(w []byte) { sum.Add(w, 1) })
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				read[task.Start] = n
			}
			if !reflect.DeepEqual(countMap(sum), countMap(whole)) || sum.Words() != whole.Words() {
				t.Fatalf("%s, trial %d (split %d of %d bytes): splits counted %d words, whole %d\n%q", name, trial, split, len(data), sum.Words(), whole.Words(), data)
			}
			if reads == nil {
				reads = read
			} else if !reflect.DeepEqual(read, reads) {
				t.Fatalf("%s, trial %d: bytes read per task %v, another reader %v", name, trial, read, reads)
			}
		}
	}
}

// TestSplitOfATruncatedObject: a reader that ends before the task's range
// does is an error, not a short count.
func TestSplitOfATruncatedObject(t *testing.T) {
	data := []byte("alpha beta gamma delta")
	_, err := splitRange(bytes.NewReader(data[:10]), 0, int64(len(data)), int64(len(data)), func([]byte) {})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
	}
	size := int64(len(data))
	for _, c := range []struct {
		name       string
		start, end int64
		from, to   int // the bytes the reader has
	}{
		{"skipping the token cut by start", 2, 3, 1, 4},
		{"finishing the token that crosses end", 5, 12, 4, 13},
	} {
		_, err := splitRange(bytes.NewReader(data[c.from:c.to]), c.start, c.end, size, func([]byte) {})
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%s: err = %v, want io.ErrUnexpectedEOF", c.name, err)
		}
	}
}

func TestTopAndPartition(t *testing.T) {
	c := NewCounts()
	for i, w := range []string{"a", "b", "c", "d", "e"} {
		c.Add([]byte(w), int64(1+i%3)) // a1 b2 c3 d1 e2
	}
	got := fmt.Sprint(TopN(c, 3))
	if got != "[{c 3} {b 2} {e 2}]" {
		t.Fatalf("top 3: %s", got)
	}
	if got := fmt.Sprint(mergeTops(2, []WordCount{{"c", 3}, {"a", 1}}, []WordCount{{"e", 2}})); got != "[{c 3} {e 2}]" {
		t.Fatalf("merged tops: %s", got)
	}
	seen := map[int]bool{}
	for i := range 1000 {
		p := Partition(fmt.Sprint("w", i), 7)
		if p < 0 || p >= 7 {
			t.Fatalf("partition %d", p)
		}
		h := fnv.New64a()
		h.Write([]byte(fmt.Sprint("w", i)))
		if want := int(h.Sum64() % 7); p != want {
			t.Fatalf("partition %d, FNV-1a says %d", p, want)
		}
		seen[p] = true
	}
	if len(seen) != 7 {
		t.Fatalf("partitions used: %v", seen)
	}
}

func TestParseConfig(t *testing.T) {
	for _, good := range []string{`{"bucket":"in","prefix":"books/","output":"counts.tsv"}`,
		`{"bucket":"in","objects":["a"],"output_bucket":"out","output":"a"}`, `{"bucket":"in","output":"wordcount/j.tsv"}`,
		`{"bucket":"in","output_bucket":"out","output":"counts.tsv"}`, `{"bucket":"in","output":"wordcount/j.counts"}`} {
		if _, err := ParseConfig([]byte(good), "j"); err != nil {
			t.Errorf("config %s refused: %v", good, err)
		}
	}
	c, err := ParseConfig([]byte(`{"bucket":"in"}`), "j1")
	if err != nil || c.Output != "wordcount/j1.tsv" || c.OutputBucket != "in" || c.Reducers != 4 || c.Top != 10 {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	for _, bad := range []string{``, `{}`, `{"bucket":"a.b"}`, `{"bucket":"in","reducers":0}`,
		`{"bucket":"in","objects":["a"],"prefix":"p"}`, `{"bucket":"in","split_bytes":10}`,
		`{"bucket":"in","top":1001}`, `{"bucket":"in","extra":1}`, `{"bucket":"in","output":"a\nb"}`,
		// Outputs over what the job reads or does not own.
		`{"bucket":"in","objects":["a","b"],"output":"b"}`, `{"bucket":"in","objects":["a.top.json"],"output":"a"}`,
		`{"bucket":"in","prefix":"books/","output":"books/counts.tsv"}`, `{"bucket":"in","output":"jobs/j/x"}`,
		`{"bucket":"in","output_bucket":"work"}`, `{"bucket":"in","output":"wordcount/other.tsv"}`,
		// The whole bucket is read: any name outside wordcount/ may be an input.
		`{"bucket":"in","output":"counts.tsv"}`, `{"bucket":"in","output":"a.txt"}`} {
		if _, err := ParseConfig([]byte(bad), "j"); err == nil {
			t.Errorf("config %s accepted", bad)
		}
	}
}

func TestPlanTasks(t *testing.T) {
	p := Plan{Inputs: []Input{{Size: 10}, {Size: 0}, {Size: 25}}, SplitBytes: 10, Mappers: 2, Reducers: 3}
	var got []string
	for _, t := range p.Tasks() {
		got = append(got, fmt.Sprintf("%d:%d[%d,%d)", t.ID, t.Input, t.Start, t.End))
	}
	if s := strings.Join(got, " "); s != "0:0[0,10) 1:2[0,10) 2:2[10,20) 3:2[20,25)" {
		t.Fatalf("tasks: %s", s)
	}
	if n := len(p.MapperTasks(1)); n != 2 {
		t.Fatalf("mapper 1 tasks: %d", n)
	}
	if p.reduceShare(0)+p.reduceShare(1)+p.reduceShare(2) != 35 {
		t.Fatal("reduce shares do not add up to the input")
	}
}

// TestGenerator: the generator's own counts (the fault tests' oracle) agree
// with the tokenizer, and it is deterministic.
func TestGenerator(t *testing.T) {
	var a, b bytes.Buffer
	g := NewGenerator(42, 5000)
	if _, err := g.WriteText(&a, 1<<20); err != nil {
		t.Fatal(err)
	}
	g2 := NewGenerator(42, 5000)
	_, _ = g2.WriteText(&b, 1<<20)
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("generator is not deterministic")
	}
	got, _ := CountReader(bytes.NewReader(a.Bytes()))
	if !reflect.DeepEqual(countMap(got), g.Counts()) || got.Words() != g.Words() {
		t.Fatalf("tokenizer counted %d words (%d distinct), generator wrote %d (%d distinct)",
			got.Words(), got.Len(), g.Words(), len(g.Counts()))
	}
	if got.Get("über") == 0 || got.Get("東京") == 0 {
		t.Fatal("multi-byte words missing")
	}
}

func TestReadOutput(t *testing.T) {
	got, err := ReadOutput(strings.NewReader("a\t2\nb\tc\t3\nz\t10\n"))
	if err != nil || len(got) != 3 || got["a"] != 2 || got["b\tc"] != 3 || got["z"] != 10 {
		t.Fatalf("ReadOutput = %v, %v", got, err)
	}
	for _, bad := range []string{"b\t1\na\t1\n", "a\t1\na\t2\n", "a 1\n", "a\tx\n", "\t1\n"} {
		if _, err := ReadOutput(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadOutput(%q) accepted", bad)
		}
	}
}

// TestLongTokensAreCutNotFatal: a whitespace-free run far longer than any
// buffer counts as one word of MaxWordBytes (cut at a rune boundary), the
// same whether it is fed whole, in pieces, or read as a map task.
func TestLongTokensAreCutNotFatal(t *testing.T) {
	long := strings.Repeat("é", 3*MaxWordBytes) // 2 bytes a rune
	in := "short " + long + " tail " + strings.Repeat("A", 100<<10)
	whole, err := CountReader(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	cut, a := strings.Repeat("é", MaxWordBytes/2), strings.Repeat("a", MaxWordBytes)
	for _, w := range []string{"short", cut, "tail", a} {
		if whole.Get(w) != 1 {
			t.Fatalf("word of %d bytes not counted once", len(w))
		}
	}
	if whole.Len() != 4 {
		t.Fatalf("%d distinct words, want 4", whole.Len())
	}
	got := NewCounts()
	if _, err := splitRange(strings.NewReader(in), 0, int64(len(in)), int64(len(in)), func(w []byte) { got.Add(w, 1) }); err != nil {
		t.Fatal(err)
	}
	if got.Len() != 4 || got.Get(cut) != 1 || got.Get(a) != 1 {
		t.Fatalf("map task counted %d words", got.Len())
	}
}

// TestCountsMatchesAMap: the table counts like a map[string]int64, for
// words kept in their slot (up to 16 bytes) and longer ones, across
// growth and after Reset.
func TestCountsMatchesAMap(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	c := NewCounts()
	for round := range 3 {
		want := map[string]int64{}
		var words int64
		for range 20000 {
			w := make([]byte, r.IntN(40)) // 0..39 bytes: both sides of 16
			for i := range w {
				w[i] = "ab\x00é"[r.IntN(4)]
			}
			n := int64(1 + r.IntN(3))
			c.Add(w, n)
			want[string(w)] += n
			words += n
		}
		if got := countMap(c); !reflect.DeepEqual(got, want) || c.Len() != len(want) || c.Words() != words {
			t.Fatalf("round %d: %d distinct and %d words, want %d and %d", round, c.Len(), c.Words(), len(want), words)
		}
		for w, n := range want {
			if got := c.Get(w); got != n {
				t.Fatalf("round %d: Get(%q) = %d, want %d", round, w, got, n)
			}
		}
		if c.Get("absent, longer than sixteen bytes") != 0 || c.Get("absent") != 0 {
			t.Fatal("Get of an absent word is not 0")
		}
		c.Reset()
		if c.Len() != 0 || c.Words() != 0 || c.Get("ab") != 0 {
			t.Fatal("Reset left words behind")
		}
	}
}

// TestCountsReserve: a reserved table takes that many distinct words
// without growing, and counts them as an unreserved one does.
func TestCountsReserve(t *testing.T) {
	c := NewCounts()
	c.Reserve(30000)
	size := len(c.slots)
	if size != 1<<16 {
		t.Fatalf("30,000 words reserved %d slots, want 65,536", size)
	}
	want := map[string]int64{}
	for i := range 30000 {
		w := fmt.Sprintf("w%d", i)
		c.Add([]byte(w), 2)
		want[w] = 2
	}
	if len(c.slots) != size {
		t.Fatalf("the table grew to %d slots", len(c.slots))
	}
	if !reflect.DeepEqual(countMap(c), want) {
		t.Fatal("reserved table counted wrong")
	}
	c.Reserve(10) // never shrinks, never drops words
	if len(c.slots) != size || c.Len() != 30000 {
		t.Fatalf("Reserve of a full table: %d slots, %d words", len(c.slots), c.Len())
	}
}
