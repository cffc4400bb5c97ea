package config

import (
	"errors"
	"testing"
)

func TestStorageSettings(t *testing.T) {
	for _, tc := range []struct {
		s       Storage
		on      bool
		bucket  string
		invalid bool
	}{
		{Storage{}, true, "work", false},
		{Storage{StorageMode: "on", StorageBucket: "data"}, true, "data", false},
		{Storage{StorageMode: "off"}, false, "work", false},
		{Storage{StorageMode: "yes"}, true, "work", true},
		{Storage{StorageBucket: "a.b"}, true, "a.b", true},
	} {
		err := tc.s.Validate()
		if (err != nil) != tc.invalid || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("%+v: Validate() = %v", tc.s, err)
		}
		if tc.s.StorageEnabled() != tc.on || tc.s.WorkBucket() != tc.bucket {
			t.Errorf("%+v: enabled %v bucket %q", tc.s, tc.s.StorageEnabled(), tc.s.WorkBucket())
		}
	}
}
