package api

import (
	"bytes"
	"encoding/json"
)

// Encode is the JSON encoding of everything Drover sends and stores: like
// json.Marshal, but without escaping <, > and &, which json.Marshal turns
// into six bytes each, so a request of 200 KB of '<' would grow to 1.2 MB
// on its way and no longer fit in a message.
func Encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
