package placement

import (
	"errors"
	"fmt"
	"strings"
)

// Selectors choose nodes by their labels. A job's or worker's selectors
// map a label key to what its value must be:
//
//	"zone": "eu"          the label is eu
//	"zone": "in(eu,us)"   the label is one of eu, us
//	"zone": "notin(eu)"   the label is absent or none of eu
//	"gpu":  "exists"      the label is present, whatever its value
//	"gpu":  "!exists"     the label is absent
//
// Label values never contain a comma (DROVER_LABELS is k=v,k2=v2), so a
// list is unambiguous; a label whose value is literally "exists" or
// "in(…)" is matched with in(exists) or in(in(…)).

// ErrInvalidSelector: a selector value that is none of the forms above.
var ErrInvalidSelector = errors.New("placement: invalid selector")

// Selector operators.
const (
	opEquals    = ""
	opIn        = "in"
	opNotIn     = "notin"
	opExists    = "exists"
	opNotExists = "!exists"
)

// parseSelector returns a selector value's operator and values.
func parseSelector(v string) (op string, vals []string, err error) {
	switch {
	case v == opExists || v == opNotExists:
		return v, nil, nil
	case strings.HasPrefix(v, opIn+"(") && strings.HasSuffix(v, ")"):
		op, v = opIn, v[len(opIn)+1:len(v)-1]
	case strings.HasPrefix(v, opNotIn+"(") && strings.HasSuffix(v, ")"):
		op, v = opNotIn, v[len(opNotIn)+1:len(v)-1]
	default:
		return opEquals, []string{v}, nil
	}
	vals = strings.Split(v, ",")
	for _, x := range vals {
		if x == "" {
			return "", nil, fmt.Errorf("%w: %s(%s) has an empty value", ErrInvalidSelector, op, v)
		}
	}
	return op, vals, nil
}

// ValidateSelectors checks every selector value's form.
func ValidateSelectors(sel map[string]string) error {
	for k, v := range sel {
		if _, _, err := parseSelector(v); err != nil {
			return fmt.Errorf("selector %s: %w", k, err)
		}
	}
	return nil
}

// matches reports whether labels satisfy every selector; an invalid
// selector (refused at submit) matches nothing.
func matches(labels, selectors map[string]string) bool {
	for k, v := range selectors {
		op, vals, err := parseSelector(v)
		if err != nil {
			return false
		}
		lv, has := labels[k]
		var ok bool
		switch op {
		case opExists:
			ok = has
		case opNotExists:
			ok = !has
		case opEquals, opIn:
			ok = has && contains(vals, lv)
		case opNotIn:
			ok = !has || !contains(vals, lv)
		}
		if !ok {
			return false
		}
	}
	return true
}

func contains(vals []string, v string) bool {
	for _, x := range vals {
		if x == v {
			return true
		}
	}
	return false
}
