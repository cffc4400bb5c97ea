package config

import (
	"fmt"

	"github.com/drover-run/drover/pkg/topics"
)

// Storage is a node's bucket storage setting: whether the jobs it runs
// get JetStream Object Store buckets (framework.Storage), and which bucket
// holds their scratch spaces. Empty values mean the defaults, so a Node
// built in code without envconfig has storage on.
type Storage struct {
	StorageMode   string `envconfig:"STORAGE" default:"on"`
	StorageBucket string `envconfig:"STORAGE_BUCKET" default:"work"`
}

// StorageEnabled reports whether bucket storage is on.
func (s Storage) StorageEnabled() bool { return s.StorageMode != "off" }

// WorkBucket returns the scratch bucket's name.
func (s Storage) WorkBucket() string {
	if s.StorageBucket == "" {
		return "work"
	}
	return s.StorageBucket
}

// Validate checks the storage settings.
func (s Storage) Validate() error {
	switch s.StorageMode {
	case "", "on", "off":
	default:
		return fmt.Errorf("%w: DROVER_STORAGE must be on or off, got %q", ErrInvalid, s.StorageMode)
	}
	if err := topics.ValidateID("bucket", s.WorkBucket()); err != nil {
		return fmt.Errorf("%w: DROVER_STORAGE_BUCKET: %v", ErrInvalid, err)
	}
	return nil
}
