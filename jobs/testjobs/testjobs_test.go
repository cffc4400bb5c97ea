package testjobs

import (
	"encoding/json"
	"testing"
)

func TestParseConfigs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		parse func(json.RawMessage) error
		raw   string
		ok    bool
	}{
		{"flaky defaults", func(r json.RawMessage) error { _, err := ParseFlaky(r); return err }, ``, true},
		{"flaky full", func(r json.RawMessage) error { _, err := ParseFlaky(r); return err }, `{"fail_times":3,"permanent":true,"run_ms":100}`, true},
		{"flaky negative", func(r json.RawMessage) error { _, err := ParseFlaky(r); return err }, `{"fail_times":-1}`, false},
		{"flaky unknown field", func(r json.RawMessage) error { _, err := ParseFlaky(r); return err }, `{"fails":1}`, false},
		{"beat defaults", func(r json.RawMessage) error { _, err := ParseBeat(r); return err }, `null`, true},
		{"beat no workers", func(r json.RawMessage) error { _, err := ParseBeat(r); return err }, `{"workers":0,"interval_ms":5,"burst":4}`, true},
		{"beat zero interval", func(r json.RawMessage) error { _, err := ParseBeat(r); return err }, `{"interval_ms":0}`, false},
		{"beat too many workers", func(r json.RawMessage) error { _, err := ParseBeat(r); return err }, `{"workers":101}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.parse(json.RawMessage(tc.raw)); (err == nil) != tc.ok {
				t.Fatalf("parse %q: %v, want ok=%v", tc.raw, err, tc.ok)
			}
		})
	}
	c, _ := ParseBeat(nil)
	if c.Workers != 1 || c.IntervalMS != 50 || c.Burst != 1 || c.Beats != 0 {
		t.Fatalf("beat defaults %+v", c)
	}
}
