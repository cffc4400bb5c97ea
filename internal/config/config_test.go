package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDefaultsAreValid(t *testing.T) {
	var c Common
	t.Setenv("DROVER_NATS_URL", "")
	if err := Load(&c); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	if c.Timing != DefaultTiming() {
		t.Fatalf("envconfig defaults %+v differ from DefaultTiming %+v", c.Timing, DefaultTiming())
	}
}

func TestTimingInvariants(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Timing)
		want string
	}{
		{"self fence after worker timeout", func(t *Timing) { t.WorkerSelfFence = 12 * time.Second }, "WORKER_SELF_FENCE"},
		{"self fence equal to worker timeout", func(t *Timing) { t.WorkerSelfFence = t.WorkerTimeout }, "shorter than DROVER_WORKER_TIMEOUT"},
		{"self fence shorter than failover", func(t *Timing) { t.WorkerSelfFence = 4 * time.Second }, "longer than a master failover"},
		{"master timeout one heartbeat", func(t *Timing) { t.MasterTimeout = time.Second }, "MASTER_TIMEOUT"},
		{"zero heartbeat", func(t *Timing) { t.Heartbeat = 0 }, "HEARTBEAT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm := DefaultTiming()
			tt.mod(&tm)
			err := tm.Validate()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an ErrInvalid mentioning %q", err, tt.want)
			}
		})
	}
}

func TestLoadRefusesBadValues(t *testing.T) {
	for env, val := range map[string]string{
		"DROVER_HEARTBEAT":  "soon",
		"DROVER_PREFIX":     "a.b",
		"DROVER_REPLICAS":   "2",
		"DROVER_LOG_FORMAT": "xml",
		"DROVER_NODE_ID":    "bad id",
	} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, val)
			var c Common
			if err := Load(&c); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Load with %s=%s: %v, want ErrInvalid", env, val, err)
			}
		})
	}
}

// TestNATSURLPrecedence: DROVER_NATS_URL, else natscli's NATS_URL, else the
// default, for a service's config as for Common.
func TestNATSURLPrecedence(t *testing.T) {
	for _, tt := range []struct{ drover, nats, want string }{
		{"", "", DefaultNATSURL},
		{"", "nats://from-nats:4222", "nats://from-nats:4222"},
		{"nats://from-drover:4222", "nats://from-nats:4222", "nats://from-drover:4222"},
	} {
		t.Setenv("DROVER_NATS_URL", tt.drover)
		t.Setenv("NATS_URL", tt.nats)
		var c struct {
			Common
		}
		if err := Load(&c); err != nil || c.NATSURL != tt.want {
			t.Errorf("DROVER_NATS_URL=%q NATS_URL=%q: %q %v, want %q", tt.drover, tt.nats, c.NATSURL, err, tt.want)
		}
	}
}
