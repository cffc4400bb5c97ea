package wordcount

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"io"
	"math/bits"
	"unicode"
	"unicode/utf8"
)

// What a word is. Input is split into tokens at ASCII whitespace (space,
// \t, \n, \v, \f, \r); a word is a maximal run of Unicode letters and
// digits inside a token, lowercased. "Don't stop" has the words "don",
// "t" and "stop"; invalid UTF-8 separates words. Splitting only at ASCII
// whitespace is what makes byte-range map tasks exact: no UTF-8 sequence
// and no word crosses a split point (see splitRange).

// IsSpace reports whether b is ASCII whitespace, where input may be split.
func IsSpace(b byte) bool {
	switch b {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}

// MaxWordBytes bounds a word: a longer run of letters and digits (a
// whitespace-free blob, a base64 line) counts as the word of its first
// MaxWordBytes bytes, cut at a rune boundary. Every later stage reads
// lines of a bounded length, so no input can make the job fail on a token
// longer than a buffer.
const MaxWordBytes = 4096

// Tokenizer turns a byte stream, fed in pieces of any size, into words.
// The zero value is ready.
type Tokenizer struct {
	word  []byte
	carry []byte // an incomplete UTF-8 sequence at the end of the last Write
}

// Write feeds p and calls emit with each word completed in it. The word
// slice is only valid during the call.
func (t *Tokenizer) Write(p []byte, emit func(word []byte)) {
	if len(t.carry) > 0 {
		// Complete the pending rune with the first bytes of p.
		c := t.carry
		t.carry = nil
		buf := append(append(make([]byte, 0, 8), c...), p[:min(len(p), utf8.UTFMax)]...)
		if !utf8.FullRune(buf) {
			t.carry = buf
			return
		}
		r, size := utf8.DecodeRune(buf)
		t.rune(r, size, emit)
		if used := size - len(c); used >= 0 {
			p = p[used:]
		} else {
			// An invalid sequence: its first byte was a separator, the
			// rest of the carry is read again.
			t.carry = append([]byte(nil), c[size:]...)
			t.Write(p, emit)
			return
		}
	}
	word := t.word
	for i := 0; i < len(p); {
		c := p[i]
		if c < utf8.RuneSelf {
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
				if len(word) < MaxWordBytes {
					word = append(word, c)
				}
			case 'A' <= c && c <= 'Z':
				if len(word) < MaxWordBytes {
					word = append(word, c+('a'-'A'))
				}
			default:
				if len(word) > 0 {
					emit(word)
					word = word[:0]
				}
			}
			i++
			continue
		}
		if !utf8.FullRune(p[i:]) {
			t.carry = append(t.carry[:0], p[i:]...)
			break
		}
		r, size := utf8.DecodeRune(p[i:])
		t.word = word
		t.rune(r, size, emit)
		word = t.word
		i += size
	}
	t.word = word
}

func (t *Tokenizer) rune(r rune, size int, emit func([]byte)) {
	if (r == utf8.RuneError && size <= 1) || !(unicode.IsLetter(r) || unicode.IsDigit(r)) {
		if len(t.word) > 0 {
			emit(t.word)
			t.word = t.word[:0]
		}
		return
	}
	lower := unicode.ToLower(r)
	if len(t.word)+utf8.RuneLen(lower) <= MaxWordBytes {
		t.word = utf8.AppendRune(t.word, lower)
	}
}

// Flush ends the stream: a pending word is emitted.
func (t *Tokenizer) Flush(emit func(word []byte)) {
	if len(t.carry) > 0 {
		// An incomplete sequence at the very end is invalid: a separator.
		t.carry = nil
	}
	if len(t.word) > 0 {
		emit(t.word)
		t.word = t.word[:0]
	}
}

// Counts is word → count: an open-addressing hash table. It holds no
// pointers, so the garbage collector never scans it however many words it
// holds (a map task's allocations, such as the object chunks it reads,
// would otherwise make every cycle walk every table of the process), and
// Reset keeps its memory for the next task. A word of up to 16 bytes,
// nearly every word of a text, lives in its slot: looking it up touches
// one slot and hashes and compares two machine words; a longer word lives
// in a byte arena.
type Counts struct {
	slots  []countSlot // a power of two; size 0 marks an empty slot
	arena  []byte      // the words longer than inlineWord, back to back
	seed   maphash.Seed
	s0, s1 uint64 // the seed of the inline words' hash
	n      int    // distinct words
	words  int64
}

// inlineWord is the longest word kept in its slot.
const inlineWord = 16

type countSlot struct {
	count int64
	hash  uint32 // the word's hash, low bits: no rehashing to grow
	size  uint32 // the word's length + 1
	// The word, zero-padded; a longer word's arena offset in its first 8 bytes.
	word [inlineWord]byte
}

// NewCounts returns an empty table.
func NewCounts() *Counts {
	seed := maphash.MakeSeed()
	return &Counts{seed: seed, s0: maphash.String(seed, "0"), s1: maphash.String(seed, "1")}
}

// Add counts word n times.
func (c *Counts) Add(word []byte, n int64) {
	c.words += n
	s, h := c.find(word)
	if s.size != 0 {
		s.count += n
		return
	}
	*s = countSlot{count: n, hash: h, size: uint32(len(word)) + 1}
	if len(word) <= inlineWord {
		copy(s.word[:], word)
	} else {
		binary.LittleEndian.PutUint64(s.word[:8], uint64(len(c.arena)))
		c.arena = append(c.arena, word...)
	}
	if c.n++; c.n*4 >= len(c.slots)*3 {
		c.grow()
	}
}

// Get returns a word's count.
func (c *Counts) Get(word string) int64 {
	if len(c.slots) == 0 {
		return 0
	}
	s, _ := c.find([]byte(word))
	return s.count
}

// find returns the slot of word, or the empty slot where it belongs, and
// the word's hash.
func (c *Counts) find(word []byte) (*countSlot, uint32) {
	if len(c.slots) == 0 {
		c.grow()
	}
	var key [inlineWord]byte
	var h uint32
	if len(word) <= inlineWord {
		copy(key[:], word)
		hi, lo := bits.Mul64(binary.LittleEndian.Uint64(key[:8])^c.s0, binary.LittleEndian.Uint64(key[8:])^c.s1^uint64(len(word)))
		h = uint32(hi ^ lo)
	} else {
		h = uint32(maphash.Bytes(c.seed, word))
	}
	size := uint32(len(word)) + 1
	mask := uint32(len(c.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &c.slots[i]
		switch {
		case s.size == 0:
			return s, h
		case s.hash != h || s.size != size:
		case len(word) <= inlineWord:
			if s.word == key {
				return s, h
			}
		default:
			if off := c.offset(s); string(c.arena[off:off+len(word)]) == string(word) {
				return s, h
			}
		}
	}
}

func (c *Counts) offset(s *countSlot) int { return int(binary.LittleEndian.Uint64(s.word[:8])) }

// grow doubles the table (from 1,024 slots).
func (c *Counts) grow() {
	old := c.slots
	c.slots = make([]countSlot, max(2*len(old), 1024))
	mask := uint32(len(c.slots) - 1)
	for _, s := range old {
		if s.size == 0 {
			continue
		}
		i := s.hash & mask
		for c.slots[i].size != 0 {
			i = (i + 1) & mask
		}
		c.slots[i] = s
	}
}

// Reserve makes room for n distinct words in an empty table, so it does
// not grow (and rehash) its way there from 1,024 slots.
func (c *Counts) Reserve(n int) {
	size := max(len(c.slots), 1024)
	for n*4 >= size*3 {
		size *= 2
	}
	if c.n == 0 && size > len(c.slots) {
		c.slots = make([]countSlot, size)
	}
}

// Reset empties the table, keeping its memory.
func (c *Counts) Reset() {
	clear(c.slots)
	c.arena = c.arena[:0]
	c.n, c.words = 0, 0
}

// Len returns the number of distinct words.
func (c *Counts) Len() int { return c.n }

// Words returns the number of words counted.
func (c *Counts) Words() int64 { return c.words }

// Each calls f for every word, in no particular order.
func (c *Counts) Each(f func(word string, n int64)) {
	c.EachBytes(func(w []byte, n int64) { f(string(w), n) })
}

// EachBytes calls f for every word, in no particular order; the word
// slice is only valid during the call.
func (c *Counts) EachBytes(f func(word []byte, n int64)) {
	for i := range c.slots {
		s := &c.slots[i]
		switch n := int(s.size) - 1; {
		case n < 0:
		case n <= inlineWord:
			f(s.word[:n:n], s.count)
		default:
			off := c.offset(s)
			f(c.arena[off:off+n:off+n], s.count)
		}
	}
}

// CountReader counts the words of a whole stream on one goroutine: the
// single-process baseline of the benchmark, and the reference for tests.
func CountReader(r io.Reader) (*Counts, error) {
	c := NewCounts()
	var t Tokenizer
	emit := func(w []byte) { c.Add(w, 1) }
	buf := make([]byte, 256<<10)
	for {
		n, err := r.Read(buf)
		t.Write(buf[:n], emit)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	t.Flush(emit)
	return c, nil
}

// Partition returns the reducer of a word: FNV-1a of its bytes modulo n.
func Partition(word string, n int) int { return partition([]byte(word), n) }

// partition is Partition of a word's bytes, written out to allocate
// nothing (hash/fnv's hasher escapes through its interface).
func partition(word []byte, n int) int {
	const offset64, prime64 = 14695981039346656037, 1099511628211
	h := uint64(offset64)
	for _, c := range word {
		h ^= uint64(c)
		h *= prime64
	}
	return int(h % uint64(n))
}

// splitRange counts the words of one map task: the bytes [start, end) of
// an object of size bytes, read from r, which starts at byte from =
// max(start-1, 0). A word belongs to the task where the whitespace-separated
// token holding it starts, so a task skips a token cut by its start (the
// previous task reads it to its end) and reads past end to finish its own
// last token. It returns the bytes it consumed. The bytes go from r to the
// tokenizer with no copy when r hands them out itself (io.WriterTo, as the
// object store's reader does).
func splitRange(r io.Reader, start, end, size int64, emit func([]byte)) (int64, error) {
	s := &splitter{pos: max(start-1, 0), end: end, size: size, emit: emit, last: ' '}
	if start == 0 {
		s.state = splitBody
	}
	if _, err := io.Copy(s, r); err != nil && !errors.Is(err, errSplitDone) {
		return s.read, err
	}
	if s.state != splitDone && s.pos < size {
		return s.read, io.ErrUnexpectedEOF // the reader ended before the object did
	}
	s.t.Flush(emit)
	return s.read, nil
}

// splitter is splitRange's state, fed the task's bytes as they come.
type splitter struct {
	state     int
	pos       int64 // the object offset of the next byte
	end, size int64
	read      int64 // bytes consumed from start on
	last      byte  // the last byte of the task's range read (' ' before any)
	t         Tokenizer
	emit      func([]byte)
}

const (
	splitPrev   = iota // the byte before start: whitespace or inside a token
	splitSkip          // inside a token that began before start: skipped
	splitBody          // the bytes up to end
	splitFinish        // past end, finishing the token that crosses it
	splitDone
)

// errSplitDone ends the copy into a splitter once its task is read.
var errSplitDone = errors.New("wordcount: split read")

func (s *splitter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		switch s.state {
		case splitPrev:
			s.state = splitBody
			if !IsSpace(p[n]) {
				s.state = splitSkip
			}
			n++
			s.pos++
		case splitSkip:
			if s.pos >= s.size {
				s.state = splitDone
				continue
			}
			if IsSpace(p[n]) {
				s.state = splitBody
			}
			n++
			s.pos++
		case splitBody:
			if s.pos >= s.end {
				s.endBody()
				continue
			}
			k := int(min(int64(len(p)-n), s.end-s.pos))
			s.t.Write(p[n:n+k], s.emit)
			s.last = p[n+k-1]
			n += k
			s.pos += int64(k)
			s.read += int64(k)
		case splitFinish:
			// Up to the next whitespace: the token started in range.
			k := n
			for k < len(p) && !IsSpace(p[k]) && s.pos+int64(k-n) < s.size {
				k++
			}
			s.t.Write(p[n:k], s.emit)
			s.pos += int64(k - n)
			s.read += int64(k - n)
			n = k
			if n < len(p) || s.pos >= s.size {
				s.state = splitDone
			}
		case splitDone:
			return n, errSplitDone
		}
	}
	if s.state == splitBody && s.pos >= s.end {
		s.endBody()
	}
	if s.state == splitDone {
		return n, errSplitDone
	}
	return n, nil
}

// endBody follows the range's last byte: done, or on to finish the token
// that crosses end (it started in range, so it is this task's).
func (s *splitter) endBody() {
	s.state = splitDone
	if s.end < s.size && !IsSpace(s.last) {
		s.state = splitFinish
	}
}
