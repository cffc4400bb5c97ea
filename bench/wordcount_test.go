package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover-run/drover/jobs/wordcount"
)

// TestMain lets this test binary be the baseline's count process, as the
// benchmark binary is (countArg).
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == countArg {
		if err := runCount(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "bench count:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestBaselineCountsInAProcessOfItsOwn: the baseline count runs in a
// process of its own, counts every word of the corpus, keeps the fastest
// run, and fails on a corpus whose words it does not count as expected.
func TestBaselineCountsInAProcessOfItsOwn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "corpus.txt")
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	gen := wordcount.NewGenerator(7, 1000)
	written, err := gen.WriteText(fh, 1<<20)
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	f := &wordcountFigures{CorpusBytes: written, Words: gen.Words()}
	first, err := baselineCount(path, f)
	if err != nil {
		t.Fatal(err)
	}
	second, err := baselineCount(path, f)
	if err != nil {
		t.Fatal(err)
	}
	if first <= 0 || second <= 0 || f.BaselineMBps != *round2(max(first, second)) {
		t.Fatalf("runs %.1f and %.1f MB/s, kept %.1f: want the fastest", first, second, f.BaselineMBps)
	}
	f.Words++
	if _, err := baselineCount(path, f); err == nil || !strings.Contains(err.Error(), "want") {
		t.Fatalf("a count one word short passed: %v", err)
	}
}
