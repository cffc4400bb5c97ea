package framework

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// DecodeConfig decodes a job's or a worker's JSON config into v strictly:
// an unknown field, a value of the wrong type or anything after the object
// is an error, so a typo in a submitted config is refused at submit (call
// it from JobType.Validate) instead of being silently ignored. An empty
// config leaves v as it is, so v may carry defaults.
func DecodeConfig(raw json.RawMessage, v any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}
