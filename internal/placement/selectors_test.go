package placement

import (
	"errors"
	"testing"
)

func TestSelectorForms(t *testing.T) {
	eu := map[string]string{"zone": "eu", "gpu": "a100"}
	us := map[string]string{"zone": "us"}
	none := map[string]string{}
	literal := map[string]string{"zone": "exists", "odd": "in(x)"}
	for _, tc := range []struct {
		sel                     map[string]string
		eu, us, none, literalOK bool
	}{
		{map[string]string{"zone": "eu"}, true, false, false, false},
		{map[string]string{"zone": "in(eu,us)"}, true, true, false, false},
		{map[string]string{"zone": "in(us)"}, false, true, false, false},
		{map[string]string{"zone": "notin(eu)"}, false, true, true, true},
		{map[string]string{"gpu": "exists"}, true, false, false, false},
		{map[string]string{"gpu": "!exists"}, false, true, true, true},
		{map[string]string{"zone": "exists", "gpu": "!exists"}, false, true, false, true},
		// A literal value that reads as an operator is matched with in(…).
		{map[string]string{"zone": "in(exists)"}, false, false, false, true},
		{map[string]string{"odd": "in(in(x))"}, false, false, false, true},
		{nil, true, true, true, true},
	} {
		for _, c := range []struct {
			name   string
			labels map[string]string
			want   bool
		}{{"eu", eu, tc.eu}, {"us", us, tc.us}, {"none", none, tc.none}, {"literal", literal, tc.literalOK}} {
			if got := matches(c.labels, tc.sel); got != c.want {
				t.Errorf("%v on %s labels %v: %v, want %v", tc.sel, c.name, c.labels, got, c.want)
			}
		}
	}
}

func TestInvalidSelectorsAreRefused(t *testing.T) {
	for _, v := range []string{"in()", "notin()", "in(a,)", "in(,b)", "notin(a,,b)"} {
		sel := map[string]string{"zone": v}
		if err := ValidateSelectors(sel); !errors.Is(err, ErrInvalidSelector) {
			t.Errorf("ValidateSelectors(%q) = %v, want ErrInvalidSelector", v, err)
		}
		if matches(map[string]string{"zone": "a"}, sel) || matches(nil, sel) {
			t.Errorf("invalid selector %q matched", v)
		}
	}
	for _, v := range []string{"eu", "", "in(a)", "notin(a,b)", "exists", "!exists", "in(", "x)"} {
		if err := ValidateSelectors(map[string]string{"zone": v}); err != nil {
			t.Errorf("ValidateSelectors(%q) = %v", v, err)
		}
	}
}
