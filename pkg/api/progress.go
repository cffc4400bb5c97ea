package api

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// StatusProgress reads the progress convention of a worker's status: a
// JSON object whose numbers "done" and "total" say how far it is (counter
// reports {"done": c, "total": M}). A job's progress is sum(done)/sum(total)
// over its workers that report both.
func StatusProgress(status json.RawMessage) (done, total float64, ok bool) {
	if len(status) == 0 {
		return 0, 0, false
	}
	var m map[string]json.RawMessage
	if err := json.NewDecoder(bytes.NewReader(status)).Decode(&m); err != nil {
		return 0, 0, false
	}
	num := func(k string) (float64, bool) {
		raw, ok := m[k]
		if !ok {
			return 0, false
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(string(raw)), 64)
		return f, err == nil
	}
	done, okd := num("done")
	total, okt := num("total")
	return done, total, okd && okt
}
