package counter

import (
	"encoding/json"
	"testing"
)

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig(nil)
	if err != nil || c.Workers != 1 || c.Target != 10 || c.IntervalMS != 10 {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	c, err = ParseConfig(json.RawMessage(`{"workers":4,"target":100,"interval_ms":0}`))
	if err != nil || c.Workers != 4 || c.Target != 100 || c.IntervalMS != 0 {
		t.Fatalf("explicit: %+v %v", c, err)
	}
	for _, bad := range []string{
		`{"workers":0}`, `{"workers":10001}`, `{"target":-1}`, `{"interval_ms":-5}`,
		`{"wrkers":2}`, `{"workers":"2"}`, `[1]`, `{"workers":2`,
	} {
		if _, err := ParseConfig(json.RawMessage(bad)); err == nil {
			t.Errorf("ParseConfig(%s) accepted", bad)
		}
	}
}
